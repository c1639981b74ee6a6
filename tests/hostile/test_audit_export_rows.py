"""An audit export never stops half way: a row holding text no encoding can carry (an unpaired
surrogate, say, from an event stored before the contracts refused such text) is exported with
that text replaced, in JSONL and in CSV, and the rows after it follow."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from registrar.contracts.codec import loads
from registrar.projections.audit_trail import COLUMNS, csv_row, exported_row, jsonl_line


def row(summary: str) -> dict[str, object]:
    values: dict[str, object] = dict.fromkeys(COLUMNS)
    values.update(
        position=7, recorded_at=datetime(2026, 12, 5, tzinfo=UTC), actor="old", summary=summary
    )
    values["event_id"] = uuid4()
    return values


@pytest.mark.parametrize("encode", [jsonl_line, csv_row], ids=["jsonl", "csv"])
def test_a_row_with_unencodable_text_is_exported_with_it_replaced(encode: object) -> None:
    bad = row("set tag k=a\ud800b")
    with pytest.raises((TypeError, ValueError)):
        encode(bad)  # type: ignore[operator]
    line = exported_row(encode, bad)  # type: ignore[arg-type]
    assert b"set tag k=a" in line and b"b" in line
    if encode is jsonl_line:
        assert loads(line)["position"] == 7
