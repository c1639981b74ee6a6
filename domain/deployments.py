"""Deployment rules, pure: a deployer's report becomes an event (any status may follow any: the
deployer says what happened, the registry records it), and drift arithmetic: when an
environment's serving version and the version its stage or alias names last agreed.

The rules: the environment must be one the governance document declares; the version must exist,
and a deleted one may only be reported retired; one version serves per model and environment, so
a version reported serving replaces the one serving there; a report that repeats the version's
status there (same endpoint, deployer and message) changes nothing."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from registrar.contracts.commands import ReportDeployment
from registrar.contracts.deployments import Environment
from registrar.contracts.events import DeploymentReported
from registrar.contracts.values import Stage
from registrar.domain.errors import Conflict, Invalid, VersionNotFound
from registrar.domain.state import ModelState

_SERVED_STAGES = (Stage.STAGING, Stage.PRODUCTION)


def report_deployment(
    command: ReportDeployment,
    model: ModelState,
    environments: dict[str, Environment],
    actor: str,
) -> list[DeploymentReported]:
    """The event recording `command` against `model`, [] if it repeats what is known; refused
    for an environment `environments` (the governance document's) does not declare, a version
    that does not exist, or a deleted version reported as anything but retired."""
    where = command.environment
    if where not in environments:
        declared = ", ".join(sorted(environments)) or "none"
        raise Invalid(
            f"environment {where!r} is not declared in the governance document (declared:"
            f" {declared}); an admin declares it as [environments.{where}], with e.g."
            ' follows = { stage = "Production" }'
        )
    version = model.versions.get(command.version)
    if version is None:
        raise VersionNotFound(
            f"model {model.name!r} has no version {command.version}", model.name, command.version
        )
    if version.deleted and command.status != "retired":
        raise Conflict(
            f"version {command.version} of model {model.name!r} was deleted: it can only be"
            f" reported retired, not {command.status}"
        )
    deployer = command.deployer or actor
    known = version.deployments.get(where)
    if known is not None and (known.status, known.endpoint, known.deployer, known.message) == (
        command.status,
        command.endpoint,
        deployer,
        command.message,
    ):
        return []
    serving = model.serving.get(where)
    replaced = serving if command.status == "serving" and serving != command.version else None
    return [
        DeploymentReported(
            version=command.version,
            environment=where,
            status=command.status,
            endpoint=command.endpoint,
            deployer=deployer,
            message=command.message,
            report_id=command.report_id,
            replaced_version=replaced,
        )
    ]


def checks_drift(environment: Environment, model_name: str) -> bool:
    """Whether drift is checked for `model_name` in `environment` (it follows something, and its
    `models` globs, if any, match the name)."""
    if environment.follows is None:
        return False
    globs = environment.models
    return not globs or any(fnmatch.fnmatchcase(model_name, glob) for glob in globs)


# Drift --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """A version holding something (serving in an environment, in a stage, named by an alias)
    over [start, end); `end` None: still."""

    version: int
    start: datetime
    end: datetime | None = None

    def covers(self, instant: datetime) -> bool:
        return self.start <= instant and (self.end is None or instant < self.end)


def holder_at(spans: Iterable[Span], instant: datetime) -> int | None:
    """The version `spans` name at `instant`: the newest of those covering it (a stage may hold
    several; `models:/m/Production` means the newest), None if none does."""
    return max((s.version for s in spans if s.covers(instant)), default=None)


@dataclass(frozen=True, slots=True)
class Drift:
    expected: int | None
    serving: int | None
    since: datetime

    @property
    def reason(self) -> str:
        """promoted: what should serve is newer than what serves (or nothing serves); demoted:
        what serves was moved away, and an older version, or none, is named instead."""
        newer = self.expected is not None and (self.serving is None or self.expected > self.serving)
        return "promoted" if newer else "demoted"


def drift_at(serving: Sequence[Span], target: Sequence[Span], at: datetime) -> Drift | None:
    """How the serving version and the target's differ at `at` (None: they agree), and since
    when: the end of the last stretch over which they agreed (before either held anything, both
    named nothing: they agreed)."""
    expected, served = holder_at(target, at), holder_at(serving, at)
    if expected == served:
        return None
    edges = sorted(
        {s.start for s in (*serving, *target) if s.start <= at}
        | {s.end for s in (*serving, *target) if s.end is not None and s.end <= at}
    )
    since = edges[0] if edges else at
    # Walk back from `at`: the first stretch [previous edge, edge) on which they agree ends the
    # agreement at `edge`. Both are constant between edges, so the stretch's start tells.
    for previous, edge in zip(reversed(edges[:-1]), reversed(edges), strict=False):
        if holder_at(target, previous) == holder_at(serving, previous):
            since = edge
            break
    return Drift(expected, served, since)


def environment_problems(environments: dict[str, Environment]) -> list[str]:
    """What is wrong with the governance document's environments, each naming where: a follow
    that names both a stage and an alias, or neither, or a stage where nothing is meant to serve."""
    problems = []
    for name, environment in environments.items():
        follows, where = environment.follows, f"environments.{name}.follows"
        if follows is None:
            continue
        if (follows.stage is None) == (follows.alias is None):
            problems.append(
                f'{where}: name exactly one of stage or alias, e.g. {{ stage = "Production" }}'
                ' or { alias = "champion" }'
            )
        elif follows.stage is not None and follows.stage not in _SERVED_STAGES:
            problems.append(
                f"{where}: nothing in stage {follows.stage.value} is meant to serve; follow"
                " Staging or Production, or an alias"
            )
    return problems
