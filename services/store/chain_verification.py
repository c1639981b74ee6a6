"""Tamper evidence: recompute every stream's hash chain from the store and name the first broken
link of each stream; export the streams' heads so they can be anchored elsewhere.

What the chain proves: no stored event was altered, inserted or removed inside a stream without
breaking the chain from that point on (each hash covers the previous one). What it does not prove
on its own: that a stream's newest events were not cut off (truncating a tail leaves a valid
shorter chain), nor that a whole stream was not removed. Anchoring the heads — writing them, or
the digest of them all, somewhere the database's administrators cannot rewrite — closes that:
`verify` against anchored heads reports a stream that is now shorter than its anchor, or gone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from registrar.contracts.codec import canonical
from registrar.contracts.envelope import GENESIS_HASH, chain_hash
from registrar.store.event_store import PostgresEventStore, envelope_from_row

_ALL_EVENTS_BY_STREAM = (
    "SELECT position, event_id, stream_id, stream_version, type, schema_version, recorded_at,"
    " actor, causation_id, correlation_id, payload, prev_hash, hash"
    " FROM events ORDER BY stream_id, stream_version"
)


@dataclass(frozen=True, slots=True)
class BrokenLink:
    stream_id: str
    version: int
    problem: str


@dataclass(frozen=True, slots=True)
class Head:
    stream_id: str
    version: int
    hash: str


@dataclass
class Verification:
    streams: int = 0
    events: int = 0
    broken: list[BrokenLink] = field(default_factory=list)
    heads: list[Head] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.broken

    @property
    def heads_digest(self) -> str:
        """One sha256 over every stream's head: anchoring this one value anchors them all."""
        return hashlib.sha256(
            canonical([[h.stream_id, h.version, h.hash] for h in self.heads])
        ).hexdigest()

    def as_json(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "streams": self.streams,
            "events": self.events,
            "broken": [
                {"stream_id": b.stream_id, "version": b.version, "problem": b.problem}
                for b in self.broken
            ],
            "heads_digest": self.heads_digest,
        }


async def verify_chains(
    store: PostgresEventStore, anchored: list[Head] | None = None
) -> Verification:
    """Recompute every stream's chain and name the first broken link of each. With `anchored`
    heads (exported earlier), also report a stream now shorter than its anchor, gone, or whose
    event at the anchored version no longer has the anchored hash (a rewritten history whose
    hashes were all recomputed is a valid chain: only an anchor outside the database shows it)."""
    report = Verification()
    anchors = {head.stream_id: head for head in anchored or []}
    seen_anchor: set[str] = set()
    stream: str | None = None
    version, prev_hash, failed = 0, GENESIS_HASH, False
    async with store.reading() as conn:
        async for row in conn.cursor(_ALL_EVENTS_BY_STREAM, prefetch=2000):
            envelope = envelope_from_row(row)
            if envelope.stream_id != stream:
                if stream is not None:
                    report.heads.append(Head(stream, version, prev_hash))
                stream, version, prev_hash, failed = envelope.stream_id, 0, GENESIS_HASH, False
                report.streams += 1
            report.events += 1
            problem = None
            if envelope.stream_version != version + 1:
                problem = f"version {version + 1} is missing (found {envelope.stream_version})"
            elif envelope.prev_hash != prev_hash:
                problem = "its prev_hash is not the previous event's hash"
            elif chain_hash(envelope.prev_hash, envelope.hashed_fields()) != envelope.hash:
                problem = "its content does not match its hash: it was altered"
            if problem is not None and not failed:
                report.broken.append(BrokenLink(stream, envelope.stream_version, problem))
                failed = True  # the first broken link of a stream is the one worth naming
            anchor = anchors.get(stream)
            if anchor is not None and anchor.version == envelope.stream_version:
                seen_anchor.add(stream)
                if anchor.hash != envelope.hash and not failed:
                    report.broken.append(
                        BrokenLink(
                            stream,
                            anchor.version,
                            "its hash is not the anchored one: the history up to it was rewritten",
                        )
                    )
                    failed = True
            version, prev_hash = envelope.stream_version, envelope.hash
    if stream is not None:
        report.heads.append(Head(stream, version, prev_hash))
    lengths = {head.stream_id: head.version for head in report.heads}
    for anchor in anchors.values():
        if anchor.stream_id in seen_anchor:
            continue
        if anchor.stream_id not in lengths:
            report.broken.append(BrokenLink(anchor.stream_id, 1, "the stream is gone"))
        else:
            report.broken.append(
                BrokenLink(
                    anchor.stream_id,
                    lengths[anchor.stream_id] + 1,
                    f"its events after {lengths[anchor.stream_id]} were removed"
                    f" (the anchored head is version {anchor.version})",
                )
            )
    return report


def heads_to_json(heads: list[Head]) -> list[dict[str, Any]]:
    return [{"stream_id": h.stream_id, "version": h.version, "hash": h.hash} for h in heads]


def heads_from_json(data: list[dict[str, Any]]) -> list[Head]:
    return [Head(str(h["stream_id"]), int(h["version"]), str(h["hash"])) for h in data]
