"""Tests of the Python client (a package, so its conftest keeps to itself)."""
