"""Compliance reports, pure: each requirement of a profile checked on a version, with its
evidence — the events that establish the value the check read (who recorded it, when, at which
position), so an auditor can follow each "met" back to the record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from registrar.contracts.envelope import Envelope
from registrar.domain.policies import PolicySet, parse_gate
from registrar.domain.state import ModelState, VersionState


def _establishes(subject: str, number: int, envelope: Envelope) -> bool:
    """Whether `envelope` set what gate `subject` reads on version `number`."""
    payload = envelope.payload
    kind = envelope.type
    if subject == "risk.tier":
        return kind == "RiskAssessed"
    if payload.get("version") != number:
        return False
    if subject.startswith("metrics."):
        name = subject.removeprefix("metrics.")
        return kind in ("VersionRegistered", "MetricsRecorded") and name in payload["metrics"]
    if subject.startswith("model_card."):
        field = subject.removeprefix("model_card.")
        return kind == "ModelCardUpdated" and field in payload["card"]
    if subject in ("lineage.datasets", "lineage.parents"):
        return kind == "VersionRegistered"
    if subject == "artifact.digest":
        return kind == "ArtifactsSealed" or (kind == "VersionRegistered" and payload["digest"])
    if subject.startswith("evaluations."):
        wanted = subject.removeprefix("evaluations.").split(".", 1)[0]
        return kind == "EvaluationRecorded" and payload["kind"] == wanted
    return False


def evidence(subject: str, number: int, envelopes: Iterable[Envelope]) -> list[dict[str, Any]]:
    """The newest event that established what `subject` reads on version `number` (the value
    in force is the last one written), as an evidence record; none when nothing did."""
    found = [e for e in envelopes if _establishes(subject, number, e)]
    return [
        {
            "event_id": str(e.event_id),
            "position": e.position,
            "type": e.type,
            "recorded_at": e.recorded_at,
            "actor": e.actor,
        }
        for e in found[-1:]
    ]


def compliance_report(
    profile: str,
    model: ModelState,
    version: VersionState,
    policies: PolicySet,
    envelopes: list[Envelope],
) -> dict[str, Any]:
    """Each requirement of `profile` on `version`: met or not, the value its check saw, and the
    evidence. `envelopes`: the model's stream up to the instant the report is as of."""
    target = policies.target(model, version)
    requirements = []
    for requirement, check in target.requirements(profile):
        subject = parse_gate(requirement.check).subject
        requirements.append(
            {
                "id": requirement.id,
                "title": requirement.title,
                "check": requirement.check,
                "met": check.passed,
                "seen": check.seen,
                "evidence": evidence(subject, version.version, envelopes) if check.passed else [],
            }
        )
    return {
        "profile": profile,
        "model": model.name,
        "version": version.version,
        "policy_version": policies.version,
        "met": bool(requirements) and all(r["met"] for r in requirements),
        "requirements": requirements,
    }
