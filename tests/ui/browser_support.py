"""What the browser tests stand on: the API served by uvicorn in a thread of this process (on a
free port, authentication on, its artifact store on local disk), a registry seeded through the
HTTP API the way people would fill it, headless Chromium (Debian's, driven by Playwright), axe-core
(vendored from npm) to check each page, and screenshots kept as artifacts of the run."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from registrar.access.administration import AccessAdministration
from registrar.access.guard import AccessGuard
from registrar.api.app import create_app
from registrar.artifacts.blobs import open_blob_store
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.values import Role

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE / "screenshots"
"""Where each test run leaves a screenshot of every page it visits (ignored by git)."""
AXE = HERE / "vendor" / "axe.min.js"
"""axe-core, from npm (`npm pack axe-core`), as its package ships it."""

USERS = {
    "vera": Role.VIEWER,
    "carl": Role.CONTRIBUTOR,
    "alice": Role.APPROVER,
    "bob": Role.APPROVER,
}
"""The people of the seeded registry, besides its first admin (`root`)."""

POLICY = {
    "stages": {
        "Production": {
            "approvals": 2,
            "approver_role": "approver",
            "allow_self_approval": False,
            "gates": ["metrics.auc >= 0.8"],
        }
    },
    "aliases": {"champion": {"approvals": 1, "approver_role": "approver"}},
    "environments": {"prod-eu": {"follows": {"stage": "Production"}}},
    "compliance": {
        "profiles": [
            {
                "name": "documented",
                "requirements": [
                    {"id": "data", "title": "Training data is known", "check": "lineage.datasets"},
                    {"id": "bias", "title": "Bias was evaluated", "check": "evaluations.fairness"},
                    {"id": "use", "title": "Use is documented", "check": "model_card.intended_use"},
                ],
            }
        ]
    },
}
HOSTILE = "Scores credit applications. <script>window.pwned = true</script><img src=x onerror=1>"
"""A model description written to break a page that does not escape."""
FAIR = {"F": {"tp": 35, "fp": 15, "tn": 45, "fn": 5}, "M": {"tp": 38, "fp": 17, "tn": 33, "fn": 12}}


def require_chromium() -> None:
    """Skip without Chromium on a developer's machine; in CI (.ci/run installs it) fail."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Served:
    """The running API: its address, a token of each user, and the seeded registry's facts."""

    url: str
    tokens: dict[str, str]
    loop: asyncio.AbstractEventLoop
    facts: dict[str, Any] = field(default_factory=dict)

    def client(self, user: str = "root") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def served_registry(database_url: str, home: Path) -> Iterator[Served]:
    """The API (authentication on) on `database_url` until the block ends, with a token for
    `root` (admin) and for each of USERS."""
    app = create_app(database_url, auth_required=True, blobs=open_blob_store(None, home))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve())

    thread = threading.Thread(target=run, name="ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        root = asyncio.run_coroutine_threadsafe(_first_admin(app), loop).result(30)
        served = Served(f"http://127.0.0.1:{port}", {"root": root}, loop)
        with served.client() as admin:
            for user, role in USERS.items():
                made = admin.post("/v1/admin/tokens", json={"user": user, "role": role.value})
                assert made.status_code == 201, made.text
                served.tokens[user] = made.json()["token"]
        yield served
    finally:
        server.should_exit = True
        thread.join(30)


async def _first_admin(app: Any) -> str:
    """The first admin token, as `registrar token create` makes it: straight in the store."""
    guard: AccessGuard = app.state.access_guard
    issued = await AccessAdministration(app.state.registry.store).issue_token(
        "root", Role.ADMIN, CommandMeta("cli:ui-tests")
    )
    await guard.cache.reload()
    return issued.token


def _ok(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in (statuses or (200, 201)), response.text
    return response.json() if response.content else {}


def seed(served: Served) -> dict[str, Any]:
    """A small registry worth looking at: three models, one governed by a policy that wants two
    approvers for Production; `credit-scoring` v1 carded, evaluated for fairness, its files
    sealed, moved to Staging, and then asked for Production by carl. Returns what tests check:
    `before_request` is an instant when v1 was in Staging and nothing was pending."""
    with served.client() as root, served.client("carl") as carl:
        for name, description, tags in (
            ("credit-scoring", HOSTILE, {"team": "risk", "domain": "lending"}),
            ("fraud-detector", "Flags card transactions for review.", {"team": "payments"}),
            ("churn-predictor", "Predicts customer churn a month ahead.", {"team": "growth"}),
        ):
            _ok(
                root.post(
                    "/v1/models", json={"name": name, "description": description, "tags": tags}
                )
            )
        for auc in (0.86, 0.9):
            _ok(
                root.post(
                    "/v1/models/fraud-detector/versions",
                    json={"source": "s3://models/fraud", "metrics": {"auc": auc}},
                )
            )
        _ok(root.post("/v1/models/fraud-detector/versions/1/stage", json={"stage": "Production"}))
        _ok(root.post("/v1/models/fraud-detector/versions/2/stage", json={"stage": "Staging"}))
        _ok(root.post("/v1/models/churn-predictor/versions", json={"source": "s3://models/churn"}))
        version = {
            "source": "s3://models/credit/1",
            "model_type": "gradient-boosted trees",
            "framework": "xgboost 2.1",
            "metrics": {"auc": 0.91, "accuracy": 0.88},
            "params": {"max_depth": "6", "learning_rate": "0.1"},
            "datasets": [{"name": "applications", "version": "v7", "uri": "s3://data/apps/v7"}],
        }
        _ok(carl.post("/v1/models/credit-scoring/versions", json=version))
        card = {
            "intended_use": "Pre-screening of credit applications by analysts.",
            "limitations": "Not validated for applicants under 21.",
            "training_data_summary": "Applications from 2019 to 2023.",
        }
        _ok(carl.patch("/v1/models/credit-scoring/versions/1/card", json=card))
        holdout = {"name": "holdout", "version": "2024-q4"}
        for evaluation in (
            {"kind": "performance", "dataset": holdout, "metrics": {"auc": 0.905, "f1": 0.77}},
            {"kind": "fairness", "dataset": holdout, "sensitive_feature": "sex", "groups": FAIR},
        ):
            _ok(carl.post("/v1/models/credit-scoring/versions/1/evaluations", json=evaluation))
        files = {"MLmodel": b"flavors: {}\n", "model.pkl": os.urandom(2048)}
        for path, body in files.items():
            _ok(
                carl.put(
                    f"/v1/models/credit-scoring/versions/1/artifacts/model/{path}", content=body
                )
            )
        _ok(carl.post("/v1/models/credit-scoring/versions/1/artifacts/seal"))
        report = {
            "report_id": "deploy-1",
            "model": "fraud-detector",
            "version": 1,
            "environment": "prod-eu",
            "status": "serving",
            "endpoint": "https://fraud.example.internal",
        }
        _ok(root.put("/v1/policies", json=POLICY))
        _ok(root.post("/v1/deployments", json=report))
        _ok(root.post("/v1/models/credit-scoring/versions/1/stage", json={"stage": "Staging"}))
        time.sleep(1.1)
        before_request = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.1)
        requested = _ok(
            carl.post(
                "/v1/models/credit-scoring/versions/1/transition-requests",
                json={"stage": "Production", "comment": "Validated on the Q4 hold-out."},
            )
        )
    return {"before_request": before_request, "request_id": requested["request_id"]}
