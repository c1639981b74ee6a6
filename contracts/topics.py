"""Kafka topics: their names, what flows on them, and how many partitions Registrar creates; and
the one place a topic's (or consumer group's) full name is made from REGISTRAR_TOPIC_PREFIX."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    """Without the prefix: `topic_name` gives the name on the cluster."""
    partitions: int
    summary: str


def topic_name(topic: Topic, prefix: str = "") -> str:
    """`topic`'s name on the cluster: `prefix` (REGISTRAR_TOPIC_PREFIX, e.g. "team-a.") then
    its name, so several registries share one cluster, each with topics of its own."""
    return f"{prefix}{topic.name}"


def group_name(group: str, prefix: str = "") -> str:
    """A consumer group's id on the cluster, prefixed like the topics: two registries on one
    cluster never join each other's groups (nor rebalance each other)."""
    return f"{prefix}{group}"


REGISTRY_EVENTS = Topic(
    "registry.events",
    8,
    "Every committed event, in stream order: key = stream id, value = the envelope as JSON,"
    " headers type, event-id, position. At least once; consumers skip what they applied.",
)
REGISTRY_PROMOTIONS = Topic(
    "registry.promotions",
    4,
    "One message per stage change or alias move, for deployment systems: key = model name.",
)
TRAINING_COMPLETED = Topic(
    "training.completed",
    4,
    "TrainingCompleted messages from training services: a run, and maybe a version to register.",
)
EVALUATION_COMPLETED = Topic(
    "evaluation.completed",
    4,
    "EvaluationCompleted messages from evaluation pipelines: an evaluation of a version, recorded"
    " once per message id.",
)
DEPLOYMENT_STATUS = Topic(
    "deployment.status",
    4,
    "DeploymentReport messages from deployers: a version's status in an environment, recorded"
    " once per report id.",
)
REGISTRY_COMMANDS = Topic(
    "registry.commands",
    4,
    "Commands (the same contracts as HTTP), key = command id; one result each on"
    " registry.command-results.",
)
COMMAND_RESULTS = Topic(
    "registry.command-results",
    4,
    "The result of each command from registry.commands: key = command id.",
)
DEADLETTER = Topic(
    "registrar.deadletter",
    1,
    "Inbound messages that could not be parsed or validated, with the reason in a header.",
)

ALL_TOPICS = (
    REGISTRY_EVENTS,
    REGISTRY_PROMOTIONS,
    TRAINING_COMPLETED,
    EVALUATION_COMPLETED,
    DEPLOYMENT_STATUS,
    REGISTRY_COMMANDS,
    COMMAND_RESULTS,
    DEADLETTER,
)
