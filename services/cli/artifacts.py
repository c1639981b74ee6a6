"""`registrar artifacts push | pull | verify | gc`: a version's files to and from a running
Registrar ($REGISTRAR_URL, $REGISTRAR_TOKEN) through the Python client; no database needed."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from registrar.cli.server_calls import run_with_client

if TYPE_CHECKING:
    from registrar.client import Client
    from registrar.client.artifact_transfers import Progress

BAR_FROM_BYTES = 8 * 1024 * 1024
"""Smaller transfers end before a bar would tell anything."""


def add_artifact_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    artifacts = commands.add_parser(
        "artifacts",
        help="a version's files in Registrar's artifact store: push, pull, verify, gc (against"
        " the running server at $REGISTRAR_URL, default http://127.0.0.1:8080)",
    )
    artifact_commands = artifacts.add_subparsers(dest="artifacts_command", required=True)
    push = artifact_commands.add_parser(
        "push",
        help="upload every file of DIR into a new version of NAME and seal it; the last line"
        ' printed is {"model", "version", "manifest_digest"} as JSON',
    )
    push.add_argument("name", metavar="NAME", help="the model (it must exist)")
    push.add_argument("directory", metavar="DIR", type=Path)
    push.add_argument(
        "--version", type=int, help="fill this registered, unsealed version instead of a new one"
    )
    pull = artifact_commands.add_parser(
        "pull", help="download a sealed version's files into DEST, each checked by SHA-256"
    )
    pull.add_argument("name", metavar="NAME")
    pull.add_argument("version", metavar="VERSION_OR_@ALIAS", help="e.g. 3, or @champion")
    pull.add_argument("dest", metavar="DEST", type=Path)
    verify = artifact_commands.add_parser(
        "verify",
        help="have the server re-read every stored file and check its SHA-256 (admins); exit 1"
        " naming each mismatch",
    )
    verify.add_argument("name", metavar="NAME", nargs="?", help="only this model's versions")
    verify.add_argument("version", metavar="VERSION", nargs="?", type=int, help="only this one")
    gc = artifact_commands.add_parser(
        "gc", help="delete stored files no version and no upload refers to (admins)"
    )
    gc.add_argument("--dry-run", action="store_true", help="count them; delete nothing")
    gc.add_argument(
        "--grace",
        type=float,
        default=86400.0,
        metavar="SECONDS",
        help="keep files stored less than this long ago (default 86400: a day), so uploads in"
        " progress are never collected",
    )


class TransferBar:
    """Percentage and MB/s of a transfer, redrawn in place on one line of `stream`."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.began = time.monotonic()
        self.drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.drawn < 0.1 and done < total:  # a redraw per chunk would cost more
            return
        self.drawn = now
        share = done / total if total else 1.0
        rate = done / (now - self.began) / 1e6 if now > self.began else 0.0
        self.stream.write(
            f"\r{self.label} [{'#' * int(share * 30):<30}] {share:4.0%}"
            f"  {done / 1e6:,.1f}/{total / 1e6:,.1f} MB  {rate:,.1f} MB/s\x1b[K"
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _bar(label: str, total: int) -> TransferBar | None:
    """A bar on stderr when a person watches it and the transfer is worth one."""
    return (
        TransferBar(label, sys.stderr) if total >= BAR_FROM_BYTES and sys.stderr.isatty() else None
    )


def _progress(label: str) -> Progress:
    """A progress callback that draws a bar once the transfer's size is known to be large."""
    bar: TransferBar | None = None
    decided = False

    def report(done: int, total: int) -> None:
        nonlocal bar, decided
        if not decided:
            bar, decided = _bar(label, total), True
        if bar is not None:
            bar(done, total)

    return report


def run_artifacts_command(args: argparse.Namespace) -> int:
    command = f"registrar artifacts {args.artifacts_command}"
    return run_with_client(command, lambda client: _run(client, args))


def _run(client: Client, args: argparse.Namespace) -> int:
    from registrar.contracts.codec import dumps

    if args.artifacts_command == "push":
        manifest = client.upload_artifacts(
            args.name, args.directory, args.version, progress=_progress("push")
        )
        print(
            f"pushed {manifest.file_count} files ({manifest.bytes:,} bytes) to"
            f" {manifest.model} version {manifest.version}"
        )
        answer = {
            "model": manifest.model,
            "version": manifest.version,
            "manifest_digest": manifest.manifest_digest,
        }
        print(dumps(answer).decode())
        return 0
    if args.artifacts_command == "pull":
        manifest = client.download_artifacts(
            args.name, args.version, args.dest, progress=_progress("pull")
        )
        print(
            f"pulled {manifest.file_count} files ({manifest.bytes:,} bytes) of {manifest.model}"
            f" version {manifest.version} into {args.dest}, every one checked;"
            f" manifest {manifest.manifest_digest}"
        )
        return 0
    if args.artifacts_command == "verify":
        report = client.verify_artifacts(args.name, args.version)
        for problem in report.problems:
            print(
                f"PROBLEM {problem.model} version {problem.version} {problem.path}:"
                f" expected {problem.expected}, found {problem.found}"
            )
        verdict = f"{len(report.problems)} problems" if report.problems else "all intact"
        print(
            f"checked {report.versions} versions, {report.files} files,"
            f" {report.bytes:,} bytes: {verdict}"
        )
        return 1 if report.problems else 0
    collected = client.collect_artifact_garbage(dry_run=args.dry_run, grace_seconds=args.grace)
    if collected.dry_run:
        print(
            f"dry run: would delete {collected.deleted} files ({collected.deleted_bytes:,} bytes)"
            f" and {collected.abandoned_uploads} abandoned uploads; {collected.kept} kept"
            f" (grace {collected.grace_seconds:g} s)"
        )
    else:
        print(
            f"deleted {collected.deleted} files ({collected.deleted_bytes:,} bytes) and"
            f" {collected.abandoned_uploads} abandoned uploads; {collected.kept} kept"
            f" (grace {collected.grace_seconds:g} s)"
        )
    return 0
