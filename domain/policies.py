"""Promotion policies, pure: the gate parser, gate evaluation against a version, the policy in
force (folded from the `policy` stream), and `decide_policy`, which refuses a policy holding a
gate it cannot parse. No I/O: registrar.commands.promotion_policies loads and appends."""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from registrar.contracts.envelope import Envelope
from registrar.contracts.model_card import CARD_FIELDS
from registrar.contracts.policies import (
    ComplianceProfile,
    GateCheck,
    PolicyApplied,
    PolicyDocument,
    PolicyRule,
    Requirement,
    RiskSettings,
    Scope,
    policy_event_from_payload,
)
from registrar.contracts.values import Role, Stage
from registrar.domain.deployments import environment_problems
from registrar.domain.errors import Forbidden, Invalid
from registrar.domain.state import HELD_STAGES, ModelState, VersionState

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
_PRESENT = ("artifact.digest", "risk.tier")
_SUBJECTS = (
    "metrics.<name> <op> <number>, model_card.<field>, lineage.datasets [<op> <count>],"
    " lineage.parents [<op> <count>], artifact.digest, evaluations.<kind>,"
    " evaluations.<kind>.<metric> <op> <number>, risk.tier or compliance.<profile>"
)
_COMPLIANCE = re.compile(r"compliance\.(?P<profile>[A-Za-z0-9_.-]+)")
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

    def check(self, target: Target) -> GateCheck:
        """This gate on `target`'s version as it is now, with the value it saw."""
        if (profile := _COMPLIANCE.fullmatch(self.subject)) is not None:
            checks = target.requirements(profile["profile"])
            met = sum(1 for _, check in checks if check.passed)
            shown = f"{met} of {len(checks)} met" if checks else "no such profile in force"
            return GateCheck(gate=self.text, passed=bool(checks) and met == len(checks), seen=shown)
        seen = _read(self.subject, target)
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
    if subject.startswith("compliance."):
        if _COMPLIANCE.fullmatch(subject) is None or op is not None:
            raise GateSyntaxError(
                f"gate {text!r}: write compliance.<profile> alone: every requirement of that"
                " profile is met"
            )
        return Gate(written, subject)
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


@dataclass(frozen=True, slots=True)
class Target:
    """What gates read: a version of a model, and the compliance profiles in force."""

    model: ModelState
    version: VersionState
    profiles: Mapping[str, tuple[tuple[Requirement, Gate], ...]] = field(default_factory=dict)

    def requirements(self, profile: str) -> list[tuple[Requirement, GateCheck]]:
        """Each requirement of `profile` with its check on this version (a profile that is not in
        force has none: its gate then fails, for 0 of 0 is not compliance)."""
        return [(r, gate.check(self)) for r, gate in self.profiles.get(profile, ())]


def _read(subject: str, target: Target) -> int | float | str | None:
    """The value of `subject` on the target's version; None when it is absent."""
    version = target.version
    if subject == "risk.tier":
        return target.model.risk.tier if target.model.risk is not None else None
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
    """The rule for one stage or alias, with its gates parsed; `scope` names the scope it comes
    from (None: the document's default rule); `rollback`: it is the document's rollback rule."""

    rule: PolicyRule
    gates: tuple[Gate, ...]
    scope: str | None = None
    rollback: bool = False

    @classmethod
    def of(cls, rule: PolicyRule, scope: str | None = None, rollback: bool = False) -> Policy:
        return cls(rule, tuple(parse_gate(gate) for gate in rule.gates), scope, rollback)

    def check(self, target: Target) -> list[GateCheck]:
        return [gate.check(target) for gate in self.gates]


@dataclass(frozen=True, slots=True)
class ScopedRules:
    scope: Scope
    stages: dict[Stage, Policy]
    aliases: dict[str, Policy]

    def matches(self, model: ModelState) -> bool:
        match = self.scope.match
        if match.names and not any(fnmatch.fnmatchcase(model.name, g) for g in match.names):
            return False
        if any(model.tags.get(key) != value for key, value in match.tags.items()):
            return False
        tier = model.risk.tier if model.risk is not None else None
        return not match.risk_tier or tier in match.risk_tier


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The governance document in force: `version` 0 is "none applied yet" (nothing governed)."""

    version: int = 0
    stages: dict[Stage, Policy] = field(default_factory=dict)
    aliases: dict[str, Policy] = field(default_factory=dict)
    scopes: tuple[ScopedRules, ...] = ()
    profiles: dict[str, tuple[tuple[Requirement, Gate], ...]] = field(default_factory=dict)
    source: PolicyDocument = field(default_factory=PolicyDocument)
    rollback_stages: dict[Stage, Policy] = field(default_factory=dict)
    rollback_aliases: dict[str, Policy] = field(default_factory=dict)

    @property
    def risk(self) -> RiskSettings:
        return self.source.risk

    def for_stage(self, stage: Stage, model: ModelState | None = None) -> Policy | None:
        return self.rule_for(model, stage, None)

    def for_alias(self, alias: str, model: ModelState | None = None) -> Policy | None:
        return self.rule_for(model, None, alias)

    def rule_for(
        self,
        model: ModelState | None,
        stage: Stage | None,
        alias: str | None,
        rollback: bool = False,
    ) -> Policy | None:
        """The rule for a move of `model`: for a rollback, the document's rollback rule for the
        target if it has one (for every model: scopes do not apply to it); else the first scope
        (in the document's order) that matches the model and names the target; else the default
        rule; None: not governed."""
        if rollback:
            found = (
                self.rollback_stages.get(stage)
                if stage is not None
                else self.rollback_aliases.get(alias or "")
            )
            if found is not None:
                return found
        for scoped in self.scopes if model is not None else ():
            found = scoped.stages.get(stage) if stage is not None else scoped.aliases.get(alias)
            if found is not None and scoped.matches(model):  # type: ignore[arg-type]
                return found
        if stage is not None:
            return self.stages.get(stage)
        return self.aliases.get(alias or "")

    def target(self, model: ModelState, version: VersionState) -> Target:
        return Target(model, version, self.profiles)

    def document(self) -> PolicyDocument:
        return self.source


NO_POLICIES = PolicySet()


def _profile(profile: ComplianceProfile) -> tuple[tuple[Requirement, Gate], ...]:
    return tuple((r, parse_gate(r.check)) for r in profile.requirements)


def policies_of(document: PolicyDocument, version: int) -> PolicySet:
    """`document`, parsed: the policy set it puts in force as policy `version`."""
    return PolicySet(
        version=version,
        stages={stage: Policy.of(rule) for stage, rule in document.stages.items()},
        aliases={alias: Policy.of(rule) for alias, rule in document.aliases.items()},
        scopes=tuple(
            ScopedRules(
                scope,
                {stage: Policy.of(rule, scope.name) for stage, rule in scope.stages.items()},
                {alias: Policy.of(rule, scope.name) for alias, rule in scope.aliases.items()},
            )
            for scope in document.scopes
        ),
        profiles={p.name: _profile(p) for p in document.compliance.profiles},
        source=PolicyDocument.model_validate(document.model_dump(exclude={"type", "version"})),
        rollback_stages={
            stage: Policy.of(rule, rollback=True)
            for stage, rule in document.rollbacks.stages.items()
        },
        rollback_aliases={
            alias: Policy.of(rule, rollback=True)
            for alias, rule in document.rollbacks.aliases.items()
        },
    )


def evolve_policies(_: PolicySet, event: PolicyApplied) -> PolicySet:
    """The policy in force after `event`: the one it applies (it replaces the one before)."""
    return policies_of(event, event.version)


def fold_policies(envelopes: Iterable[Envelope], state: PolicySet = NO_POLICIES) -> PolicySet:
    for envelope in envelopes:
        state = evolve_policies(state, policy_event_from_payload(envelope.type, envelope.payload))
    return state


def decide_policy(document: PolicyDocument, current: PolicySet, role: Role) -> list[PolicyApplied]:
    """The event that puts `document` in force, [] if it is the one in force already; refused
    for a caller who is not an admin, or for a gate that cannot be parsed (naming it and why)."""
    if not role.includes(Role.ADMIN):
        raise Forbidden(f"applying a promotion policy needs the admin role; you hold {role.value}")
    problems = document_problems(document)
    if problems:
        raise Invalid("the policy was not applied: " + "; ".join(problems))
    if document == current.document():
        return []
    return [PolicyApplied(version=current.version + 1, **dict(document))]


def document_problems(document: PolicyDocument) -> list[str]:
    """Everything wrong with a governance document, each naming where: gates that cannot be
    parsed, a compliance gate naming no profile (or a requirement checking compliance itself),
    scope or profile names used twice, tiers the risk settings do not define."""
    problems: list[str] = []
    profiles = [p.name for p in document.compliance.profiles]
    tiers = document.risk.tiers

    def gates(where: str, texts: Iterable[str], in_requirement: bool = False) -> None:
        for index, text in enumerate(texts):
            try:
                gate = parse_gate(text)
            except GateSyntaxError as bad:
                problems.append(f"{where}[{index}]: {bad}")
                continue
            named = _COMPLIANCE.fullmatch(gate.subject)
            if named and in_requirement:
                problems.append(f"{where}[{index}]: a requirement cannot check compliance itself")
            elif named and named["profile"] not in profiles:
                problems.append(
                    f"{where}[{index}]: no compliance profile {named['profile']!r}"
                    f" (profiles: {', '.join(profiles) or 'none'})"
                )

    rollbacks = document.rollbacks
    rules = [
        *((f"stages.{stage.value}", rule) for stage, rule in document.stages.items()),
        *((f"aliases.{alias}", rule) for alias, rule in document.aliases.items()),
        *((f"rollbacks.stages.{stage.value}", rule) for stage, rule in rollbacks.stages.items()),
        *((f"rollbacks.aliases.{alias}", rule) for alias, rule in rollbacks.aliases.items()),
    ]
    problems += [
        f"rollbacks.stages.{stage.value}: only Staging and Production are rolled back"
        for stage in rollbacks.stages
        if stage not in HELD_STAGES
    ]
    for index, scope in enumerate(document.scopes):
        here = f"scopes[{index}] ({scope.name})"
        rules += [(f"{here}.stages.{s.value}", rule) for s, rule in scope.stages.items()]
        rules += [(f"{here}.aliases.{a}", rule) for a, rule in scope.aliases.items()]
        unknown = [t for t in scope.match.risk_tier if t not in tiers]
        if unknown:
            problems.append(f"{here}.match.risk_tier: {unknown} are not tiers ({tiers})")
    for where, rule in rules:
        gates(f"{where}.gates", rule.gates)
    for profile in document.compliance.profiles:
        gates(f"compliance.{profile.name}", (r.check for r in profile.requirements), True)
    for kind, names in (("scope", [s.name for s in document.scopes]), ("profile", profiles)):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            problems.append(f"{kind} names used twice: {', '.join(twice)}")
    problems += environment_problems(document.environments)
    risk = document.risk
    questions = {q.id: q for q in risk.questions}
    for tier in [*risk.blocking, *(r.tier for r in risk.rules)]:
        if tier not in tiers:
            problems.append(f"risk: {tier!r} is not one of the tiers {tiers}")
    for index, rule in enumerate(risk.rules):
        for question, answers in rule.when.items():
            asked = questions.get(question)
            if asked is None:
                problems.append(f"risk.rules[{index}]: no question {question!r}")
            elif asked.answers and set(answers) - set(asked.answers):
                problems.append(
                    f"risk.rules[{index}]: {question!r} has no answer"
                    f" {sorted(set(answers) - set(asked.answers))}"
                )
    return problems
