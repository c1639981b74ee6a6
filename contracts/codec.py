"""The one JSON codec of the project (orjson), and the canonical bytes the hash chain covers."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY


def _subclass_values(value: Any) -> Any:
    # orjson encodes uuid.UUID itself but not its subclasses (asyncpg returns one).
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Encode a JSON-compatible value (pydantic models must be dumped with mode="json" first)."""
    return orjson.dumps(value, default=_subclass_values, option=_OPTIONS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def canonical(value: Any) -> bytes:
    """Bytes that depend only on the value: sorted keys, no whitespace, UTC times with Z."""
    return orjson.dumps(value, default=_subclass_values, option=_OPTIONS | orjson.OPT_SORT_KEYS)
