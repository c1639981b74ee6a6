"""`registrar token create | revoke | list`: tokens from the shell, against the same database the
running system uses (REGISTRAR_DATABASE_URL, or the embedded one under REGISTRAR_HOME), so the
first admin token can be made before any exists. Running API processes pick a change up at once
(the token table's NOTIFY)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from uuid import UUID

from registrar.access.administration import AccessAdministration
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.values import Role
from registrar.domain.errors import DomainError
from registrar.store.database import create_engine
from registrar.store.event_store import PostgresEventStore
from registrar.store.schema_migrations import migrate


def add_token_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token", help="bearer tokens: create, revoke, list")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser(
        "create", help="issue a token; it is printed alone on the last line, and only once"
    )
    create.add_argument("--user", required=True, help="who the token is for")
    create.add_argument(
        "--role", required=True, choices=[role.value for role in Role], help="what it may do"
    )
    create.add_argument("--label", default="", help="what it is for, e.g. 'CI of repo x'")
    revoke = token_commands.add_parser("revoke", help="revoke a token (by id, or the token)")
    revoke.add_argument("token", nargs="?", help="the token's id, or the token itself")
    revoke.add_argument("--user", help="revoke every token of this user instead")
    revoke.add_argument("--reason", default="")
    listing = token_commands.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--user")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")


def shell_actor() -> str:
    """Who acts from the shell, as the audit trail records it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def run_token_command(database_url: str, args: argparse.Namespace) -> int:
    async def run() -> int:
        engine = create_engine(database_url, pool_size=2)
        try:
            await migrate(engine)
            administration = AccessAdministration(PostgresEventStore(engine))
            return await _run(administration, args)
        except DomainError as error:
            print(f"registrar token {args.token_command}: {error.message}", file=sys.stderr)
            return 1
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def _run(administration: AccessAdministration, args: argparse.Namespace) -> int:
    meta = CommandMeta(actor=shell_actor())
    if args.token_command == "create":
        issued = await administration.issue_token(args.user, Role(args.role), meta, args.label)
        print(f"Token {issued.event.token_id} for {args.user} ({args.role}).")
        print("It is shown only now; keep it secret. Send it as 'Authorization: Bearer <token>'.")
        print(issued.token)
        return 0
    if args.token_command == "list":
        for row in await administration.tokens(args.user, include_revoked=args.all):
            revoked = f"  revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else ""
            print(
                f"{row['token_id']}  {row['user']}  {row['role']}"
                f"  issued {row['issued_at']:%Y-%m-%d %H:%M} by {row['issued_by']}"
                f"{'  ' + row['label'] if row['label'] else ''}{revoked}"
            )
        return 0
    if (args.token is None) == (args.user is None):
        print("registrar token revoke: name a token (id or token) or --user", file=sys.stderr)
        return 2
    if args.user is not None:
        tokens = await administration.tokens(args.user)
        for index, row in enumerate(tokens):
            await administration.revoke_token(row["token_id"], meta.part(index), args.reason)
            print(f"revoked {row['token_id']} of {args.user}")
        if not tokens:
            print(f"{args.user} holds no active token")
        return 0
    try:
        token_id = UUID(args.token)
    except ValueError:
        stored = await administration.revoke_token_itself(args.token, meta, args.reason)
    else:
        stored = await administration.revoke_token(token_id, meta, args.reason)
    print(f"revoked {getattr(stored.event, 'token_id', '')} of {getattr(stored.event, 'user', '')}")
    return 0
