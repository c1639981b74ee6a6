"""Request values the database itself refuses: text it cannot hold (a NUL in a query parameter),
a number outside its range. They are the caller's to fix, so they answer 4xx, never 500, on the
native and the MLflow routes alike."""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc

_REFUSED = (asyncpg.exceptions.DataError, asyncpg.exceptions._base.DataError)
"""PostgreSQL's data exceptions (SQLSTATE class 22), and asyncpg's own refusal to encode an
argument (an integer past 64 bits)."""


def refused_input(error: BaseException) -> str | None:
    """What to tell the caller when `error` (SQLAlchemy's wrappers looked through) is the
    database refusing a value of the request; None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _REFUSED):
            reason = str(current).splitlines()[0] if str(current) else type(current).__name__
            return f"a value of the request cannot be used: {reason}"
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return None


DATABASE_ERRORS = (*_REFUSED, sqlalchemy.exc.DBAPIError)
"""What to catch to look for a refused value (SQLAlchemy wraps asyncpg's errors in DBAPIError)."""
