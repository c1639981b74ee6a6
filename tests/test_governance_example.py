"""The example governance document Registrar ships (the EU AI Act high-risk profile): printed
by `registrar policy example`, it parses, every gate and requirement in it is understood, and
applied it governs as it says: a high-risk model's Production move needs every requirement."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from registrar.cli.policy import example_document
from registrar.contracts.policies import PolicyDocument
from registrar.contracts.values import Role
from registrar.domain.policies import NO_POLICIES, decide_policy, document_problems, evolve_policies
from registrar.domain.risk import tier_of

BIN = Path(sys.executable).parent


def test_the_example_is_printed_without_a_database_and_applies_cleanly() -> None:
    printed = subprocess.run(
        [str(BIN / "registrar"), "policy", "example"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(BIN), "REGISTRAR_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == example_document()

    document = PolicyDocument.model_validate(tomllib.loads(printed.stdout))

    assert document_problems(document) == []
    [applied] = decide_policy(document, NO_POLICIES, Role.ADMIN)
    policies = evolve_policies(NO_POLICIES, applied)
    [profile] = document.compliance.profiles
    articles = {r.id.split("-", 1)[0] for r in profile.requirements}
    assert articles == {f"art{n}" for n in range(9, 16)}
    assert len(policies.profiles["eu-ai-act-high-risk"]) == len(profile.requirements)


def test_the_example_questionnaire_follows_annex_iii() -> None:
    risk = PolicyDocument.model_validate(tomllib.loads(example_document())).risk

    def tier(area: str, interacts: str = "no") -> str:
        return tier_of({"area": area, "interacts-with-people": interacts}, risk)

    assert tier("none") == "minimal"
    assert tier("none", interacts="yes") == "limited"
    assert tier("employment", interacts="yes") == "high"
    assert tier("social-scoring") == "unacceptable"
    assert "unacceptable" in risk.blocking
