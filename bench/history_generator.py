"""A realistic registry history, written straight into the event store, for the read models'
benchmarks and tests (rebuild, lineage, point-in-time history, audit).

    from history_generator import generate   # bench/ on sys.path, as for every bench script

    history = await generate(database_url, models=10_000, events=1_000_000, seed=7)
    history.events, history.lineage_nodes, history.model_names[:3], history.dataset_refs[:3]

or from the shell (a fresh database, dropped at the end, unless --database-url names one):

    .venv/bin/python bench/history_generator.py --models 10000 --events 1000000 [--seed 7]
        [--database-url postgresql://postgres@127.0.0.1:5432/mydb] [--verify]

What it writes: `models` model streams and the `run:<id>` streams of their training runs, about
`events` events in all (it stops at the first command that reaches the count), recorded over
`days` days from `start`, in time order. Each model is registered by a team member, then gets
versions (most from training runs recorded as the ingest records them: RunRecorded, then
RegisterVersion with the run's datasets, code commit and metrics; some registered by hand with
parent versions: fine-tuned, distilled, ensembled, from its own or other models), metrics over
time, tags, descriptions, stage changes (Staging, Production with archive-existing, Archived),
alias moves (champion, challenger, canary), and a few renames, version deletes and model deletes.
Activity per model is heavy-tailed (a few models have thousands of events). With the defaults
the lineage graph has about 100,000 nodes (datasets name@version, runs, commits, versions).

Every event is exactly what Registrar would write: commands are decided by the domain's own
`decide` (and `decide_run`) against the state folded by `evolve`, event ids derive from command
ids as in the command handler, envelopes are hash-chained by the store's own `chain`, names are
claimed and retired in `model_names`, and snapshots are stored where the command handler would
have taken them (every 200 events). Rows go in with COPY, in transactions of `batch_size` events
(short ones: an open transaction holds back every catch-up reader of the PostgreSQL cluster).
The same seed gives the same history (ids, names, times, payloads); positions are the store's.
Speed on the project's 2-core machine: 5,000 to 7,000 events/s (1,000,000 events in 143-192 s),
mostly the decider, `evolve` and the hash chain in Python; statistics are refreshed at the end.

Preconditions: the schema is migrated by `generate` itself; the store must not already hold the
generated names (generate once per database, e.g. a fresh one).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import heapq
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fresh_database import plain, run_on_a_fresh_database

from registrar.bus.training_ingest import INGEST_ACTOR, _version_of, run_command_id
from registrar.contracts.codec import dumps
from registrar.contracts.commands import (
    Command,
    DeleteAlias,
    DeleteModel,
    DeleteModelTag,
    DeleteVersion,
    DeleteVersionTag,
    RecordMetrics,
    RegisterModel,
    RegisterVersion,
    RenameModel,
    SetAlias,
    SetModelTag,
    SetVersionTag,
    TransitionStage,
    UpdateModelDescription,
    UpdateVersionDescription,
)
from registrar.contracts.envelope import Envelope
from registrar.contracts.events import SCHEMA_VERSION, ModelDeleted, ModelRegistered, ModelRenamed
from registrar.contracts.identifiers import derived_event_id
from registrar.contracts.training import RUN_SCHEMA_VERSION, ArtifactRef, CodeRef, RecordRun
from registrar.contracts.values import DatasetRef, ParentRef, Stage
from registrar.domain.decider import decide
from registrar.domain.errors import DomainError
from registrar.domain.runs import decide_run, run_stream_id
from registrar.domain.state import STATE_SCHEMA, ModelState, evolve, state_to_json
from registrar.store.database import create_engine
from registrar.store.event_store import NewEvent, StreamHead, chain
from registrar.store.schema_migrations import migrate

DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
SNAPSHOT_EVERY = 200  # as the command handler's default

_EVENT_COLUMNS = (
    "event_id",
    "stream_id",
    "stream_version",
    "type",
    "schema_version",
    "recorded_at",
    "actor",
    "causation_id",
    "correlation_id",
    "payload",
    "prev_hash",
    "hash",
)
_TEAMS = ("growth", "risk", "search", "ads", "vision", "speech", "pricing", "support")
_TASKS = ("churn", "fraud", "ranking", "ctr", "detector", "asr", "forecast", "intent", "embed")
_FRAMEWORKS = ("xgboost", "pytorch", "sklearn", "lightgbm", "tensorflow")
_METRICS = ("auc", "accuracy", "f1", "precision", "recall", "latency_ms", "drift")
_RELATIONS = ("fine_tuned_from", "distilled_from")
_TEAM_PEOPLE = {
    team: [f"{first}.{team}" for first in ("ana", "bo", "chen", "dev", "eli")] for team in _TEAMS
}
_PEOPLE = [person for people in _TEAM_PEOPLE.values() for person in people]

# Relative weights of what happens to a model that has live versions.
_ACTIONS = {
    "train": 0.026,
    "hand_version": 0.008,
    "metrics": 0.40,
    "version_tag": 0.12,
    "drop_version_tag": 0.02,
    "model_tag": 0.04,
    "drop_model_tag": 0.01,
    "model_description": 0.02,
    "version_description": 0.03,
    "stage": 0.12,
    "alias": 0.08,
    "drop_alias": 0.01,
    "delete_version": 0.008,
    "rename": 0.0002,
    "delete_model": 0.0001,
}
_ACTION_NAMES = list(_ACTIONS)
_ACTION_CUMULATIVE = [sum(list(_ACTIONS.values())[: i + 1]) for i in range(len(_ACTIONS))]


@dataclass(frozen=True)
class History:
    """What `generate` wrote."""

    events: int
    model_streams: int
    run_streams: int
    versions: int
    runs: int
    datasets: int
    """Distinct dataset name@version used by runs."""
    commits: int
    parent_links: int
    renamed_models: int
    deleted_models: int
    deleted_versions: int
    snapshots: int
    first_recorded_at: datetime
    last_recorded_at: datetime
    head_position: int
    seconds: float
    model_names: list[str] = field(repr=False)
    """Every model's current name (deleted models included), in registration order."""
    dataset_refs: list[str] = field(repr=False)
    """Every dataset name@version, most used first (a good impact query is the first one)."""

    @property
    def lineage_nodes(self) -> int:
        """Datasets, runs, commits and versions: the lineage graph's nodes without deployments."""
        return self.datasets + self.runs + self.commits + self.versions

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class _Model:
    stream_id: str
    name: str
    team: str
    repository: str
    created: float
    rate: float
    """Actions per second over the model's life."""
    state: ModelState | None = None
    head: StreamHead = field(default_factory=StreamHead)
    commits: list[str] = field(default_factory=list)
    renames: int = 0


class _Generator:
    """The simulation: models act one at a time in time order; each action is a command decided
    against the model's folded state, and its events are chained onto the stream."""

    def __init__(self, *, models: int, events: int, seed: int, start: datetime, days: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.target = events
        self.start = start.timestamp()
        self.span = days * 86_400.0
        self.rows: list[tuple[Any, ...]] = []
        self.claims: list[tuple[str, str, datetime]] = []
        self.retires: list[tuple[str, str, datetime]] = []
        """Names let go: (name, stream, when); a deleted model's (empty name: all of them)."""
        self.snapshots: dict[str, tuple[int, str, uuid.UUID, ModelState]] = {}
        self.written = 0
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None
        self.counts: Counter[str] = Counter()
        self.dataset_use: Counter[str] = Counter()
        self.commits: set[str] = set()
        self.models: list[_Model] = []
        self.live: list[int] = []
        """Indexes of models that may be named as parents (not deleted, with versions)."""
        self.live_set: set[int] = set()
        self.datasets = self._dataset_catalogue(max(20, models // 10))
        self.queue: list[tuple[float, int]] = []
        self._plan(models)

    # The plan --------------------------------------------------------------------------------

    def _dataset_catalogue(self, count: int) -> list[tuple[str, list[float]]]:
        """Datasets and the times their successive versions appear (about 6 each per year)."""
        catalogue = []
        for i in range(count):
            releases = sorted(
                self.start + self.rng.random() * self.span for _ in range(self.rng.randint(1, 11))
            )
            name = f"{self.rng.choice(_TEAMS)}-{self.rng.choice(('events', 'users', 'labels', 'clicks', 'audio', 'images'))}-{i:04d}"
            catalogue.append((name, [self.start, *releases]))
        return catalogue

    def _plan(self, count: int) -> None:
        weights = [self.rng.lognormvariate(0.0, 1.1) for _ in range(count)]
        # Each action writes about 1.1 events; the rest of the budget is spread by weight.
        actions = self.target / 1.1
        total = sum(weights)
        for i, weight in enumerate(weights):
            created = self.start + self.span * self.rng.random() ** 1.4
            life = max(3_600.0, self.start + self.span - created)
            team = self.rng.choice(_TEAMS)
            task = self.rng.choice(_TASKS)
            name = f"{task}-{team}-{i:05d}"
            model = _Model(
                stream_id=str(self._uuid7(created)),
                name=name,
                team=team,
                repository=f"https://git.example.com/{team}/{task}-{i % 997:03d}",
                created=created,
                rate=max(weight / total * actions, 1.0) / life,
            )
            self.models.append(model)
            self.queue.append((created, i))
        heapq.heapify(self.queue)

    # Ids and times ---------------------------------------------------------------------------

    def _uuid7(self, at: float) -> uuid.UUID:
        """A UUIDv7 of time `at` with seeded random bits (registrar.contracts.identifiers.uuid7's layout)."""
        millis = int(at * 1000)
        rand = self.rng.getrandbits(74)
        value = (millis & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= ((rand >> 62) & 0xFFF) << 64
        value |= 0b10 << 62
        value |= rand & ((1 << 62) - 1)
        return uuid.UUID(int=value)

    @staticmethod
    def _time(at: float) -> datetime:
        return datetime.fromtimestamp(round(at, 6), UTC)

    # The simulation --------------------------------------------------------------------------

    def run(self) -> None:
        while self.queue and self.written < self.target:
            at, index = heapq.heappop(self.queue)
            model = self.models[index]
            alive = self._act(model, index, at)
            if alive:
                gap = self.rng.expovariate(model.rate)
                heapq.heappush(self.queue, (at + max(gap, 0.001), index))

    def _act(self, model: _Model, index: int, at: float) -> bool:
        """One action of `model` at `at`; False once the model is deleted."""
        state = model.state
        if state is None:
            tags = {"team": model.team, "owner": self._person(model)}
            command: Command = RegisterModel(
                name=model.name, description=f"{model.name}: owned by {model.team}", tags=tags
            )
            self._command(model, command, self._person(model), at)
            return True
        if not state.versions or all(v.deleted for v in state.versions.values()):
            self._train(model, index, at)
            return True
        action = _ACTION_NAMES[
            bisect.bisect(_ACTION_CUMULATIVE, self.rng.random() * _ACTION_CUMULATIVE[-1])
        ]
        if action == "delete_model":
            self._command(model, DeleteModel(name=state.name), self._person(model), at)
            self.live_set.discard(index)
            self.counts["deleted_models"] += 1
            return False
        if action == "train":
            self._train(model, index, at)
        elif action == "hand_version":
            self._hand_version(model, index, at)
        else:
            command_or_none = self._change(model, action)
            if command_or_none is not None:
                actor = "ci" if action == "metrics" and self.rng.random() < 0.5 else None
                self._command(model, command_or_none, actor or self._person(model), at)
        return True

    def _person(self, model: _Model) -> str:
        return self.rng.choice(_TEAM_PEOPLE[model.team] if self.rng.random() < 0.9 else _PEOPLE)

    def _live_versions(self, state: ModelState) -> list[int]:
        return [n for n, v in state.versions.items() if not v.deleted]

    def _change(self, model: _Model, action: str) -> Command | None:
        state = model.state
        assert state is not None
        rng = self.rng
        live = self._live_versions(state)
        name = state.name
        if action == "metrics":
            serving = [
                n for n in live if state.versions[n].stage in (Stage.PRODUCTION, Stage.STAGING)
            ]
            number = rng.choice(serving or live)
            keys = rng.sample(_METRICS, rng.randint(1, 3))
            metrics = {k: round(rng.random() * (100 if k == "latency_ms" else 1), 4) for k in keys}
            return RecordMetrics(name=name, version=number, metrics=metrics)
        if action == "version_tag":
            key = rng.choice(("validated", "reviewer", "ticket", "notes", "risk"))
            value = rng.choice(
                ("true", "false", f"JIRA-{rng.randint(1, 9999)}", self._person(model))
            )
            return SetVersionTag(name=name, version=rng.choice(live), key=key, value=value)
        if action == "drop_version_tag":
            tagged = [n for n in live if state.versions[n].tags]
            if not tagged:
                return None
            number = rng.choice(tagged)
            key = rng.choice(sorted(state.versions[number].tags))
            return DeleteVersionTag(name=name, version=number, key=key)
        if action == "model_tag":
            key = rng.choice(("tier", "pii", "domain", "sla"))
            value = rng.choice(("gold", "silver", "yes", "no", "99.9", "internal"))
            return SetModelTag(name=name, key=key, value=value)
        if action == "drop_model_tag":
            keys = sorted(k for k in state.tags if k not in ("team", "owner"))
            return DeleteModelTag(name=name, key=rng.choice(keys)) if keys else None
        if action == "model_description":
            return UpdateModelDescription(
                name=name, description=f"{name} for {model.team}, revision {rng.randint(1, 999)}"
            )
        if action == "version_description":
            return UpdateVersionDescription(
                name=name, version=rng.choice(live), description=f"notes {rng.randint(1, 99999)}"
            )
        if action == "stage":
            return self._stage_change(name, state, live)
        if action == "alias":
            alias = rng.choice(("champion", "champion", "challenger", "canary"))
            wanted = {"champion": Stage.PRODUCTION, "challenger": Stage.STAGING}.get(alias)
            fitting = [n for n in live if state.versions[n].stage == wanted]
            return SetAlias(name=name, alias=alias, version=rng.choice(fitting or live))
        if action == "drop_alias":
            return (
                DeleteAlias(name=name, alias=rng.choice(sorted(state.aliases)))
                if state.aliases
                else None
            )
        if action == "delete_version":
            old = [n for n in live if state.versions[n].stage in (Stage.ARCHIVED, Stage.NONE)]
            if len(live) < 3 or not old:
                return None
            self.counts["deleted_versions"] += 1
            return DeleteVersion(name=name, version=min(old))
        if action == "rename":
            model.renames += 1
            self.counts["renamed_models"] += model.renames == 1
            return RenameModel(name=name, new_name=f"{model.name}-r{model.renames}")
        raise AssertionError(action)

    def _stage_change(self, name: str, state: ModelState, live: list[int]) -> Command:
        rng = self.rng
        number = max(live) if rng.random() < 0.6 else rng.choice(live)
        stage = state.versions[number].stage
        if stage == Stage.NONE:
            return TransitionStage(
                name=name, version=number, stage=Stage.STAGING, archive_existing=rng.random() < 0.3
            )
        if stage == Stage.STAGING:
            return TransitionStage(
                name=name,
                version=number,
                stage=Stage.PRODUCTION,
                archive_existing=rng.random() < 0.85,
            )
        target = (
            Stage.ARCHIVED if stage == Stage.PRODUCTION else rng.choice((Stage.STAGING, Stage.NONE))
        )
        return TransitionStage(name=name, version=number, stage=target)

    def _dataset(self, at: float) -> DatasetRef:
        name, releases = self.rng.choice(self.datasets)
        version = max(1, bisect.bisect(releases, at))
        return DatasetRef(
            name=name,
            version=f"v{version}",
            uri=f"s3://data/{name}/v{version}",
            # One digest per dataset version, whoever reads it.
            digest=f"sha256:{hashlib.sha256(f'{self.seed}/{name}@v{version}'.encode()).hexdigest()}",
        )

    def _train(self, model: _Model, index: int, at: float) -> None:
        """A training run reported as the ingest records it: the run's stream, then the version."""
        rng = self.rng
        state = model.state
        assert state is not None
        if not model.commits or rng.random() < 0.35:
            model.commits.append(f"{rng.getrandbits(160):040x}")
        commit = rng.choice(model.commits[-3:])
        self.commits.add(f"{model.repository}@{commit}")
        datasets: dict[str, DatasetRef] = {}
        for _ in range(rng.randint(1, 3)):
            dataset = self._dataset(at)
            datasets[dataset.name] = dataset
        for ref in datasets.values():
            self.dataset_use[f"{ref.name}@{ref.version}"] += 1
        run_id = f"{model.team}-{rng.getrandbits(64):016x}"
        run = RecordRun(
            run_id=run_id,
            experiment=state.name,
            model_name=state.name,
            artifact=ArtifactRef(
                uri=f"s3://models/{state.name}/{run_id}/model",
                digest=f"sha256:{rng.getrandbits(256):064x}",
                size=rng.randint(10_000, 500_000_000),
            ),
            metrics={k: round(rng.random(), 4) for k in rng.sample(_METRICS[:5], 3)},
            params={
                "learning_rate": str(round(rng.random() / 10, 4)),
                "epochs": str(rng.randint(1, 50)),
            },
            datasets=list(datasets.values()),
            code=CodeRef(repository=model.repository, commit=commit),
            framework=rng.choice(_FRAMEWORKS),
            started_at=self._time(at - rng.uniform(600, 36_000)),
            finished_at=self._time(at - rng.uniform(1, 300)),
            producer="training-service",
        )
        message_id = self._uuid7(at)
        record_id = run_command_id(run, "RecordRun")
        run_events = decide_run(run, None)
        self._append(
            run_stream_id(run_id),
            StreamHead(),
            run_events,
            INGEST_ACTOR,
            at,
            record_id,
            message_id,
            RUN_SCHEMA_VERSION,
        )
        self.counts["runs"] += 1
        version_id = run_command_id(run, "RegisterVersion", state.name)
        self._command(
            model, _version_of(run, state.name), INGEST_ACTOR, at + 0.05, version_id, message_id
        )
        self._became_parent_candidate(index)

    def _hand_version(self, model: _Model, index: int, at: float) -> None:
        """A version registered by a person, derived from one or more existing versions."""
        rng = self.rng
        state = model.state
        assert state is not None
        parents: list[ParentRef] = []
        ensemble = rng.random() < 0.25
        for _ in range(rng.randint(2, 3) if ensemble else 1):
            parent = self._parent_candidate(index, model)
            if parent is not None and parent not in parents:
                parents.append(parent)
        if ensemble:
            parents = [p.model_copy(update={"relation": "ensemble_member"}) for p in parents]
        self.counts["parent_links"] += len(parents)
        number = state.last_version + 1
        command = RegisterVersion(
            name=state.name,
            source=f"s3://models/{state.name}/manual-{number}/model",
            digest=f"sha256:{rng.getrandbits(256):064x}",
            metrics={k: round(rng.random(), 4) for k in rng.sample(_METRICS[:5], 2)},
            datasets=[self._dataset(at)] if rng.random() < 0.5 else [],
            parents=parents,
            tags={
                "method": "ensemble" if ensemble else parents[0].relation if parents else "manual"
            },
            description="registered by hand",
        )
        self._command(model, command, self._person(model), at)
        self._became_parent_candidate(index)

    def _became_parent_candidate(self, index: int) -> None:
        if index not in self.live_set:
            self.live_set.add(index)
            self.live.append(index)

    def _parent_candidate(self, index: int, model: _Model) -> ParentRef | None:
        """A live version of another live model (mostly), or an earlier version of this one."""
        rng = self.rng
        relation = rng.choice(_RELATIONS)
        for _ in range(5):
            other_index = rng.choice(self.live) if rng.random() < 0.7 and self.live else index
            if other_index not in self.live_set and other_index != index:
                continue
            other = self.models[other_index].state
            if other is None or other.deleted:
                continue
            live = self._live_versions(other)
            if live:
                return ParentRef(model=other.name, version=rng.choice(live), relation=relation)
        return None

    # Events ----------------------------------------------------------------------------------

    def _command(
        self,
        model: _Model,
        command: Command,
        actor: str,
        at: float,
        command_id: uuid.UUID | None = None,
        correlation_id: uuid.UUID | None = None,
    ) -> None:
        command_id = command_id or self._uuid7(at)
        try:
            decided = decide(command, model.state, model.stream_id)
        except DomainError as refused:  # the plan only asks for what the rules allow
            raise AssertionError(f"{command!r} refused: {refused.message}") from refused
        if not decided:
            return
        before = model.head.version
        envelopes = self._append(
            model.stream_id,
            model.head,
            decided,
            actor,
            at,
            command_id,
            correlation_id or command_id,
            SCHEMA_VERSION,
        )
        state = model.state
        for event, envelope in zip(decided, envelopes, strict=True):
            state = evolve(state, event, envelope.recorded_at)  # type: ignore[arg-type]
            if isinstance(event, ModelRegistered):
                self.claims.append((event.name, model.stream_id, envelope.recorded_at))
            elif isinstance(event, ModelRenamed):
                self.claims.append((event.new_name, model.stream_id, envelope.recorded_at))
                self.retires.append((event.old_name, model.stream_id, envelope.recorded_at))
            elif isinstance(event, ModelDeleted):
                self.retires.append(("", model.stream_id, envelope.recorded_at))
        model.state = state
        last = envelopes[-1]
        model.head = StreamHead(last.stream_version, last.hash)
        if before // SNAPSHOT_EVERY != last.stream_version // SNAPSHOT_EVERY and state is not None:
            self.snapshots[model.stream_id] = (last.stream_version, last.hash, last.event_id, state)

    def _append(
        self,
        stream_id: str,
        head: StreamHead,
        decided: Sequence[Any],
        actor: str,
        at: float,
        command_id: uuid.UUID,
        correlation_id: uuid.UUID,
        schema_version: int,
    ) -> list[Envelope]:
        """Chain the events of one command onto `stream_id` as the command handler would."""
        recorded_at = self._time(at)
        new_events = [
            NewEvent(
                event_id=derived_event_id(command_id, i),
                type=event.type,
                payload=event.model_dump(mode="json", exclude={"type"}),
                recorded_at=recorded_at,
                actor=actor,
                causation_id=command_id,
                correlation_id=correlation_id,
                schema_version=schema_version,
            )
            for i, event in enumerate(decided)
        ]
        envelopes = chain(stream_id, head, new_events)
        self.rows.extend(
            (
                e.event_id,
                e.stream_id,
                e.stream_version,
                e.type,
                e.schema_version,
                e.recorded_at,
                e.actor,
                e.causation_id,
                e.correlation_id,
                dumps(e.payload).decode(),
                e.prev_hash,
                e.hash,
            )
            for e in envelopes
        )
        self.written += len(envelopes)
        self.first_at = self.first_at or recorded_at
        self.last_at = recorded_at
        return envelopes

    def take_batch(self) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]], list[str]]:
        batch = (self.rows, self.claims, self.retires)
        self.rows, self.claims, self.retires = [], [], []
        return batch


async def _write(
    conn: asyncpg.Connection,
    rows: list[tuple[Any, ...]],
    claims: list[tuple[str, str, datetime]],
    retires: list[tuple[str, str, datetime]],
) -> None:
    """One batch, in one short transaction: the events and the names they claim or let go (as
    the store's append does: a rename lets the former name go, a deletion every name held)."""
    async with conn.transaction():
        await conn.copy_records_to_table("events", records=rows, columns=_EVENT_COLUMNS)
        if claims:
            await conn.copy_records_to_table(
                "model_names",
                records=[(name, stream, True, at) for name, stream, at in claims],
                columns=("name", "stream_id", "is_current", "claimed_at"),
            )
        if retires:
            names, streams, instants = (list(column) for column in zip(*retires, strict=True))
            await conn.execute(
                "UPDATE model_names n SET is_current = false, released_at = r.at"
                " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS r(name, stream, at)"
                " WHERE n.stream_id = r.stream AND n.is_current AND (r.name = '' OR n.name = r.name)",
                names,
                streams,
                instants,
            )


async def _write_snapshots(
    conn: asyncpg.Connection, snapshots: dict[str, tuple[int, str, uuid.UUID, ModelState]]
) -> None:
    if not snapshots:
        return
    ids = [event_id for _, _, event_id, _ in snapshots.values()]
    positions = dict(
        await conn.fetch("SELECT event_id, position FROM events WHERE event_id = ANY($1)", ids)
    )
    await conn.copy_records_to_table(
        "snapshots",
        records=[
            (
                stream,
                version,
                head,
                positions[event_id],
                STATE_SCHEMA,
                dumps(state_to_json(state)).decode(),
            )
            for stream, (version, head, event_id, state) in snapshots.items()
        ],
        columns=(
            "stream_id",
            "stream_version",
            "head_hash",
            "head_position",
            "state_schema",
            "state",
        ),
    )


async def generate(
    database_url: str,
    *,
    models: int = 10_000,
    events: int = 1_000_000,
    seed: int = 1,
    start: datetime = DEFAULT_START,
    days: int = 365,
    batch_size: int = 20_000,
    progress: bool = False,
) -> History:
    """Write a history of about `events` events over `models` models into the store at
    `database_url` (migrated first); return what was written. See the module's docstring."""
    began = time.perf_counter()
    engine = create_engine(database_url, pool_size=1)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    simulation = _Generator(models=models, events=events, seed=seed, start=start, days=days)
    conn = await asyncpg.connect(plain(database_url))
    try:
        while simulation.queue and simulation.written < events:
            simulation.target = min(events, simulation.written + batch_size)
            simulation.run()
            await _write(conn, *simulation.take_batch())
            if progress:
                rate = simulation.written / (time.perf_counter() - began)
                print(
                    f"  {simulation.written:,} events ({rate:,.0f}/s)", file=sys.stderr, flush=True
                )
        await _write_snapshots(conn, simulation.snapshots)
        # Fresh statistics, as a store in service has: without them the planner sorts the whole
        # table for each batch of the commit-order reader instead of walking its index.
        await conn.execute("ANALYZE events; ANALYZE model_names; ANALYZE snapshots")
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
    finally:
        await conn.close()
    counts = simulation.counts
    assert simulation.first_at is not None and simulation.last_at is not None
    return History(
        events=simulation.written,
        model_streams=sum(m.state is not None for m in simulation.models),
        run_streams=counts["runs"],
        versions=sum(m.state.last_version for m in simulation.models if m.state is not None),
        runs=counts["runs"],
        datasets=len(simulation.dataset_use),
        commits=len(simulation.commits),
        parent_links=counts["parent_links"],
        renamed_models=counts["renamed_models"],
        deleted_models=counts["deleted_models"],
        deleted_versions=counts["deleted_versions"],
        snapshots=len(simulation.snapshots),
        first_recorded_at=simulation.first_at,
        last_recorded_at=simulation.last_at,
        head_position=head,
        seconds=time.perf_counter() - began,
        model_names=[m.state.name for m in simulation.models if m.state is not None],
        dataset_refs=[ref for ref, _ in simulation.dataset_use.most_common()],
    )


def _report(history: History) -> None:
    print(
        f"wrote {history.events:,} events in {history.seconds:.1f} s"
        f" ({history.events_per_second:,.0f} events/s)"
    )
    print(
        f"  {history.model_streams:,} models ({history.renamed_models} renamed,"
        f" {history.deleted_models} deleted), {history.versions:,} versions"
        f" ({history.deleted_versions} deleted), {history.runs:,} runs,"
        f" {history.datasets:,} datasets, {history.commits:,} commits,"
        f" {history.parent_links:,} parent links: {history.lineage_nodes:,} lineage nodes"
    )
    print(
        f"  recorded {history.first_recorded_at:%Y-%m-%d} .. {history.last_recorded_at:%Y-%m-%d};"
        f" {history.snapshots:,} snapshots; head position {history.head_position:,}"
    )


async def _generate_and_report(url: str, args: argparse.Namespace) -> None:
    history = await generate(
        url, models=args.models, events=args.events, seed=args.seed, progress=True
    )
    _report(history)
    if args.verify:
        from registrar.store.chain_verification import verify_chains
        from registrar.store.event_store import PostgresEventStore

        engine = create_engine(url, pool_size=2)
        try:
            began = time.perf_counter()
            report = await verify_chains(PostgresEventStore(engine))
            print(
                f"verify: {report.streams:,} streams, {report.events:,} events,"
                f" {'intact' if report.intact else f'{len(report.broken)} broken'}"
                f" ({time.perf_counter() - began:.1f} s)"
            )
        finally:
            await engine.dispose()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--models", type=int, default=10_000)
    cli.add_argument("--events", type=int, default=1_000_000)
    cli.add_argument("--seed", type=int, default=1)
    cli.add_argument("--database-url", help="write here (kept) instead of a fresh database")
    cli.add_argument("--verify", action="store_true", help="then recompute every hash chain")
    args = cli.parse_args()
    if args.database_url:
        asyncio.run(_generate_and_report(args.database_url, args))
    else:
        run_on_a_fresh_database(lambda url: _generate_and_report(url, args))


if __name__ == "__main__":
    main()
