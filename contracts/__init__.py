"""Registrar's public contracts: commands, events, the event envelope, the JSON codec and the
bodies of the HTTP API.

Everything another service may send to or receive from Registrar is defined here, as pydantic v2
models, so that one place says what the wire looks like.
"""
