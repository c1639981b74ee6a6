"""The `registrar` command: run the system, its parts, and the tools around it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registrar.cli.arguments import parser
from registrar.cli.artifacts import run_artifacts_command
from registrar.cli.deployments import run_deployments_command
from registrar.cli.evaluate import run_evaluate_command
from registrar.cli.model_card import run_card_command
from registrar.logs import configure_logging
from registrar.projections.catalogue import READ_MODELS
from registrar.runtime import PROJECTIONS, Roles, run_event_loop, tune_garbage_collector
from registrar.settings import Settings, SettingsError
from registrar.store.database import NoDatabase, database_unreachable


def _run_roles(
    settings: Settings,
    roles: Roles,
    command: str,
    host: str,
    port: int,
    auth: bool = False,
    log_format: str = "text",
) -> int:
    """Run `roles` in this process. `up` brings its own PostgreSQL and Kafka when none is
    configured; every other command runs against the configured ones."""
    from registrar.access.mode import auth_mode
    from registrar.access.principal import Principal
    from registrar.bus.kafka_broker import resolve_broker
    from registrar.companion import CompanionConfig, start_companion, stop_companion, until_ended
    from registrar.runtime import Process, run
    from registrar.store.database import resolve_database
    from registrar.watchdog import start_watchdog

    try:
        mode = auth_mode(settings.auth, auth, host)
    except ValueError as error:
        print(f"registrar {command}: {error}", file=sys.stderr)
        return 2
    ingest_as = Principal(settings.ingest_user, settings.ingest_role)
    from registrar.artifacts.blobs import open_blob_store

    try:
        blobs = open_blob_store(settings.artifacts_uri, settings.home) if roles.api else None
    except ValueError as error:
        print(f"registrar {command}: REGISTRAR_ARTIFACTS_URI: {error}", file=sys.stderr)
        return 2

    standalone = command == "up"
    # `up` and `serve` run the registry: without a configured database they use (or make) the
    # embedded one under REGISTRAR_HOME. The other roles join a registry that runs elsewhere.
    embedded_database = command in ("up", "serve")
    needs_kafka = roles.relay or "promotions" in roles.projections or roles.ingest
    missing = [
        variable
        for variable, value, needed in (
            ("REGISTRAR_DATABASE_URL", settings.database_url, not embedded_database),
            ("REGISTRAR_KAFKA_BOOTSTRAP", settings.kafka_bootstrap, needs_kafka),
        )
        if needed and not value and not standalone
    ]
    if missing:
        print(
            f"registrar {command} needs {' and '.join(missing)} (or use `registrar up`, which"
            " starts an embedded PostgreSQL and Kafka-compatible broker)",
            file=sys.stderr,
        )
        return 2
    database_url, embedded_pg = resolve_database(settings.database_url, settings.home)
    bootstrap, embedded_kafka = (
        resolve_broker(settings.kafka_bootstrap, settings.home)
        if standalone
        else (settings.kafka_bootstrap, None)
    )
    if embedded_pg is not None or embedded_kafka is not None:
        start_watchdog(
            embedded_pg.pgdata if embedded_pg is not None else None,
            embedded_pg.system_user if embedded_pg is not None else None,
            [embedded_kafka.process.pid] if embedded_kafka and embedded_kafka.process else [],
        )
    started: list[Process] = []

    def announce(process: Process) -> None:
        started.append(process)
        if process.server is not None:
            bound = process.server.servers[0].sockets[0].getsockname()
            print(f"Registrar is up at http://{bound[0]}:{bound[1]}  (API docs: /docs)")
        database = (
            f"embedded PostgreSQL in {settings.home / 'postgres'}" if embedded_pg else "PostgreSQL"
        )
        if bootstrap is None:
            bus = "no Kafka (read models follow the store)"
        elif embedded_kafka is not None:
            bus = f"embedded Kafka-compatible broker (Tansu) at {bootstrap}"
        else:
            bus = f"Kafka at {bootstrap}"
        parts = [
            name
            for name, on in (("API", roles.api), ("relay", roles.relay), ("ingest", roles.ingest))
            if on
        ]
        parts += [f"projector {name}" for name in roles.projections]
        parts += [f"read model {name}" for name in roles.follow]
        artifacts = f" Artifacts: {blobs.description}." if blobs is not None else ""
        print(f"Running: {', '.join(parts)}. Database: {database}.{artifacts} Bus: {bus}.")
        if roles.api:
            print(mode.announcement())
        print("Ctrl-C stops it.", flush=True)

    tune_garbage_collector()
    here, companion = roles, None
    if standalone and bootstrap is not None:
        # Two processes, two cores: the API and the relay here, the consumers beside them.
        here = Roles(api=roles.api, relay=roles.relay)
        companion = start_companion(
            CompanionConfig(
                Roles(projections=roles.projections, ingest=roles.ingest),
                database_url,
                bootstrap,
                mode.required,
                ingest_as.user,
                ingest_as.role.value,
                settings.log_level,
                log_format,
                settings.topic_prefix,
            )
        )
    try:
        run_event_loop(
            run(
                here,
                database_url,
                bootstrap,
                host=host,
                port=port,
                query_wait_seconds=settings.query_wait_seconds,
                auth_required=mode.required,
                ingest_as=ingest_as,
                on_started=announce,
                beside=[until_ended(companion)] if companion is not None else [],
                blobs=blobs,
                topic_prefix=settings.topic_prefix,
            )
        )
    finally:
        if companion is not None:
            stop_companion(companion)
        if embedded_kafka is not None:
            embedded_kafka.stop()
    if started:
        print("Registrar stopped.", flush=True)
    return 0 if started else 1


def _serving(settings: Settings, args: argparse.Namespace) -> Roles:
    """`registrar serve`: the API, and without Kafka the read models it keeps itself."""
    if settings.kafka_bootstrap:
        if args.read_models:
            raise ValueError(
                "--read-models is for running without Kafka: with REGISTRAR_KAFKA_BOOTSTRAP set,"
                " projector services fed by Kafka keep the read models (`registrar project`)"
            )
        return Roles(api=True)
    return Roles(api=True, follow=tuple(args.read_models or READ_MODELS))


def _projecting(settings: Settings, args: argparse.Namespace) -> Roles:
    """`registrar project`: projector services fed by Kafka, or without Kafka read models that
    follow the store (in a process of their own, beside `registrar serve --read-models ...`)."""
    named = tuple(args.projections)
    if settings.kafka_bootstrap:
        return Roles(projections=named or PROJECTIONS)
    if "promotions" in named:
        raise ValueError(
            "the promotions projector publishes to Kafka: set REGISTRAR_KAFKA_BOOTSTRAP"
        )
    return Roles(follow=named or tuple(READ_MODELS))


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from registrar.cli.tokens import run_token_command
    from registrar.store.database import registry_database

    url, _server = registry_database(settings)
    return run_token_command(url, args)


def _policy(settings: Settings, args: argparse.Namespace) -> int:
    from registrar.cli.policy import example_document, run_policy_command
    from registrar.store.database import registry_database

    if args.policy_command == "example":  # needs no database
        print(example_document(), end="")
        return 0
    url, _server = registry_database(settings)
    return run_policy_command(url, args)


def _migrate(settings: Settings) -> int:
    from registrar.store.database import create_engine, registry_database
    from registrar.store.schema_migrations import migrate

    url, _server = registry_database(settings)

    async def run() -> list[str]:
        engine = create_engine(url, pool_size=1)
        try:
            return await migrate(engine)
        finally:
            await engine.dispose()

    applied = asyncio.run(run())
    print("applied: " + ", ".join(applied) if applied else "the schema is up to date")
    return 0


def _audit_export(settings: Settings, args: argparse.Namespace) -> int:
    """Stream the audit trail's matching rows, chunk by chunk, to --output or stdout."""
    from registrar.projections.audit_trail import AuditFilter, exported, resolved
    from registrar.store.database import create_engine, registry_database
    from registrar.store.event_store import PostgresEventStore

    try:
        chosen = AuditFilter(
            actor=args.actor,
            model=args.model,
            version=args.version,
            actions=tuple(args.action or ()),
            since=args.since,
            until=args.until,
        )
    except ValueError as refused:
        print(f"registrar audit export: {refused}", file=sys.stderr)
        return 2
    url, _server = registry_database(settings)

    async def run() -> int:
        engine = create_engine(url, pool_size=2)
        output = sys.stdout.buffer if args.output is None else args.output.open("wb")
        lines = 0
        try:
            audit_filter = await resolved(chosen, PostgresEventStore(engine))
            async for line in exported(engine, audit_filter, args.format):
                output.write(line)
                lines += 1
        finally:
            if args.output is not None:
                output.close()
            await engine.dispose()
        rows = lines - (args.format == "csv")  # the CSV header is not a row
        print(f"wrote {rows} rows to {args.output or 'stdout'}", file=sys.stderr)
        return 0

    return asyncio.run(run())


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    if args.audit_command == "export":
        return _audit_export(settings, args)
    from registrar.contracts.codec import dumps, loads
    from registrar.store.chain_verification import heads_from_json, heads_to_json, verify_chains
    from registrar.store.database import create_engine, registry_database
    from registrar.store.event_store import PostgresEventStore

    url, _server = registry_database(settings)
    anchored = None
    if args.audit_command == "verify" and args.anchored is not None:
        anchored = heads_from_json(loads(args.anchored.read_bytes())["heads"])

    async def run() -> int:
        engine = create_engine(url, pool_size=2)
        try:
            report = await verify_chains(PostgresEventStore(engine), anchored)
        finally:
            await engine.dispose()
        if args.audit_command == "heads":
            exported = {"heads_digest": report.heads_digest, "heads": heads_to_json(report.heads)}
            args.file.write_bytes(dumps(exported))
            print(f"wrote the heads of {report.streams} streams to {args.file}")
            print(f"heads digest (anchor this): {report.heads_digest}")
            return 0
        for link in report.broken:
            print(f"BROKEN stream {link.stream_id} at version {link.version}: {link.problem}")
        verdict = "intact" if report.intact else f"{len(report.broken)} broken"
        print(f"{report.streams} streams, {report.events} events: {verdict}")
        print(f"heads digest: {report.heads_digest}")
        return 0 if report.intact else 1

    return asyncio.run(run())


def _lineage(settings: Settings, args: argparse.Namespace) -> int:
    """Print a node's lineage graph, read from the API at --url or straight from the database."""
    import httpx

    from registrar.domain.errors import DomainError
    from registrar.projections.lineage import graph
    from registrar.projections.lineage_render import render
    from registrar.store.database import create_engine, registry_database

    if args.url:
        query = {
            "node": args.node,
            "direction": args.direction,
            "depth": args.depth,
            "max_edges": args.max_edges,
        }
        try:
            response = httpx.get(f"{args.url.rstrip('/')}/v1/lineage", params=query, timeout=60)
        except httpx.HTTPError as failed:
            print(f"cannot reach {args.url}: {failed}", file=sys.stderr)
            return 1
        if response.status_code != 200:
            print(response.json()["error"]["message"], file=sys.stderr)
            return 1
        drawn = response.json()
    else:
        url, _server = registry_database(settings)

        async def read() -> dict[str, Any]:
            engine = create_engine(url, pool_size=1)
            try:
                async with engine.connect() as conn:
                    return await graph(conn, args.node, args.direction, args.depth, args.max_edges)
            finally:
                await engine.dispose()

        try:
            drawn = asyncio.run(read())
        except DomainError as refused:
            print(refused.message, file=sys.stderr)
            return 1
    sys.stdout.write(render(drawn, args.format))
    if drawn.get("truncated"):
        print(
            f"registrar lineage: more than {args.max_edges} edges; drew the nearest"
            " (raise --max-edges or lower --depth)",
            file=sys.stderr,
        )
    return 0


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild read models one after another, each swapped in once caught up."""
    from registrar.projections.catalogue import read_model
    from registrar.projector.replay import ProgressBar, ReplayBusy, replay
    from registrar.store.database import create_engine, registry_database
    from registrar.store.event_store import PostgresEventStore

    url, _server = registry_database(settings)
    # A rebuild holds a batch of events and every model's state: at the default threshold the
    # collector walked them all over and over, a fifth of the CPU (bench/rebuild.py).
    tune_garbage_collector()

    async def run() -> int:
        engine = create_engine(url, pool_size=4)
        store = PostgresEventStore(engine)
        try:
            for name in args.projection or READ_MODELS:
                bar = ProgressBar(f"replay {name}")
                try:
                    result = await replay(
                        store,
                        read_model(name, store),
                        batch_size=args.batch_size,
                        restart=args.restart,
                        progress=bar,
                    )
                except (ReplayBusy, TimeoutError, ValueError) as refused:
                    print(f"registrar replay {name}: {refused}", file=sys.stderr)
                    return 1
                bar.finish(result)
        finally:
            await engine.dispose()
        return 0

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        print("\nreplay interrupted: run it again to resume", file=sys.stderr)
        return 130


def _write_asyncapi(path: Path, topic_prefix: str = "") -> int:
    from importlib.metadata import version

    from registrar.bus.asyncapi import specification

    document = specification(version("registrar"), topic_prefix).to_specification()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        document.to_yaml() if path.suffix in (".yaml", ".yml") else document.to_json(),
        encoding="utf-8",
    )
    print(f"wrote the AsyncAPI document of {len(document.channels)} channels to {path}")
    return 0


def _export_contracts(directory: Path) -> int:
    from registrar.contracts.schemas import export_json_schemas

    written = export_json_schemas(directory)
    print(f"wrote {len(written)} JSON Schemas to {directory}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as invalid:
        print(f"registrar {args.command}: {invalid}", file=sys.stderr)
        return 2
    try:
        return _command(args, settings)
    except NoDatabase as missing:
        print(f"registrar {args.command}: {missing}", file=sys.stderr)
        return 2
    except Exception as failed:
        unreachable = database_unreachable(failed, settings.database_url)
        if unreachable is None:
            raise
        print(f"registrar {args.command}: {unreachable}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace, settings: Settings) -> int:
    log_format = args.log_format or settings.log_format
    configure_logging(settings.log_level, log_format)
    make_roles: Callable[[], Roles] | None = {
        "up": Roles.everything,
        "serve": lambda: _serving(settings, args),
        "relay": lambda: Roles(relay=True),
        "project": lambda: _projecting(settings, args),
        "ingest": lambda: Roles(ingest=True),
    }.get(args.command)
    if make_roles is not None:
        try:
            roles = make_roles()
        except ValueError as refused:
            print(f"registrar {args.command}: {refused}", file=sys.stderr)
            return 2
        host = getattr(args, "host", None) or settings.host
        port = settings.port if getattr(args, "port", None) is None else args.port
        auth = getattr(args, "auth", False)
        return _run_roles(settings, roles, args.command, host, port, auth, log_format)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "token":
        return _token(settings, args)
    if args.command == "policy":
        return _policy(settings, args)
    if args.command == "audit":
        return _audit(settings, args)
    if args.command == "lineage":
        return _lineage(settings, args)
    if args.command == "artifacts":
        return run_artifacts_command(args)
    if args.command == "evaluate":
        return run_evaluate_command(args)
    if args.command == "card":
        return run_card_command(args)
    if args.command == "deployments":
        return run_deployments_command(args)
    if args.command == "replay":
        return _replay(settings, args)
    if args.command == "asyncapi":
        return _write_asyncapi(args.file, settings.topic_prefix)
    if args.command == "contracts":
        return _export_contracts(args.directory)
    return 2


if __name__ == "__main__":
    sys.exit(main())
