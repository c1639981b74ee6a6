"""`registrar card NAME VERSION`: a version's model card from the running Registrar
($REGISTRAR_URL, $REGISTRAR_TOKEN), printed as Markdown (default), HTML or JSON; with --as-of, as
it stood at that instant."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from registrar.cli.server_calls import run_with_client

if TYPE_CHECKING:
    from registrar.client import Client


def add_card_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    card = commands.add_parser(
        "card",
        help="print a version's model card as Markdown, HTML or JSON (from the running server"
        " at $REGISTRAR_URL, default http://127.0.0.1:8080)",
    )
    card.add_argument("name", metavar="NAME", help="the model")
    card.add_argument("version", metavar="VERSION", type=int)
    card.add_argument("--format", choices=("markdown", "html", "json"), default="markdown")
    card.add_argument(
        "--as-of",
        metavar="T",
        help="RFC 3339 instant, e.g. 2026-03-03T14:00:00Z: the card as it stood then",
    )


def run_card_command(args: argparse.Namespace) -> int:
    return run_with_client("registrar card", lambda client: _print_card(client, args))


def _print_card(client: Client, args: argparse.Namespace) -> int:
    from registrar.contracts.codec import dumps

    card = client.model_card(args.name, args.version, format=args.format, as_of=args.as_of)
    if isinstance(card, str):
        sys.stdout.write(card)
    else:
        print(dumps(card.model_dump(mode="json")).decode())
    return 0
