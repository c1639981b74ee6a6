"""Risk assessment, pure: a tier from the questionnaire's answers (the governance document's
rules) or set directly by the assessor role, and whether a model's tier blocks its promotion."""

from __future__ import annotations

from registrar.contracts.commands import AssessRisk
from registrar.contracts.events import RiskAssessed
from registrar.contracts.policies import RiskSettings
from registrar.contracts.values import Stage
from registrar.domain.approvals import DecisionContext
from registrar.domain.errors import Conflict, Forbidden, Invalid
from registrar.domain.state import ModelState

PROMOTING_STAGES = (Stage.STAGING, Stage.PRODUCTION)


def assess_risk(command: AssessRisk, model: ModelState, context: DecisionContext) -> RiskAssessed:
    settings = context.policies.risk
    if command.tier is not None:
        if command.tier not in settings.tiers:
            raise Invalid(f"tier {command.tier!r} is not one of {', '.join(settings.tiers)}")
        if not context.role.includes(settings.assessor_role):
            raise Forbidden(
                f"setting a risk tier directly needs the {settings.assessor_role.value} role;"
                f" {context.actor} holds {context.role.value}: answer the questionnaire instead"
            )
        tier, method = command.tier, "direct"
    else:
        tier, method = tier_of(command.answers, settings), "questionnaire"
    return RiskAssessed(
        tier=tier,
        method=method,
        answers=dict(command.answers),
        rationale=command.rationale,
        assessed_by=context.actor,
        policy_version=context.policies.version,
    )


def tier_of(answers: dict[str, str], settings: RiskSettings) -> str:
    """The tier the answers put a model in: the highest tier of the rules they match, else the
    lowest tier. Every question must be answered, with one of its answers."""
    questions = {q.id: q for q in settings.questions}
    if not questions:
        raise Invalid(
            "the governance document has no risk questionnaire: an assessor sets the tier"
            ' directly ({"tier": ..., "rationale": ...})'
        )
    problems = [f"no question {q!r}" for q in answers if q not in questions]
    problems += [f"{q!r} is not answered" for q in questions if q not in answers]
    problems += [
        f"{q!r}: {a!r} is not one of {', '.join(questions[q].answers)}"
        for q, a in answers.items()
        if q in questions and questions[q].answers and a not in questions[q].answers
    ]
    if problems:
        raise Invalid("the risk questionnaire: " + "; ".join(problems))
    matched = [
        rule.tier
        for rule in settings.rules
        if all(answers.get(q) in allowed for q, allowed in rule.when.items())
    ]
    return max(matched, key=settings.tiers.index) if matched else settings.tiers[0]


def refuse_if_blocked(
    model: ModelState, settings: RiskSettings, stage: Stage | None, alias: str | None
) -> None:
    """A promotion (to Staging or Production, or of an alias) of a model whose tier blocks it."""
    promotes = alias is not None or stage in PROMOTING_STAGES
    if promotes and model.risk is not None and model.risk.tier in settings.blocking:
        target = f"stage {stage.value}" if stage is not None else f"alias {alias!r}"
        raise Conflict(
            f"model {model.name!r} is assessed {model.risk.tier!r} risk, which blocks every"
            f" promotion: it cannot move to {target}"
        )
