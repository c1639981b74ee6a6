"""schemathesis over the whole OpenAPI document, against a real `registrar serve --auth` with an
admin token: property-based requests to every operation (and stateful sequences that follow the
document's links), checked for server errors and for answers that do not match the document.
Both must be none. The run's summary is printed for the record."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from registrar_process import BIN, registrar_env, running_registrar

MAX_EXAMPLES = 12
"""Examples per operation: enough to reach every parameter's edges, small enough for CI."""


@pytest.mark.filterwarnings("ignore")
def test_no_operation_gives_a_server_error_or_an_answer_its_schema_does_not_describe(
    database_url: str, tmp_path: Path
) -> None:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_QUERY_WAIT_SECONDS="2")
    made = subprocess.run(
        [str(BIN / "registrar"), "token", "create", "--user", "fuzzer", "--role", "admin"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    with running_registrar("serve", "--auth", "--port", "0", env=env, cwd=tmp_path) as (url, log):
        run = subprocess.run(
            [
                str(BIN / "schemathesis"),
                "run",
                f"{url}/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                "1",
                "--workers",
                "2",
                "--request-timeout",
                "20",
                # Revoking tokens (the run's own, found through the listing) ends the run.
                "--exclude-path-regex",
                "^/v1/admin/tokens",
                "--no-color",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    print(summary)
    failures = re.search(r"(\d+) generated, (.*)", summary)
    served = "".join(line for line in log if " WARNING " in line or " ERROR " in line)
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-2000:] + served[-5000:]
    assert failures is not None
