"""Promotion policies, pure: the gate parser, gate evaluation against a version, the policy in
force (folded from the `policy` stream), and `decide_policy`, which refuses a policy holding a
gate it cannot parse. No I/O: registrar.commands.promotion_policies loads and appends."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from registrar.contracts.envelope import Envelope
from registrar.contracts.model_card import CARD_FIELDS
from registrar.contracts.policies import (
    GateCheck,
    PolicyApplied,
    PolicyDocument,
    PolicyRule,
    policy_event_from_payload,
)
from registrar.contracts.values import Role, Stage
from registrar.domain.errors import Forbidden, Invalid
from registrar.domain.state import VersionState

_COMPARISON = re.compile(
    r"^(?P<subject>[^<>=!]+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[^<>=!]*)$"
)
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_COUNTED = {"lineage.datasets": "datasets", "lineage.parents": "parents"}
_PRESENT = ("artifact.digest",)
_SUBJECTS = (
    "metrics.<name> <op> <number>, model_card.<field>, lineage.datasets [<op> <count>],"
    " lineage.parents [<op> <count>], artifact.digest, evaluations.<kind> or"
    " evaluations.<kind>.<metric> <op> <number>"
)
_EVALUATION = re.compile(r"evaluations\.(?P<kind>[a-z][a-z0-9_-]*)(?:\.(?P<metric>.+))?")
_SEEN_TEXT_LENGTH = 200
"""A card field a gate saw is recorded up to this many characters (the card holds the rest)."""


class GateSyntaxError(ValueError):
    """A gate that cannot be parsed; the message says why and what would be understood."""


@dataclass(frozen=True, slots=True)
class Gate:
    """A parsed gate: `subject` is what it reads (e.g. "metrics.auc"), then an optional
    comparison with `threshold`; no comparison means "present and not empty"."""

    text: str
    subject: str
    op: str | None = None
    threshold: float | None = None

    def check(self, version: VersionState) -> GateCheck:
        """This gate on `version` as it is now, with the value it saw."""
        seen = _read(self.subject, version)
        if self.op is None:
            passed = seen is not None and seen != ""
        else:
            assert self.threshold is not None
            passed = isinstance(seen, int | float) and _OPERATORS[self.op](seen, self.threshold)
        return GateCheck(gate=self.text, passed=passed, seen=seen)


def parse_gate(text: str) -> Gate:
    """The gate `text` means, or GateSyntaxError saying what is wrong with it."""
    written = text.strip()
    if not written:
        raise GateSyntaxError(f"empty gate: write one of {_SUBJECTS}")
    match = _COMPARISON.fullmatch(written)
    if match is None and any(char in written for char in "<>=!"):
        raise GateSyntaxError(
            f"gate {text!r}: cannot read the comparison; compare with one of"
            f" {', '.join(_OPERATORS)} and a number, e.g. metrics.auc >= 0.85"
        )
    subject, op, value = (
        (match["subject"].strip(), match["op"], match["value"].strip())
        if match
        else (written, None, None)
    )
    if subject.startswith("metrics."):
        if not subject.removeprefix("metrics."):
            raise GateSyntaxError(f"gate {text!r}: name the metric, e.g. metrics.auc >= 0.85")
        if op is None:
            raise GateSyntaxError(
                f"gate {text!r}: a metric gate compares the metric with a number,"
                f" e.g. {subject} >= 0.85"
            )
        return Gate(written, subject, op, _number(text, value))
    if subject.startswith("model_card."):
        name = subject.removeprefix("model_card.")
        if name not in CARD_FIELDS:
            raise GateSyntaxError(
                f"gate {text!r}: the model card has no field {name!r};"
                f" it has {', '.join(CARD_FIELDS)}"
            )
        if op is not None:
            raise GateSyntaxError(
                f"gate {text!r}: a model-card gate requires the field to be filled in;"
                f" write {subject} alone"
            )
        return Gate(written, subject)
    if subject in _COUNTED:
        if op is None:
            return Gate(written, subject, ">=", 1.0)
        count = _number(text, value)
        if count < 0 or count != int(count):
            raise GateSyntaxError(
                f"gate {text!r}: {subject} counts, compare it with a whole number"
            )
        return Gate(written, subject, op, count)
    if subject.startswith("evaluations."):
        found = _EVALUATION.fullmatch(subject)
        if found is None:
            raise GateSyntaxError(
                f"gate {text!r}: write evaluations.<kind> (one exists) or"
                " evaluations.<kind>.<metric> <op> <number>, e.g."
                " evaluations.fairness.demographic_parity_difference <= 0.1"
            )
        if found["metric"] is None:
            if op is not None:
                raise GateSyntaxError(
                    f"gate {text!r}: evaluations.<kind> requires one to exist; write it alone,"
                    " or compare one of its metrics: evaluations.<kind>.<metric> <op> <number>"
                )
            return Gate(written, subject)
        if op is None:
            raise GateSyntaxError(
                f"gate {text!r}: compare the evaluation's metric with a number, e.g."
                f" {subject} <= 0.1"
            )
        return Gate(written, subject, op, _number(text, value))
    if subject in _PRESENT:
        if op is not None:
            raise GateSyntaxError(f"gate {text!r}: {subject} must be present; write it alone")
        return Gate(written, subject)
    raise GateSyntaxError(f"gate {text!r}: unknown subject {subject!r}; write one of {_SUBJECTS}")


def _number(text: str, value: str | None) -> float:
    try:
        number = float(value or "")
    except ValueError:
        raise GateSyntaxError(f"gate {text!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise GateSyntaxError(f"gate {text!r}: compare with a finite number, not {value!r}")
    return number


def _read(subject: str, version: VersionState) -> int | float | str | None:
    """The value of `subject` on `version`; None when it is absent."""
    if subject.startswith("metrics."):
        return version.metrics.get(subject.removeprefix("metrics."))
    if subject.startswith("model_card."):
        value = version.card.get(subject.removeprefix("model_card."), "")
        return value[:_SEEN_TEXT_LENGTH] if value else None
    if subject in _COUNTED:
        return len(getattr(version, _COUNTED[subject]))
    if subject == "artifact.digest":
        return version.digest or None
    if (found := _EVALUATION.fullmatch(subject)) is not None:
        newest = version.newest_evaluation(found["kind"])
        if newest is None:
            return None
        if found["metric"] is None:  # present: the evaluation's id is what the gate saw
            return newest.evaluation_id
        return newest.evaluation.metric(found["metric"])
    raise ValueError(f"no reader for gate subject {subject!r}")  # parse_gate admits no other


@dataclass(frozen=True, slots=True)
class Policy:
    """The rule for one stage or alias, with its gates parsed."""

    rule: PolicyRule
    gates: tuple[Gate, ...]

    @classmethod
    def of(cls, rule: PolicyRule) -> Policy:
        return cls(rule, tuple(parse_gate(gate) for gate in rule.gates))

    def check(self, version: VersionState) -> list[GateCheck]:
        return [gate.check(version) for gate in self.gates]


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The promotion policy in force: `version` 0 is "none applied yet" (nothing governed)."""

    version: int = 0
    stages: dict[Stage, Policy] = field(default_factory=dict)
    aliases: dict[str, Policy] = field(default_factory=dict)

    def for_stage(self, stage: Stage) -> Policy | None:
        return self.stages.get(stage)

    def for_alias(self, alias: str) -> Policy | None:
        return self.aliases.get(alias)

    def document(self) -> PolicyDocument:
        return PolicyDocument(
            stages={stage: policy.rule for stage, policy in self.stages.items()},
            aliases={alias: policy.rule for alias, policy in self.aliases.items()},
        )


NO_POLICIES = PolicySet()


def evolve_policies(_: PolicySet, event: PolicyApplied) -> PolicySet:
    """The policy in force after `event`: the one it applies (it replaces the one before)."""
    return PolicySet(
        version=event.version,
        stages={stage: Policy.of(rule) for stage, rule in event.stages.items()},
        aliases={alias: Policy.of(rule) for alias, rule in event.aliases.items()},
    )


def fold_policies(envelopes: Iterable[Envelope], state: PolicySet = NO_POLICIES) -> PolicySet:
    for envelope in envelopes:
        state = evolve_policies(state, policy_event_from_payload(envelope.type, envelope.payload))
    return state


def decide_policy(document: PolicyDocument, current: PolicySet, role: Role) -> list[PolicyApplied]:
    """The event that puts `document` in force, [] if it is the one in force already; refused
    for a caller who is not an admin, or for a gate that cannot be parsed (naming it and why)."""
    if not role.includes(Role.ADMIN):
        raise Forbidden(f"applying a promotion policy needs the admin role; you hold {role.value}")
    problems = []
    targets = [
        *((f"stages.{stage.value}", rule) for stage, rule in document.stages.items()),
        *((f"aliases.{alias}", rule) for alias, rule in document.aliases.items()),
    ]
    for where, rule in targets:
        for index, gate in enumerate(rule.gates):
            try:
                parse_gate(gate)
            except GateSyntaxError as bad:
                problems.append(f"{where}.gates[{index}]: {bad}")
    if problems:
        raise Invalid("the policy was not applied: " + "; ".join(problems))
    if document == current.document():
        return []
    return [PolicyApplied(version=current.version + 1, **dict(document))]
