"""Registrar's public contracts: commands, events, the event envelope and the JSON codec.

Everything another service may send to or receive from Registrar is defined here, as pydantic v2
models, so that one place says what the wire looks like.
"""
