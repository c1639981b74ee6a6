"""Digests anywhere a request or message gives one are SHA-256 ("sha256:" and 64 lowercase hex),
or refused saying so; events stored before the rule are read back as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from registrar.contracts.command_messages import CommandMessage
from registrar.contracts.commands import RegisterVersion
from registrar.contracts.events import VersionRegistered
from registrar.contracts.training import RunRecorded, TrainingCompleted
from registrar.contracts.values import DatasetInput, DatasetRef

GOOD = "sha256:" + "0123456789abcdef" * 4
BAD = ["md5:abc", "sha256:zz", "sha256:" + "A" * 64, "sha256:" + "0" * 63, GOOD + "0", "0" * 64]


def completed(artifact_digest: str = GOOD, dataset_digest: str = GOOD) -> dict[str, Any]:
    return {
        "message_id": str(uuid4()),
        "run_id": "run-1",
        "model_name": "churn",
        "artifact": {"uri": "s3://models/churn/run-1", "digest": artifact_digest},
        "datasets": [{"name": "clicks", "version": "v1", "digest": dataset_digest}],
        "finished_at": datetime.now(UTC).isoformat(),
    }


@pytest.mark.parametrize("digest", BAD)
def test_a_version_digest_other_than_sha256_is_refused_saying_what_is_expected(
    digest: str,
) -> None:
    with pytest.raises(ValidationError, match="'sha256:' followed by 64 lowercase hex"):
        RegisterVersion(name="churn", source="s3://m/1", digest=digest)


@pytest.mark.parametrize("digest", BAD)
def test_training_completed_messages_carry_sha256_digests_only(digest: str) -> None:
    assert TrainingCompleted.model_validate(completed()).artifact.digest == GOOD
    with pytest.raises(ValidationError, match="sha256"):
        TrainingCompleted.model_validate(completed(artifact_digest=digest))
    with pytest.raises(ValidationError, match="sha256"):
        TrainingCompleted.model_validate(completed(dataset_digest=digest))


def test_a_dataset_reference_read_back_is_checked_again_when_given_as_input() -> None:
    assert DatasetInput.model_validate(DatasetRef(name="d", digest=GOOD)).digest == GOOD
    with pytest.raises(ValidationError):
        RegisterVersion(name="m", source="s3://m/1", datasets=[DatasetRef(name="d", digest="x")])


def test_events_and_runs_stored_before_the_rule_are_read_back_as_they_were() -> None:
    event = VersionRegistered(version=1, source="s3://m/1", digest="md5:abc")
    stored = {k: v for k, v in completed(artifact_digest="md5:abc").items() if k != "message_id"}
    run = RunRecorded.model_validate({**stored, "type": "RunRecorded"})
    assert (event.digest, run.artifact.digest) == ("md5:abc", "md5:abc")


def test_sealing_is_not_taken_from_the_command_bus() -> None:
    with pytest.raises(ValidationError, match="not taken from the bus"):
        CommandMessage.model_validate(
            {
                "command_id": str(uuid4()),
                "actor": "someone",
                "command": {
                    "type": "SealArtifacts",
                    "name": "churn",
                    "version": 1,
                    "manifest_digest": GOOD,
                    "files": 1,
                    "bytes": 1,
                },
            }
        )
