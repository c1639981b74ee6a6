"""The one JSON codec of the project (orjson), and the canonical bytes the hash chain covers."""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> bytes:
    """Encode a JSON-compatible value (pydantic models must be dumped with mode="json" first)."""
    return orjson.dumps(value, option=_OPTIONS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def canonical(value: Any) -> bytes:
    """Bytes that depend only on the value: sorted keys, no whitespace, UTC times with Z."""
    return orjson.dumps(value, option=_OPTIONS | orjson.OPT_SORT_KEYS)
