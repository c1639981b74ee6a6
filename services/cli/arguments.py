"""The `registrar` command's arguments: every subcommand, its options and their help."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

from registrar import __version__
from registrar.cli.artifacts import add_artifact_commands
from registrar.cli.deployments import add_deployments_command
from registrar.cli.evaluate import add_evaluation_commands
from registrar.cli.model_card import add_card_command
from registrar.cli.policy import add_policy_commands
from registrar.cli.tokens import add_token_commands
from registrar.logs import LogFormat
from registrar.projections.catalogue import READ_MODELS
from registrar.runtime import PROJECTIONS


def _instant_argument(value: str) -> Any:
    from registrar.projections.stage_history import parse_instant

    try:
        return parse_instant(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    from registrar.projections.lineage import MAX_DEPTH, MAX_EDGES, Direction
    from registrar.projections.lineage_render import FORMATS

    root = argparse.ArgumentParser(
        prog="registrar", description="An event-sourced ML model registry"
    )
    root.add_argument("--version", action="version", version=f"registrar {__version__}")
    root.add_argument(
        "--log-format",
        choices=get_args(LogFormat),
        default=None,
        help="text lines for people (default), or one JSON object a line for machines;"
        " wins over REGISTRAR_LOG_FORMAT",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="run everything in one process: API, relay, projectors, ingest; with an embedded"
        " PostgreSQL and Kafka-compatible broker unless REGISTRAR_DATABASE_URL /"
        " REGISTRAR_KAFKA_BOOTSTRAP name real ones",
    )
    serve = commands.add_parser(
        "serve",
        help="run the API (without REGISTRAR_KAFKA_BOOTSTRAP it also keeps the read models,"
        " following the store)",
    )
    serve.add_argument(
        "--read-models",
        nargs="+",
        choices=READ_MODELS,
        metavar="NAME",
        help="without Kafka: only these read models follow the store in this process (default:"
        f" all of {', '.join(READ_MODELS)}); run the others with `registrar project NAME...`",
    )
    for sub in (up, serve):
        sub.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
        sub.add_argument("--port", type=int, default=None, help="port (default 8080; 0 = any free)")
        sub.add_argument(
            "--auth",
            action="store_true",
            help="require bearer tokens on loopback too (always required beyond loopback)",
        )
    commands.add_parser("relay", help="publish the store's events to registry.events")
    project = commands.add_parser(
        "project",
        help="run projector services: from registry.events with REGISTRAR_KAFKA_BOOTSTRAP, else"
        " following the store",
    )
    project.add_argument(
        "projections",
        nargs="*",
        choices=[[], *PROJECTIONS],
        metavar="NAME",
        help=f"which ({', '.join(PROJECTIONS)}); all when none is named",
    )
    commands.add_parser(
        "ingest",
        help="consume training.completed, evaluation.completed, deployment.status and"
        " registry.commands into the registry",
    )
    commands.add_parser("migrate", help="apply the database schema migrations")
    add_token_commands(commands)
    add_policy_commands(commands)
    add_artifact_commands(commands)
    add_evaluation_commands(commands)
    add_card_command(commands)
    add_deployments_command(commands)
    audit = commands.add_parser(
        "audit", help="the audit trail: export it; tamper evidence: verify the hash chains"
    )
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="recompute every stream's hash chain; exit 1 naming each broken link"
    )
    verify.add_argument(
        "--anchored", type=Path, help="heads exported earlier: also find streams cut short"
    )
    heads = audit_commands.add_parser(
        "heads", help="export every stream's head (version, hash) to anchor elsewhere"
    )
    heads.add_argument("file", type=Path)
    export_audit = audit_commands.add_parser(
        "export",
        help="stream the audit trail (every event and refused attempt) as JSONL or CSV",
    )
    export_audit.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export_audit.add_argument("--actor", help="only this actor's events")
    export_audit.add_argument("--model", help="only this model's (by any name it ever had)")
    export_audit.add_argument("--version", type=int, help="only events about this version")
    export_audit.add_argument(
        "--action", action="append", help="only this event type; repeat for more"
    )
    export_audit.add_argument(
        "--since", type=_instant_argument, help="RFC 3339: recorded at or after"
    )
    export_audit.add_argument("--until", type=_instant_argument, help="RFC 3339: recorded before")
    export_audit.add_argument("--output", type=Path, help="write here rather than to stdout")
    lineage = commands.add_parser(
        "lineage",
        help="draw a node's lineage (dataset:N@V, run:ID, commit:REPO@SHA, version:MODEL/N) as"
        " JSON, Mermaid or DOT, from the database or, with --url, from a running API",
    )
    lineage.add_argument("node", help="e.g. dataset:clicks@v3 or version:churn/2")
    lineage.add_argument("--format", choices=FORMATS, default="json")
    lineage.add_argument("--direction", choices=get_args(Direction), default="both")
    lineage.add_argument(
        "--depth",
        type=int,
        choices=range(1, MAX_DEPTH + 1),
        default=3,
        metavar=f"1..{MAX_DEPTH}",
        help="how many edges away (default 3)",
    )
    lineage.add_argument(
        "--max-edges",
        type=int,
        default=MAX_EDGES,
        help=f"draw at most this many edges, nearest first (default {MAX_EDGES})",
    )
    lineage.add_argument("--url", help="a running Registrar API, e.g. http://localhost:8080")

    replay = commands.add_parser(
        "replay",
        help="rebuild read models from the event store into fresh tables, swapped in once caught"
        " up (queries keep reading the old ones meanwhile); an interrupted replay resumes",
    )
    replay.add_argument(
        "--projection",
        action="append",
        choices=list(READ_MODELS),
        metavar="NAME",
        help=f"which read model ({', '.join(READ_MODELS)}); repeatable; all when none is named",
    )
    replay.add_argument(
        "--batch-size",
        type=int,
        default=100_000,
        help="events per transaction (default 100000: about 1 GB of memory for 10,000 models;"
        " smaller batches use less and run slower)",
    )
    replay.add_argument(
        "--restart", action="store_true", help="drop a half-built copy instead of resuming it"
    )
    asyncapi = commands.add_parser(
        "asyncapi", help="write the AsyncAPI document of every topic (JSON, or YAML for .yaml)"
    )
    asyncapi.add_argument("file", type=Path, help="where to write it, e.g. asyncapi.json")
    contracts = commands.add_parser("contracts", help="the public contracts")
    contracts_commands = contracts.add_subparsers(dest="contracts_command", required=True)
    export = contracts_commands.add_parser("export", help="write every contract's JSON Schema")
    export.add_argument("directory", type=Path)
    return root
