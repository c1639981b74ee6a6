"""Time travel in the UI: the `as_of` a page was asked for, read from the form's date-and-time
field (taken as UTC) or from an RFC 3339 instant in a shared link, and how the page shows it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import HTTPException

from registrar.projections.stage_history import parse_instant

_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")
"""What a browser's datetime-local field sends: no zone (the field is labelled UTC)."""


def parse_ui_instant(value: str) -> datetime:
    """A time typed into a UI field (UTC) or given as RFC 3339; ValueError says what is wrong."""
    value = value.strip()
    if _LOCAL.fullmatch(value):
        return datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=UTC)
    return parse_instant(value)


@dataclass(frozen=True, slots=True)
class TimeTravel:
    at: datetime | None
    """None: now."""

    @property
    def past(self) -> bool:
        return self.at is not None

    @property
    def input_value(self) -> str:
        """The instant as the datetime-local field shows it (UTC, to the second)."""
        return "" if self.at is None else self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")

    @property
    def param(self) -> str | None:
        """The instant as a link's `as_of` (RFC 3339), so links keep the past view."""
        if self.at is None:
            return None
        return self.at.astimezone(UTC).isoformat().replace("+00:00", "Z")

    @property
    def instant(self) -> datetime:
        return self.at if self.at is not None else datetime.now(UTC)


def time_travel(as_of: str | None, field: str = "as_of") -> TimeTravel:
    """The page's time: now when `as_of` is empty or not before now, else that instant; 422
    naming the field when it is not a time."""
    if as_of is None or not as_of.strip():
        return TimeTravel(None)
    try:
        at = parse_ui_instant(as_of)
    except ValueError as bad:
        raise HTTPException(422, f"{field}: {bad}") from None
    return TimeTravel(at if at < datetime.now(UTC) else None)


def optional_instant(value: str | None, field: str) -> datetime | None:
    """A filter's time (since, until), or None when the field is empty."""
    if value is None or not value.strip():
        return None
    try:
        return parse_ui_instant(value)
    except ValueError as bad:
        raise HTTPException(422, f"{field}: {bad}") from None
