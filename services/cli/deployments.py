"""`registrar deployments [--environment E] [--model M] [--drift] [--as-of T]`: what runs where,
or which environments drift from the stage or alias they follow, from the running Registrar
($REGISTRAR_URL, $REGISTRAR_TOKEN), as a table for people or, with --json, as the API's JSON."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from registrar.cli.server_calls import run_with_client

if TYPE_CHECKING:
    from registrar.client import Client


def add_deployments_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deployments = commands.add_parser(
        "deployments",
        help="what runs where (each version's status in each environment), or with --drift the"
        " environments not serving what their stage or alias names (from the running server at"
        " $REGISTRAR_URL, default http://127.0.0.1:8080)",
    )
    deployments.add_argument("--environment", metavar="E", help="only this environment")
    deployments.add_argument("--model", metavar="M", help="only this model")
    deployments.add_argument(
        "--drift",
        action="store_true",
        help="the environments whose serving version differs from their stage's or alias's,"
        " and for how long",
    )
    deployments.add_argument(
        "--as-of", metavar="T", help="RFC 3339 instant, e.g. 2026-03-03T14:00:00Z (default: now)"
    )
    deployments.add_argument(
        "--include-retired", action="store_true", help="also versions retired (not with --drift)"
    )
    deployments.add_argument("--json", action="store_true", help="print the API's JSON answer")


def run_deployments_command(args: argparse.Namespace) -> int:
    return run_with_client("registrar deployments", lambda client: _print(client, args))


def _print(client: Client, args: argparse.Namespace) -> int:
    from registrar.contracts.codec import dumps

    if args.drift:
        if args.include_retired:
            raise ValueError("--include-retired lists deployments; drift has no retired ones")
        drift = client.drift(environment=args.environment, model=args.model, as_of=args.as_of)
        answer = drift.model_dump(mode="json")
        rows = [
            [
                d.environment,
                d.model,
                f"stage {d.follows.stage}" if d.follows.stage else f"alias {d.follows.alias}",
                _shown(d.expected_version),
                _shown(d.serving_version),
                d.reason,
                _instant(d.since),
                _duration(d.lag_seconds),
            ]
            for d in drift.drift
        ]
        header = ["ENVIRONMENT", "MODEL", "FOLLOWS", "EXPECTED", "SERVING", "REASON", "SINCE"]
        header.append("LAG")
        empty = "no drift: every environment serves what its stage or alias names"
    else:
        listed = client.deployments(
            environment=args.environment,
            model=args.model,
            as_of=args.as_of,
            include_retired=args.include_retired,
        )
        answer = listed.model_dump(mode="json")
        rows = [
            [
                d.environment,
                d.model,
                str(d.version),
                d.status,
                _instant(d.since),
                d.deployer,
                d.endpoint or "-",
            ]
            for d in listed.deployments
        ]
        header = ["ENVIRONMENT", "MODEL", "VERSION", "STATUS", "SINCE", "DEPLOYER", "ENDPOINT"]
        empty = "no deployments reported"
    if args.json:
        print(dumps(answer).decode())
    elif rows:
        print(_table([header, *rows]))
    else:
        print(empty)
    return 0


def _shown(version: int | None) -> str:
    return "-" if version is None else str(version)


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _duration(seconds: float) -> str:
    """e.g. 3d 4h, 2h 5m, 7m 12s, 40s."""
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
