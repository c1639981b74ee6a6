"""Which model-version sources the registry refuses, with MLflow's server's rules and words, so a
source MLflow would refuse is refused at every door: local paths (Registrar keeps no local
artifact root that a path could safely point into), relative or NUL segments hidden in a URI
(also percent-encoded, as path traversal attempts are), and a runs:/ URI of another run."""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote_plus, urlparse

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]$")


def _unquoted(source: str) -> str:
    while (once := unquote_plus(source)) != source:
        source = once
    return source


REGISTRY_SOURCE_PREFIX = "mlflow-artifacts:/registry/"
"""Where a version's files are when Registrar's artifact store holds them: an MLflow
artifact-proxy URI, so that an MLflow client pointed at Registrar downloads from it as from
`mlflow server --serve-artifacts`. Named by the model's stream id, which a rename keeps."""


def registry_source(model_id: str, version: int) -> str:
    return f"{REGISTRY_SOURCE_PREFIX}{model_id}/{version}"


def registry_location(uri: str) -> tuple[str, int, str] | None:
    """(model id, version, path inside the version) a registry source or artifact-proxy path
    names, e.g. ("m-1f...", 3, "model/MLmodel"); None for any other URI."""
    rest = uri.removeprefix("mlflow-artifacts:").lstrip("/")
    if not rest.startswith("registry/"):
        return None
    model_id, _, rest = rest.removeprefix("registry/").partition("/")
    number, _, path = rest.partition("/")
    if not model_id or not number.isdigit() or not 0 < int(number) < 2**31:
        return None
    return model_id, int(number), path


def source_problem(source: str, run_id: str) -> str | None:
    """Why `source` cannot be a version's source (with a version's `run_id`); None if it can."""
    if registry_location(_unquoted(source)) is not None:
        return (
            f"Invalid model version source: '{source}'. It names Registrar's own artifact store,"
            " which only Registrar assigns: leave the source out to have Registrar store this"
            " version's files, or use models:/NAME/VERSION to refer to another version"
        )
    scheme = urlparse(source).scheme
    if scheme in ("", "file") or _WINDOWS_DRIVE.match(scheme):
        return (
            f"Invalid model version source: '{source}'. A local path cannot be a model version"
            " source here: Registrar serves no local artifact root. Use the URI of a store the"
            " registry's users share (s3://, gs://, https://, runs:/, models:/, ...)"
        )
    plain = _unquoted(source)
    parsed = urlparse(plain)
    path = re.sub(r"/+", "/", parsed.path.rstrip("/"))
    segments = plain.split("/")
    if "\x00" in plain or ".." in segments or (path and posixpath.normpath(path) != path):
        return (
            f"Invalid model version source: '{source}'. If supplying a source as an http, https,"
            " local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be"
            " provided without relative path references present. Please provide an absolute"
            " path."
        )
    if parsed.scheme == "runs":
        source_run = parsed.path.lstrip("/").split("/", 1)[0]
        if parsed.netloc or not run_id or source_run != run_id:
            return (
                f"Invalid model version source: '{source}'. The run_id request parameter must"
                " identify the resource that contains the source."
            )
    if parsed.scheme == "models" and parsed.netloc:
        return (
            f"Invalid model version source: '{source}'. The model_id request parameter must"
            " identify the resource that contains the source."
        )
    return None


def model_reference(source: str) -> tuple[str, str] | None:
    """(model name, version number, alias or stage) a `models:/` source points at, e.g.
    ("churn", "3") for models:/churn/3 and ("churn", "champion") for models:/churn@champion; None
    for any other source (a copied version's source is the version it was copied from)."""
    parsed = urlparse(source)
    if parsed.scheme != "models" or parsed.netloc:
        return None
    path = parsed.path.lstrip("/")
    if "@" in path and "/" not in path:
        name, _, alias = path.partition("@")
        return (name, alias) if name and alias else None
    name, _, which = path.rpartition("/")
    return (name, which) if name and which else None
