"""`registrar policy apply FILE | show`: the promotion policy from a TOML file, against the same
database the running system uses (REGISTRAR_DATABASE_URL, or the embedded one under
REGISTRAR_HOME). The shell acts as an admin; a policy with a gate that cannot be parsed is
refused whole, naming the gate and why, and nothing changes."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tomllib
from pathlib import Path

from pydantic import ValidationError

from registrar.cli.tokens import shell_actor
from registrar.commands.promotion_policies import PromotionPolicies
from registrar.contracts.codec import dumps
from registrar.contracts.identifiers import uuid7
from registrar.contracts.policies import PolicyDocument
from registrar.contracts.values import Role
from registrar.domain.errors import DomainError
from registrar.store.database import create_engine
from registrar.store.event_store import PostgresEventStore
from registrar.store.schema_migrations import migrate


def add_policy_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser("policy", help="promotion policies: apply a TOML file, show")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    apply = policy_commands.add_parser(
        "apply", help="put the policy in FILE (TOML) in force; it replaces the one in force"
    )
    apply.add_argument("file", type=Path)
    policy_commands.add_parser("show", help="print the policy in force, as JSON")
    policy_commands.add_parser(
        "example",
        help="print an example governance document: the EU AI Act high-risk profile (TOML)",
    )


EXAMPLE = "eu-ai-act-high-risk.toml"


def example_document() -> str:
    """The example governance document shipped with Registrar."""
    from importlib.resources import files

    return (files("registrar.contracts") / "governance" / EXAMPLE).read_text(encoding="utf-8")


def read_policy_file(path: Path) -> PolicyDocument:
    """The policy in a TOML file; ValueError saying what is wrong with it."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    try:
        return PolicyDocument.model_validate(raw)
    except ValidationError as invalid:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in invalid.errors()
        )
        raise ValueError(f"{path}: {problems}") from None


def run_policy_command(database_url: str, args: argparse.Namespace) -> int:
    document = None
    if args.policy_command == "apply":
        try:
            document = read_policy_file(args.file)
        except ValueError as error:
            print(f"registrar policy apply: {error}", file=sys.stderr)
            return 2

    async def run() -> int:
        engine = create_engine(database_url, pool_size=2)
        try:
            await migrate(engine)
            policies = PromotionPolicies(PostgresEventStore(engine))
            if document is None:
                stream = await policies.load()
                view = {"version": stream.policies.version}
                view.update(stream.policies.document().model_dump(mode="json"))
                print(dumps(view).decode())
                return 0
            stream, changed = await policies.apply(
                document, actor=shell_actor(), role=Role.ADMIN, command_id=uuid7()
            )
        except DomainError as error:
            print(f"registrar policy {args.policy_command}: {error.message}", file=sys.stderr)
            return 1
        finally:
            await engine.dispose()
        version = stream.policies.version
        if changed:
            print(f"applied promotion policy version {version}")
        else:
            print(f"unchanged: that policy is in force already (version {version})")
        return 0

    return asyncio.run(run())
