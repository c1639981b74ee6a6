"""JSON Schema export of every contract, for other teams' code generators and validators."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from pydantic import BaseModel

from registrar.contracts.codec import canonical
from registrar.contracts.command_messages import CommandMessage, CommandResult
from registrar.contracts.commands import Command
from registrar.contracts.deployments import DeploymentReport
from registrar.contracts.envelope import Envelope
from registrar.contracts.evaluations import EvaluationCompleted
from registrar.contracts.events import AccessEvent, Event
from registrar.contracts.integration import Promotion
from registrar.contracts.policies import PolicyApplied
from registrar.contracts.training import TrainingCompleted
from registrar.contracts.webhooks import WebhookEvent


def contract_models() -> dict[str, type[BaseModel]]:
    """Every exported contract, by name: the envelope, each command and each event payload, and
    the messages exchanged with other teams' services (training runs, promotions, commands), and
    the events of the access, policy and webhook streams."""
    models: dict[str, type[BaseModel]] = {
        "Envelope": Envelope,
        "TrainingCompleted": TrainingCompleted,
        "EvaluationCompleted": EvaluationCompleted,
        "DeploymentReport": DeploymentReport,
        "Promotion": Promotion,
        "CommandMessage": CommandMessage,
        "CommandResult": CommandResult,
        "PolicyApplied": PolicyApplied,
    }
    for union in (Command, Event, AccessEvent, WebhookEvent):
        for cls in get_args(get_args(union)[0]):
            models[cls.__name__] = cls
    return models


def export_json_schemas(directory: Path) -> list[Path]:
    """Write `<Name>.schema.json` for every contract into `directory`; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in sorted(contract_models().items()):
        path = directory / f"{name}.schema.json"
        path.write_bytes(canonical(model.model_json_schema()) + b"\n")
        written.append(path)
    return written
