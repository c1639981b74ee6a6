"""An MLflow request's fields: the query string of a GET, the JSON body of anything else (numbers
may come as strings; unknown fields are ignored, as MLflow does), with the checks MLflow makes."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Request

from registrar.api.mlflow.errors import invalid

_MISSING = object()


FIELDS_SCOPE_KEY = "registrar.mlflow_fields"
"""Where a request's parsed fields are kept, so that access control and the handler act on the
very same values."""


class Fields:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    @classmethod
    def parse(cls, method: str, query_string: bytes, body: bytes) -> Fields:
        """The one reading of an MLflow request: its query string and, unless it is a GET, its
        JSON body. A field given in both with different values is refused: there must be no
        telling which of the two a permission check saw and which the handler acted on."""
        values: dict[str, Any] = {}
        for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            values.setdefault(key, []).append(value)
        values = {key: found if len(found) > 1 else found[0] for key, found in values.items()}
        if method.upper() != "GET" and body.strip():
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as error:
                raise invalid(f"the request body is not valid JSON: {error}") from None
            if not isinstance(parsed, dict):
                raise invalid("the request body must be a JSON object")
            for key, value in parsed.items():
                if key in values and not _same(values[key], value):
                    raise invalid(
                        f"parameter {key!r} is given twice with different values, in the query"
                        f" string ({values[key]!r}) and in the body ({value!r}): send it once"
                    )
                values[key] = value
        return cls(values)

    @classmethod
    async def of(cls, request: Request) -> Fields:
        """The request's fields, parsed once: access control may have read them already."""
        parsed: Fields | None = request.scope.get(FIELDS_SCOPE_KEY)
        if parsed is None:
            body = b"" if request.method == "GET" else await request.body()
            parsed = cls.parse(request.method, request.scope.get("query_string", b""), body)
            request.scope[FIELDS_SCOPE_KEY] = parsed
        return parsed

    def _get(self, key: str) -> Any:
        value = self.values.get(key, _MISSING)
        return None if value is _MISSING or value is None else value

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            raise invalid(f"parameter {key!r} must be a string, got {value!r}")
        return value

    def required(self, key: str) -> str:
        value = self.text(key)
        if value is None or value == "":
            raise invalid(
                f"Missing value for required parameter {key!r}. See the API docs for more"
                " information about request parameters."
            )
        return value

    def version(self, key: str = "version") -> int:
        """A version number: a string (or number) holding a positive integer."""
        value = self._get(key)
        if value is None or value == "":
            self.required(key)
        text = str(value)
        if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
            raise invalid(f"Parameter {key!r} must be a positive integer, got {value!r}")
        return int(text)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        text = str(value)
        if isinstance(value, bool) or not text.lstrip("-").isdigit():
            raise invalid(f"parameter {key!r} must be an integer, got {value!r}")
        if not low <= int(text) <= high:
            raise invalid(
                f"Invalid value for request parameter {key}: it must be between {low} and"
                f" {high}, but got value {text}"
            )
        return int(text)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(f"parameter {key!r} must be true or false, got {value!r}")

    def texts(self, key: str) -> list[str]:
        value = self._get(key)
        if value is None:
            return []
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in values):
            raise invalid(f"parameter {key!r} must be a list of strings, got {value!r}")
        return values

    def tags(self, key: str = "tags") -> dict[str, str]:
        """`[{"key": ..., "value": ...}]` as a dict (a later duplicate key wins, as in MLflow)."""
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, list) or not all(isinstance(tag, dict) for tag in value):
            raise invalid(f"parameter {key!r} must be a list of {{key, value}} objects")
        tags: dict[str, str] = {}
        for tag in value:
            tag_key, tag_value = tag.get("key"), tag.get("value", "")
            if not isinstance(tag_key, str) or not isinstance(tag_value, str):
                raise invalid(f"each of {key!r} needs a string key and a string value, got {tag}")
            tags[tag_key] = tag_value
        return tags


def _same(queried: str | list[str], given: Any) -> bool:
    """Whether a body value says what the query string says (which holds only text)."""
    as_text = [str(v).lower() if isinstance(v, bool) else str(v) for v in _listed(given)]
    return as_text == _listed(queried)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
