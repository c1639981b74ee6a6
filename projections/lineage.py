"""Lineage: datasets, training runs, code commits, model versions and deployments as one graph, and
its queries (a node's neighbourhood up or down to a depth; every version descending from a node).

Every edge points from a thing to what it was made from: a version was `produced_by` a run and
`trained_on` datasets, is `derived_from` parent versions (the relation says how: fine_tuned,
distilled, ensembled...), a run was `trained_on` datasets and `built_from` a commit, a deployment
(a model in an environment) is `deployed_as` the version serving there, while it serves; a
version was `evaluated_on` datasets (the relation names the evaluation's kind), an edge impact
analysis does not follow: evaluated on is not built from. "Upstream" follows edges forward,
"downstream" backward.

Node ids are readable: `dataset:NAME@VERSION` (`dataset:NAME` when unversioned), `run:RUN_ID`,
`commit:REPOSITORY@SHA`, `version:MODEL/VERSION`, `deployment:ENVIRONMENT/MODEL`. A version (and a
deployment) is stored under its model's stream id, so a rename moves nothing: it is shown under
the current name, and a former name still finds it (until another model takes that name). A
deleted version or model stays in the graph, marked `"deleted": true`: what was trained from a
dataset does not stop having been. A deployment where nothing serves any more stays too, with
`serving_version` null and no edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.contracts.codec import dumps
from registrar.contracts.envelope import Envelope
from registrar.contracts.events import EVENT_TYPES
from registrar.contracts.training import RUN_EVENT_TYPES, RunRecorded, run_event_from_payload
from registrar.contracts.values import DatasetRef
from registrar.domain.errors import Invalid, NotFound
from registrar.domain.state import ModelState, VersionState, fold, touched_versions
from registrar.projections.name_holders import NameHolders
from registrar.projections.ports import EventSource
from registrar.projections.stream_states import StreamStates
from registrar.projections.unapplied_events import unapplied_events

NAME = "lineage"
KINDS = ("dataset", "run", "commit", "version", "deployment")
MAX_DEPTH = 25
MAX_EDGES = 10_000
"""The most edges one lineage answer holds by default; beyond it the answer says truncated."""
MAX_EDGES_LIMIT = 100_000
"""The most a caller may ask for."""
Direction = Literal["upstream", "downstream", "both"]


def dataset_id(dataset: DatasetRef) -> str:
    return (
        f"dataset:{dataset.name}@{dataset.version}"
        if dataset.version
        else f"dataset:{dataset.name}"
    )


def run_node_id(run_id: str) -> str:
    return f"run:{run_id}"


def commit_id(repository: str, sha: str) -> str:
    return f"commit:{repository}@{sha}" if repository else f"commit:{sha}"


def deployment_key(stream_id: str, environment: str) -> str:
    """A deployment's stored key: its model by stream id, as a version's."""
    return f"deployment:{environment}/{stream_id}"


def version_key(stream_id: str, version: int) -> str:
    """A version's stored key: by its model's stream id, which no rename changes."""
    return f"version:{stream_id}/{version}"


# Applying events ---------------------------------------------------------------------------------


@dataclass
class _Writes:
    """The rows one batch of events adds or changes, written together at the end."""

    references: list[dict[str, Any]] = field(default_factory=list)
    """Nodes only referenced so far (a run id, a parent version): kept if the node is known."""
    facts: list[dict[str, Any]] = field(default_factory=list)
    """Datasets and commits: what a reference says of them is added to what is known."""
    nodes: list[dict[str, Any]] = field(default_factory=list)
    """Nodes from their own events (runs, versions): replace what is known."""
    edges: list[dict[str, Any]] = field(default_factory=list)
    undeployed: list[dict[str, Any]] = field(default_factory=list)
    """Deployments whose `deployed_as` edge goes (dropped before the batch's edges are added)."""
    models: list[dict[str, Any]] = field(default_factory=list)
    names: list[dict[str, Any]] = field(default_factory=list)

    def node(
        self,
        into: list[dict[str, Any]],
        key: str,
        kind: str,
        attrs: dict[str, Any],
        **columns: Any,
    ) -> None:
        """Add node `key` to `into` with its `attrs` (empty ones dropped) and table `columns`."""
        into.append(
            {
                "key": key,
                "kind": kind,
                "attrs": dumps({k: v for k, v in attrs.items() if v not in ("", None)}).decode(),
                "recorded": into is not self.references,
                "stream_id": None,
                "version": None,
                "stage": None,
                "aliases": None,
                "deleted": False,
                **columns,
            }
        )

    def edge(self, src: str, dst: str, kind: str, relation: str = "") -> None:
        self.edges.append({"src": src, "dst": dst, "kind": kind, "relation": relation})

    def trained_on(self, src: str, datasets: Iterable[DatasetRef]) -> None:
        for dataset in datasets:
            key = dataset_id(dataset)
            self.node(self.facts, key, "dataset", dataset.model_dump())
            self.edge(src, key, "trained_on")

    async def write(self, conn: AsyncConnection) -> None:
        for statement, rows in (
            (_INSERT_REFERENCE, self.references),
            (_MERGE_FACTS, self.facts),
            (_UPSERT_NODE, self.nodes),
            (_DROP_DEPLOYED_AS, self.undeployed),
            (_INSERT_EDGE, self.edges),
            (_UPSERT_MODEL, self.models),
            (_INSERT_NAME, self.names),
        ):
            if rows:
                await conn.execute(statement, rows)


_NODE_VALUES = (
    "VALUES (:key, :kind, CAST(:attrs AS jsonb), :recorded, :stream_id, :version, :stage,"
    " :aliases, :deleted)"
)
_NODE_INSERT = (
    "INSERT INTO lineage_nodes (node_key, kind, attrs, recorded, stream_id, version, stage,"
    f" aliases, deleted) {_NODE_VALUES}"
)
_INSERT_REFERENCE = text(f"{_NODE_INSERT} ON CONFLICT (node_key) DO NOTHING")
# What is known first wins: two references to one dataset version that disagree on its URI keep
# the first one applied.
_MERGE_FACTS = text(
    f"{_NODE_INSERT} ON CONFLICT (node_key) DO UPDATE"
    " SET attrs = excluded.attrs || lineage_nodes.attrs, recorded = true"
)
_UPSERT_NODE = text(
    f"{_NODE_INSERT} ON CONFLICT (node_key) DO UPDATE SET kind = excluded.kind,"
    " attrs = excluded.attrs, recorded = true, stream_id = excluded.stream_id,"
    " version = excluded.version, stage = excluded.stage, aliases = excluded.aliases,"
    " deleted = excluded.deleted"
)
_INSERT_EDGE = text(
    "INSERT INTO lineage_edges (src, dst, kind, relation) VALUES (:src, :dst, :kind, :relation)"
    " ON CONFLICT DO NOTHING"
)
_DROP_DEPLOYED_AS = text("DELETE FROM lineage_edges WHERE src = :src AND kind = 'deployed_as'")
_UPSERT_MODEL = text(
    "INSERT INTO lineage_models (stream_id, name, deleted, stream_version)"
    " VALUES (:stream_id, :name, :deleted, :stream_version) ON CONFLICT (stream_id) DO UPDATE"
    " SET name = excluded.name, deleted = excluded.deleted,"
    " stream_version = excluded.stream_version"
)
# A name finds the last model that took it (a deleted model's name, or a former one, may be taken
# again); events applied out of order across streams do not move it back.
_INSERT_NAME = text(
    "INSERT INTO lineage_model_names (name, stream_id, position)"
    " VALUES (:name, :stream_id, :position) ON CONFLICT (name) DO UPDATE"
    " SET stream_id = excluded.stream_id, position = excluded.position"
    " WHERE lineage_model_names.position < excluded.position"
)


class LineageProjection:
    name = NAME
    tables = ("lineage_nodes", "lineage_edges", "lineage_models", "lineage_model_names")

    def __init__(self, store: EventSource, cache_size: int = 10_000) -> None:
        self.store = store
        self.states = StreamStates(store, cache_size)
        self._holders = NameHolders(store)
        """The model a parent version's name meant when the version named it."""

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        """Apply `events` (any order across streams, in order within each) in `conn`'s transaction.

        A model stream's events at or below its recorded version, and runs already recorded, are
        skipped: applying twice is a no-op. Events of other stream kinds are ignored."""
        models: dict[str, list[Envelope]] = {}
        runs: list[Envelope] = []
        for envelope in events:
            if envelope.type in EVENT_TYPES:
                models.setdefault(envelope.stream_id, []).append(envelope)
            elif envelope.type in RUN_EVENT_TYPES:
                runs.append(envelope)
        writes = _Writes()
        if models:
            await self._apply_models(conn, models, writes)
        if runs:
            await self._apply_runs(conn, runs, writes)
        await writes.write(conn)

    def forget(self) -> None:
        """Drop the in-memory states (after a rolled back transaction they may be ahead)."""
        self.states.forget()

    async def _apply_models(
        self, conn: AsyncConnection, by_stream: dict[str, list[Envelope]], writes: _Writes
    ) -> None:
        rows = await conn.execute(
            text(
                "SELECT stream_id, stream_version FROM lineage_models WHERE stream_id = ANY(:ids)"
            ),
            {"ids": list(by_stream)},
        )
        applied = {row.stream_id: row.stream_version for row in rows}
        for stream_id, stream_events in by_stream.items():
            done = applied.get(stream_id, 0)
            fresh = await unapplied_events(self.store, stream_events, done)
            if not fresh:
                continue
            last = fresh[-1].stream_version
            before = await self.states.state_at(stream_id, done)
            after = fold(before, fresh)
            self.states.remember(stream_id, last, after)
            if after is not None:
                await self._model_rows(stream_id, before, after, fresh, last, writes)

    async def _model_rows(
        self,
        stream_id: str,
        before: ModelState | None,
        after: ModelState,
        fresh: list[Envelope],
        last: int,
        writes: _Writes,
    ) -> None:
        held = {before.name} if before is not None else set()
        for envelope in fresh:
            if envelope.type in ("ModelRegistered", "ModelRenamed"):
                name = envelope.payload[
                    "name" if envelope.type == "ModelRegistered" else "new_name"
                ]
                held.add(name)
                writes.names.append(
                    {"name": name, "stream_id": stream_id, "position": envelope.position or 0}
                )
            self._holders.seen(envelope)
        writes.models.append(
            {
                "stream_id": stream_id,
                "name": after.name,
                "deleted": after.deleted,
                "stream_version": last,
            }
        )
        for number in touched_versions(before, after, fresh):
            version = after.versions[number]
            earlier = before.versions.get(number) if before is not None else None
            aliases = after.aliases_of(number)
            if earlier is version and before is not None and before.aliases_of(number) == aliases:
                continue
            key = version_key(stream_id, number)
            writes.node(
                writes.nodes,
                key,
                "version",
                {
                    "source": version.source,
                    "digest": version.digest,
                    "run_id": version.run_id,
                    "created_at": version.created_at,
                    # Set once its files are sealed in the artifact store (then also `digest`).
                    **({"manifest_digest": version.manifest_digest} if version.sealed_at else {}),
                },
                stream_id=stream_id,
                version=number,
                stage=version.stage.value,
                aliases=aliases,
                deleted=version.deleted,
            )
            if earlier is None:  # newly registered: its inputs never change after this
                await self._version_edges(key, stream_id, held, version, writes)
        for envelope in fresh:
            if envelope.type == "EvaluationRecorded" and envelope.payload.get("dataset"):
                dataset = DatasetRef.model_validate(envelope.payload["dataset"])
                data_key = dataset_id(dataset)
                writes.node(writes.facts, data_key, "dataset", dataset.model_dump())
                number = envelope.payload["version"]
                writes.edge(
                    version_key(stream_id, number),
                    data_key,
                    "evaluated_on",
                    envelope.payload["kind"],
                )
        _deployment_rows(stream_id, after, fresh, writes)

    async def _version_edges(
        self, key: str, stream_id: str, held: set[str], version: VersionState, writes: _Writes
    ) -> None:
        if version.run_id:
            run = run_node_id(version.run_id)
            writes.node(writes.references, run, "run", {"run_id": version.run_id})
            writes.edge(key, run, "produced_by")
        writes.trained_on(key, version.datasets)
        for parent in version.parents:
            parent_stream = (
                stream_id
                if parent.model in held
                else await self._holders.at(parent.model, version.created_at)
            )
            if parent_stream is None:
                continue  # the registry checked the parent exists: only a foreign store lacks it
            parent_key = version_key(parent_stream, parent.version)
            writes.node(
                writes.references,
                parent_key,
                "version",
                {"model": parent.model},  # shown until the parent's own stream is applied
                stream_id=parent_stream,
                version=parent.version,
            )
            writes.edge(key, parent_key, "derived_from", parent.relation)

    async def _apply_runs(
        self, conn: AsyncConnection, envelopes: list[Envelope], writes: _Writes
    ) -> None:
        known = await conn.execute(
            text("SELECT node_key FROM lineage_nodes WHERE node_key = ANY(:keys) AND recorded"),
            {"keys": [e.stream_id for e in envelopes]},
        )
        recorded = set(known.scalars())
        for envelope in envelopes:
            if envelope.stream_id in recorded:
                continue  # a run stream holds one event: this run is applied
            recorded.add(envelope.stream_id)
            _run_rows(run_event_from_payload(envelope.type, envelope.payload), writes)


def _deployment_rows(
    stream_id: str, after: ModelState, fresh: list[Envelope], writes: _Writes
) -> None:
    """Each environment `fresh` reports on: its node, and its one `deployed_as` edge to the
    version serving there now (none when nothing serves)."""
    reported = {e.payload["environment"] for e in fresh if e.type == "DeploymentReported"}
    for environment in sorted(reported):
        key = deployment_key(stream_id, environment)
        serving = after.serving.get(environment)
        status = after.versions[serving].deployments[environment] if serving else None
        attrs = {"environment": environment, "serving_version": serving}
        if status is not None:
            attrs.update(endpoint=status.endpoint, deployer=status.deployer, since=status.since)
        writes.node(writes.nodes, key, "deployment", attrs, stream_id=stream_id, version=serving)
        writes.undeployed.append({"src": key})
        if serving is not None:
            writes.edge(key, version_key(stream_id, serving), "deployed_as")


def _run_rows(run: RunRecorded, writes: _Writes) -> None:
    key = run_node_id(run.run_id)
    facts = {
        "run_id": run.run_id,
        "experiment": run.experiment,
        "model_name": run.model_name,
        "artifact_uri": run.artifact.uri,
        "artifact_digest": run.artifact.digest,
        "framework": run.framework,
        "producer": run.producer,
        "finished_at": run.finished_at,
    }
    writes.node(writes.nodes, key, "run", facts)
    writes.trained_on(key, run.datasets)
    if run.code is not None and run.code.commit:
        commit = commit_id(run.code.repository, run.code.commit)
        writes.node(writes.facts, commit, "commit", run.code.model_dump())
        writes.edge(key, commit, "built_from")


# Queries -----------------------------------------------------------------------------------------


async def node_key(conn: AsyncConnection, node_id: str) -> str:
    """The stored key of the node a user named, or NotFound / Invalid saying what is wrong."""
    kind, sep, rest = node_id.partition(":")
    if not sep or kind not in KINDS or not rest:
        raise Invalid(
            f"node {node_id!r} is not a lineage node id: use dataset:NAME@VERSION, run:RUN_ID,"
            " commit:REPOSITORY@SHA, version:MODEL/VERSION or deployment:ENVIRONMENT/MODEL"
        )
    key = node_id
    if kind in ("version", "deployment"):  # named by their model: stored by its stream id
        if kind == "version":
            model, _, where = rest.rpartition("/")
            shape, wrong = "version:MODEL/VERSION", not model or not where.isdigit()
        else:
            where, _, model = rest.partition("/")
            shape, wrong = "deployment:ENVIRONMENT/MODEL", not where or not model
        if wrong:
            raise Invalid(f"node {node_id!r}: a {kind} node id is {shape}")
        stream_id = (
            await conn.execute(
                text("SELECT stream_id FROM lineage_model_names WHERE name = :name"),
                {"name": model},
            )
        ).scalar()
        if stream_id is None:
            raise NotFound(f"lineage has no model named {model!r}")
        key = deployment_key(stream_id, where)
        if kind == "version":
            key = version_key(stream_id, int(where))
    found = await conn.execute(
        text("SELECT 1 FROM lineage_nodes WHERE node_key = :key"), {"key": key}
    )
    if found.first() is None:
        raise NotFound(f"lineage has no node {node_id!r}")
    return key


# One walk for both directions: each row is an edge reached, and `frontier` the node it leads to.
# UNION (not UNION ALL) and the depth bound make it finish even on a cycle, which the registry's
# rules make impossible (a parent exists before its child) but a foreign store might hold.
_WALK = text(
    """
    WITH RECURSIVE walk(src, dst, kind, relation, frontier, depth, dir) AS (
        SELECT src, dst, kind, relation, dst, 1, 'up' FROM lineage_edges
        WHERE src = :start AND :up
        UNION
        SELECT src, dst, kind, relation, src, 1, 'down' FROM lineage_edges
        WHERE dst = :start AND :down
        UNION
        SELECT s.src, s.dst, s.kind, s.relation, s.frontier, w.depth + 1, w.dir
        FROM walk w CROSS JOIN LATERAL (
            SELECT e.src, e.dst, e.kind, e.relation, e.dst AS frontier FROM lineage_edges e
            WHERE w.dir = 'up' AND e.src = w.frontier
            UNION ALL
            SELECT e.src, e.dst, e.kind, e.relation, e.src FROM lineage_edges e
            WHERE w.dir = 'down' AND e.dst = w.frontier
        ) s
        WHERE w.depth < :depth
    )
    SELECT src, dst, kind, relation FROM walk
    """
)
"""Breadth first, nearest edges first, an edge once per depth and direction it is reached at
(`graph` keeps the first): read through a cursor, PostgreSQL computes the walk only as far as
it is read, so a capped answer costs no more than its cap."""

# Every node below `start`, however deep: UNION over the node alone visits each node once.
_DESCENDANTS = text(
    """
    WITH RECURSIVE below(node) AS (
        SELECT CAST(:start AS text)
        UNION
        SELECT e.src FROM below b JOIN lineage_edges e ON e.dst = b.node
        WHERE e.kind <> 'evaluated_on'  -- evaluated on a dataset is not built from it
    )
    SELECT node FROM below WHERE node <> :start
    """
)

_NODES = text(
    """
    SELECT n.node_key, n.kind, n.attrs, n.recorded, n.version, n.stage, n.aliases, n.stream_id,
           n.deleted OR coalesce(m.deleted, false) AS deleted,
           coalesce(m.name, n.attrs->>'model') AS model
    FROM lineage_nodes n LEFT JOIN lineage_models m ON m.stream_id = n.stream_id
    WHERE n.node_key = ANY(:keys)
    """
)


def _public_id(row: Any) -> str:
    if row.kind == "version":
        return f"version:{row.model}/{row.version}"
    if row.kind == "deployment":
        return f"deployment:{row.attrs.get('environment')}/{row.model}"
    return str(row.node_key)


def _node_view(row: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"id": _public_id(row), "kind": row.kind}
    if row.kind == "version":
        # model_id tells apart two models that held one name in turn (a deleted one's name
        # taken again): their versions share the readable id, and the live one answers to it.
        view.update(model=row.model, model_id=row.stream_id, version=row.version)
        view.update({k: v for k, v in row.attrs.items() if k != "model"})
        view.update(stage=row.stage, aliases=sorted(row.aliases or []), deleted=row.deleted)
    elif row.kind == "deployment":
        view.update(model=row.model, model_id=row.stream_id, **row.attrs)
        view.update(serving_version=row.version, deleted=row.deleted)
    else:
        view.update(row.attrs)
    view["recorded"] = row.recorded
    return view


async def _nodes(conn: AsyncConnection, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    rows = await conn.execute(_NODES, {"keys": list(keys)})
    return {row.node_key: _node_view(row) for row in rows}


async def graph(
    conn: AsyncConnection,
    node_id: str,
    direction: Direction = "both",
    depth: int = 3,
    max_edges: int = MAX_EDGES,
) -> dict[str, Any]:
    """The nodes and edges within `depth` edges of `node_id`, upstream, downstream or both: the
    nearest `max_edges` edges, and `truncated` if there were more."""
    if not 1 <= depth <= MAX_DEPTH:
        raise Invalid(f"depth must be between 1 and {MAX_DEPTH}, got {depth}")
    if not 1 <= max_edges <= MAX_EDGES_LIMIT:
        raise Invalid(f"max_edges must be between 1 and {MAX_EDGES_LIMIT}, got {max_edges}")
    start = await node_key(conn, node_id)
    params = {
        "start": start,
        "depth": depth,
        "up": direction in ("upstream", "both"),
        "down": direction in ("downstream", "both"),
    }
    found: dict[tuple[str, str, str, str | None], Any] = {}
    truncated = False
    walked = await conn.stream(_WALK.execution_options(yield_per=1000), params)
    try:
        async for edge in walked:
            key = (edge.src, edge.dst, edge.kind, edge.relation)
            if key in found:
                continue
            if len(found) == max_edges:
                truncated = True
                break
            found[key] = edge
    finally:
        await walked.close()
    edges = list(found.values())
    nodes = await _nodes(conn, {start, *(e.src for e in edges), *(e.dst for e in edges)})
    return {
        "node": nodes[start]["id"],
        "direction": direction,
        "depth": depth,
        "truncated": truncated,
        "nodes": sorted(nodes.values(), key=lambda n: (n["kind"], n["id"])),
        "edges": sorted(
            (
                {
                    "from": nodes[e.src]["id"],
                    "to": nodes[e.dst]["id"],
                    "kind": e.kind,
                    **({"relation": e.relation} if e.relation else {}),
                }
                for e in edges
            ),
            key=lambda e: (e["from"], e["to"], e["kind"]),
        ),
    }


async def impact(conn: AsyncConnection, node_id: str) -> dict[str, Any]:
    """Every version (and deployment) descending from `node_id`, at any depth, and which of those
    versions are in Production or hold an alias now."""
    start = await node_key(conn, node_id)
    below = (await conn.execute(_DESCENDANTS, {"start": start})).scalars().all()
    nodes = await _nodes(conn, [start, *below])
    found = [nodes[key] for key in below if key in nodes]
    versions = sorted(
        (n for n in found if n["kind"] == "version"), key=lambda n: (n["model"], n["version"])
    )
    live = [v for v in versions if not v["deleted"]]
    return {
        "node": nodes[start]["id"],
        "versions": versions,
        "in_production": [v["id"] for v in live if v["stage"] == "Production"],
        "holding_aliases": [v["id"] for v in live if v["aliases"]],
        "deployments": sorted(
            (n for n in found if n["kind"] == "deployment"), key=lambda n: n["id"]
        ),
    }
