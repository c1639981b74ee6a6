"""The artifact store's contracts: a version's manifest (every file's path, size and digest), its
canonical bytes and digest, the rules for file paths, and the answers of the artifact routes."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from registrar.contracts.codec import canonical
from registrar.contracts.values import Frozen

MAX_PATH_LENGTH = 1024
MAX_PATH_SEGMENTS = 32
MAX_FILES = 100_000
"""Files one version may hold (the manifest is one JSON document)."""
MANIFEST_FORMAT = 1


def check_artifact_path(path: str) -> str:
    """A file's path inside a version: relative, "/"-separated, without ".", ".." or empty
    segments, control characters or backslashes, so it is the same file on every OS and can never
    step outside the version's directory when pulled."""
    if not path:
        raise ValueError("a file path must not be empty")
    if len(path) > MAX_PATH_LENGTH:
        raise ValueError(f"a file path is at most {MAX_PATH_LENGTH} characters, got {len(path)}")
    if "\\" in path or any(unicodedata.category(char) in ("Cc", "Cf") for char in path):
        raise ValueError(
            f"file path {path!r} must not hold backslashes, control or invisible characters"
        )
    segments = path.split("/")
    if len(segments) > MAX_PATH_SEGMENTS:
        raise ValueError(f"a file path has at most {MAX_PATH_SEGMENTS} segments")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(
            f"file path {path!r} must be relative, without '.', '..' or empty segments"
        )
    return path


class ManifestFile(Frozen):
    path: str
    size: int = Field(ge=0)
    digest: str = Field(description='"sha256:" and the file\'s 64 hex characters')


def manifest_bytes(files: list[ManifestFile]) -> bytes:
    """The canonical manifest: {"format": 1, "files": [...]} sorted by path, sorted keys, no
    whitespace. Its SHA-256 is the manifest digest: the same files give the same digest, in any
    version of any model."""
    ordered = sorted(files, key=lambda f: f.path)
    return canonical(
        {"format": MANIFEST_FORMAT, "files": [f.model_dump(mode="json") for f in ordered]}
    )


def manifest_digest(files: list[ManifestFile]) -> str:
    return "sha256:" + hashlib.sha256(manifest_bytes(files)).hexdigest()


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class UploadedFile(_Answer):
    path: str
    size: int
    digest: str
    stored_before: bool = Field(
        description="An identical file was already in the store: kept once, referenced twice"
    )


class Manifest(_Answer):
    model: str
    version: int
    sealed: bool
    manifest_digest: str | None = Field(description="Set once sealed")
    sealed_at: datetime | None
    file_count: int
    bytes: int
    files: list[ManifestFile] = Field(
        description="Sealed: the manifest's files. Not sealed yet: the files uploaded so far"
    )


class BlobProblem(_Answer):
    model: str
    version: int
    path: str
    expected: str
    found: str = Field(description='The digest read back, or "missing"')


class VerifyReport(_Answer):
    versions: int
    files: int
    bytes: int
    problems: list[BlobProblem]


class CollectionReport(_Answer):
    dry_run: bool
    grace_seconds: float
    deleted: int = Field(description="Blobs deleted (or, on a dry run, that would be)")
    deleted_bytes: int
    kept: int
    abandoned_uploads: int = Field(description="Interrupted uploads' temporary objects removed")
