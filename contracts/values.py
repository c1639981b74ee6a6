"""Value types shared by commands and events: names, tag keys, aliases, stages, references.

The validation rules follow MLflow's (see shared/MLFLOW.md) so that both front doors accept the
same things: a name valid here is valid through the MLflow API and the other way round.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

MAX_NAME_LENGTH = 256
MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 100_000
MAX_TAGS = 100
"""Tags set by one request (a model or version may gather more, one request at a time)."""
MAX_METRICS = 1_000
MAX_PARAMS = 1_000
MAX_PARAM_VALUE_LENGTH = 6_000
"""As MLflow's MAX_PARAM_VAL_LENGTH."""
MAX_REFERENCES = 100
"""Datasets, or parents, named by one version."""
MAX_REQUEST_TEXT = 1_000_000
"""Characters of text (names, keys and values together) one request may hold, so that no single
request writes an event of many megabytes."""
_UNREACHABLE = (".", "..")
"""Names that URLs cannot carry as a path segment: clients and proxies resolve them away."""

_TAG_KEY = re.compile(r"^[/\w.\- :]+$")
_ALIAS = re.compile(r"^[\w\-]+$")
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)


def check_model_name(name: str) -> str:
    if not name.strip():
        raise ValueError("a model name must not be blank")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a model name is at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    if "/" in name or ":" in name:
        raise ValueError(f"a model name must not contain '/' or ':', got {name!r}")
    if name in _UNREACHABLE:
        raise ValueError(f"{name!r} cannot be a model name: URLs cannot address it")
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in name):
        # Cc: control characters; Cf: invisible format characters (zero-width, bidi overrides)
        # that would let two different names look the same.
        raise ValueError(
            f"a model name must not contain control or invisible characters, got {name!r}"
        )
    if name != name.strip():
        raise ValueError(f"a model name must not start or end with whitespace, got {name!r}")
    return name


def check_tag_key(key: str) -> str:
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise ValueError(f"a tag key is at most {MAX_TAG_KEY_LENGTH} characters, got {len(key)}")
    if not _TAG_KEY.fullmatch(key):
        raise ValueError(
            f"tag key {key!r} is invalid: use letters, digits and _ - . / : or space, not empty"
        )
    if key in _UNREACHABLE:
        raise ValueError(f"{key!r} cannot be a tag key: URLs cannot address it")
    return key


def check_alias(alias: str) -> str:
    if len(alias) > MAX_ALIAS_LENGTH:
        raise ValueError(f"an alias is at most {MAX_ALIAS_LENGTH} characters, got {len(alias)}")
    if not _ALIAS.fullmatch(alias):
        raise ValueError(f"alias {alias!r} is invalid: use letters, digits, _ and - only")
    if _RESERVED_ALIAS.fullmatch(alias):
        raise ValueError(
            f"alias {alias!r} is reserved: 'latest' and 'v<number>' always mean what they say"
        )
    return alias


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    for key in tags:
        check_tag_key(key)
    return tags


ModelName = Annotated[str, AfterValidator(check_model_name)]
TagKey = Annotated[str, AfterValidator(check_tag_key)]
TagValue = Annotated[str, Field(max_length=MAX_TAG_VALUE_LENGTH)]
Tags = Annotated[dict[str, TagValue], Field(max_length=MAX_TAGS), AfterValidator(_check_tags)]
AliasName = Annotated[str, AfterValidator(check_alias)]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION_LENGTH)]
ShortText = Annotated[str, Field(max_length=256)]
"""A short free-text label: a version's model type or framework."""
VersionNumber = Annotated[int, Field(ge=1)]
MetricValue = Annotated[float, Field(allow_inf_nan=False)]
"""Finite: JSON has no NaN or infinity, and a metric a gate compares must be a number."""
Metrics = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=250)], MetricValue],
    Field(max_length=MAX_METRICS),
]
Params = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=250)],
        Annotated[str, Field(max_length=MAX_PARAM_VALUE_LENGTH)],
    ],
    Field(max_length=MAX_PARAMS),
]


class Stage(str, Enum):
    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


_STAGES_BY_LOWER = {stage.value.lower(): stage for stage in Stage}


def _stage_from_any_case(value: Any) -> Any:
    if isinstance(value, str):
        stage = _STAGES_BY_LOWER.get(value.lower())
        if stage is None:
            allowed = ", ".join(s.value for s in Stage)
            raise ValueError(f"unknown stage {value!r}: use one of {allowed}")
        return stage
    return value


StageName = Annotated[Stage, BeforeValidator(_stage_from_any_case)]


class Role(str, Enum):
    """What a caller may do: viewer < contributor < approver < admin, each including the ones
    before it; and `deployer` beside them, between viewer and admin only: it reads and reports
    deployments, but neither contributes nor promotes, and no role but admin includes it."""

    VIEWER = "viewer"
    CONTRIBUTOR = "contributor"
    APPROVER = "approver"
    ADMIN = "admin"
    DEPLOYER = "deployer"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def includes(self, other: Role) -> bool:
        if Role.DEPLOYER in (self, other) and self is not other:
            # A branch off the hierarchy: deployer includes viewer; only admin includes deployer.
            return self is Role.ADMIN or (self is Role.DEPLOYER and other is Role.VIEWER)
        return self.rank >= other.rank


class Frozen(BaseModel):
    """Base of every contract: immutable, and unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL, which PostgreSQL text and jsonb cannot hold, and unpaired surrogates, which are not
characters (no UTF-8 encoding exists for them)."""


def unstorable_text(value: Any) -> str | None:
    """Where `value` (a string, or any string, key or value nested in it) holds text that cannot
    be stored, said in words; None if all of it can. Too much text in all counts too."""
    total = [0]
    problem = _unstorable(value, total)
    if problem is None and total[0] > MAX_REQUEST_TEXT:
        return (
            f"holds {total[0]:,} characters of text; one request may hold at most"
            f" {MAX_REQUEST_TEXT:,} (names, keys and values together)"
        )
    return problem


def _unstorable(value: Any, total: list[int]) -> str | None:
    match value:
        case str():
            total[0] += len(value)
            found = _UNSTORABLE.search(value)
            if found is None:
                return None
            what = "a NUL character" if found.group() == "\x00" else "an unpaired surrogate"
            return (
                f"holds {what} (U+{ord(found.group()):04X}) at character {found.start()}:"
                " send text without NUL or unpaired surrogates"
            )
        case BaseModel():
            return _unstorable(value.__dict__, total)
        case dict():
            for key, item in value.items():
                problem = _unstorable(key, total)
                if problem is not None:
                    return f"key {key!r} {problem}"
                problem = _unstorable(item, total)
                if problem is not None:
                    return f"{key}: {problem}" if isinstance(key, str) else problem
        case list() | tuple():
            for index, item in enumerate(value):
                problem = _unstorable(item, total)
                if problem is not None:
                    return f"[{index}]: {problem}"
    return None


class StorableText(BaseModel):
    """For contracts that arrive from outside (commands, messages, request bodies): every string
    in them, nested ones and dict keys included, must be text PostgreSQL can store and every
    reader can decode. Checked once where text enters, not on events read back."""

    @model_validator(mode="after")
    def _text_is_storable(self) -> Self:
        problem = unstorable_text(self.__dict__)
        if problem is not None:
            raise ValueError(problem)
        return self


class Inbound(Frozen, StorableText):
    """A frozen contract that arrives from outside."""


_SHA256_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def check_digest(digest: str) -> str:
    """A content digest as Registrar takes it: "sha256:" and 64 lowercase hex characters (or ""
    for none given). Other algorithms are refused: a digest nobody checks proves nothing."""
    if digest and not _SHA256_DIGEST.fullmatch(digest):
        shown = digest if len(digest) <= 80 else digest[:77] + "..."
        raise ValueError(
            f"a digest must be 'sha256:' followed by 64 lowercase hex characters, got {shown!r}"
        )
    return digest


Digest = Annotated[
    str,
    Field(
        description='"sha256:" and 64 lowercase hex characters',
        json_schema_extra={"pattern": "^(sha256:[0-9a-f]{64})?$"},
    ),
    AfterValidator(check_digest),
]
"""A digest that arrives from outside. Events keep plain strings: what was once stored is read
back as it was."""


class DatasetRef(Frozen):
    """A dataset a version was trained or evaluated on."""

    name: Annotated[str, Field(min_length=1, max_length=256)]
    version: Annotated[str, Field(max_length=256)] = ""
    uri: Annotated[str, Field(max_length=4096)] = ""
    digest: Annotated[str, Field(max_length=256)] = ""


class DatasetInput(DatasetRef):
    """A dataset reference as a request or message gives it: its digest, if any, is SHA-256."""

    digest: Digest = ""

    @model_validator(mode="before")
    @classmethod
    def _from_reference(cls, value: Any) -> Any:
        # A DatasetRef (e.g. read from a version) is taken as its fields, and checked again.
        return value.model_dump() if isinstance(value, DatasetRef) else value


class ParentRef(Frozen):
    """A version this one derives from (fine-tuned from, distilled from, part of an ensemble)."""

    model: ModelName
    version: VersionNumber
    relation: Annotated[str, Field(min_length=1, max_length=64)] = "derived_from"
