"""The command handler: load a model's stream, decide, append with the expected version, and on a
concurrent write reload and decide again (bounded). The only place commands become events."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from registrar.commands.promotion_policies import PromotionPolicies
from registrar.contracts.codec import canonical
from registrar.contracts.commands import (
    REQUEST_COMMANDS,
    AssessRisk,
    Command,
    RecordEvaluation,
    RegisterModel,
    RegisterVersion,
    RenameModel,
    ReportDeployment,
    SetAlias,
    TransitionStage,
)
from registrar.contracts.envelope import GENESIS_HASH, Envelope
from registrar.contracts.events import (
    SCHEMA_VERSION,
    Event,
    ModelDeleted,
    ModelRegistered,
    ModelRenamed,
)
from registrar.contracts.identifiers import derived_event_id, uuid7
from registrar.contracts.values import Role
from registrar.domain.approvals import DecisionContext, refuse_if_held
from registrar.domain.decider import decide, name_is_free
from registrar.domain.errors import Conflict, DomainError, Invalid
from registrar.domain.policies import NO_POLICIES
from registrar.domain.state import (
    STATE_SCHEMA,
    ModelState,
    evolve,
    fold,
    state_from_json,
    state_to_json,
)
from registrar.retrying import CONTENTION
from registrar.store.event_store import (
    ConcurrencyConflict,
    EventIdsTaken,
    NameChange,
    NameTaken,
    NewEvent,
    PostgresEventStore,
    RequestKey,
    Snapshot,
    StreamHead,
)

log = logging.getLogger("registrar.commands")


@dataclass(frozen=True, slots=True)
class LoadedStream:
    """A model's state as of its stream's head."""

    stream_id: str
    state: ModelState | None
    version: int = 0
    head_hash: str = GENESIS_HASH
    head_position: int = 0

    @property
    def head(self) -> StreamHead:
        return StreamHead(self.version, self.head_hash)

    def folded(self, envelopes: list[Envelope]) -> LoadedStream:
        if not envelopes:
            return self
        last = envelopes[-1]
        return LoadedStream(
            self.stream_id,
            fold(self.state, envelopes),
            last.stream_version,
            last.hash,
            last.position or 0,
        )


class IdempotencyKeyReused(Invalid):
    """A caller-chosen command id sent again with a different request."""

    code = "idempotency_key_reused"


def reused_key_message(key: UUID) -> str:
    return (
        f"Idempotency-Key {key} was used before for a different request (another model,"
        " command, body or caller): send a new key for a new request, and the same key only to"
        " retry the same request"
    )


@dataclass(frozen=True, slots=True)
class CommandMeta:
    """Who asks, and the ids that tie the resulting events to the request."""

    actor: str
    command_id: UUID = field(default_factory=uuid7)
    correlation_id: UUID | None = None
    role: Role = Role.ADMIN
    """The caller's role (from its token; admin when authentication is off, as in MLflow)."""
    chosen_by_caller: bool = False
    """The command id is the caller's (an Idempotency-Key): used again, it must be for the same
    request, or it is refused."""

    def part(self, index: int) -> CommandMeta:
        """The meta of the `index`-th command of a request that makes several (still idempotent)."""
        if index == 0:
            return self
        command_id = derived_event_id(self.command_id, 1_000_000 + index)
        return CommandMeta(
            self.actor,
            command_id,
            self.correlation_id or self.command_id,
            self.role,
            self.chosen_by_caller,
        )

    def request_key(self, command: Command) -> RequestKey | None:
        """The caller's key and a fingerprint of what it asks (who, and the whole command)."""
        if not self.chosen_by_caller:
            return None
        asked = {"actor": self.actor, "command": command.model_dump(mode="json")}
        return RequestKey(self.command_id, hashlib.sha256(canonical(asked)).hexdigest())


@dataclass(frozen=True, slots=True)
class _Turn:
    """A command waiting to be handled, and where its outcome (or refusal) goes."""

    command: Command
    meta: CommandMeta
    done: asyncio.Future[tuple[Outcome, DecisionContext]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a handled command did: the events appended (maybe none) and the state after them."""

    stream: LoadedStream
    events: list[Envelope]

    @property
    def state(self) -> ModelState:
        assert self.stream.state is not None
        return self.stream.state

    @property
    def position(self) -> int:
        """The global position of the last event written, or of the stream's head for a no-op."""
        return self.events[-1].position or 0 if self.events else self.stream.head_position


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _continues(loaded: LoadedStream, attempted: list[NewEvent], appended: list[Envelope]) -> bool:
    """Whether `appended` are the events just attempted, right after `loaded`'s head (and not
    the stored events of an earlier try of the same command)."""
    return (
        [e.event_id for e in appended] == [e.event_id for e in attempted]
        and appended[0].stream_version == loaded.version + 1
        and appended[0].prev_hash == loaded.head_hash
    )


def _name_change(events: list[Event]) -> NameChange | None:
    for event in events:
        if isinstance(event, ModelRegistered):
            return NameChange(claim=event.name)
        if isinstance(event, ModelRenamed):
            return NameChange(claim=event.new_name, retire=event.old_name)
        if isinstance(event, ModelDeleted):
            return NameChange(release_all=True)
    return None


class CommandHandler:
    def __init__(
        self,
        store: PostgresEventStore,
        *,
        clock: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], UUID] = uuid7,
        max_attempts: int = 20,
        snapshot_every: int = 200,
        cache_size: int = 10_000,
        on_append: Callable[[LoadedStream], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.new_id = new_id
        self.max_attempts = max_attempts
        self.snapshot_every = snapshot_every
        self.cache_size = cache_size
        self.on_append = on_append
        self._cache: OrderedDict[str, LoadedStream] = OrderedDict()
        self._stream_of_name: dict[str, str] = {}
        self._queues: dict[str, list[_Turn]] = {}
        """Per model name, the commands waiting for their turn (present while one is handled)."""
        self._turn_takers: set[asyncio.Task[None]] = set()
        self.policies = PromotionPolicies(store, clock)
        """The promotion policy in force: read for a move or a request decision."""

    async def handle(self, command: Command, meta: CommandMeta) -> Outcome:
        """Decide and append `command`; raise DomainError if the registry refuses it.

        Writers to one model in this process take turns, so they do not race each other's
        optimistic appends; writers in other processes still can, and a conflict with them is
        retried after a short random pause. Commands that queued for a model while it was busy
        are decided one after another on its state and appended together (a group commit: one
        statement, one transaction), each still its own events with its own outcome.
        """
        turn = _Turn(command, meta, asyncio.get_running_loop().create_future())
        queue = self._queues.get(command.name)
        if queue is None:
            self._queues[command.name] = queue = [turn]
            # Its own task: a caller that goes away does not stop the others' turns.
            task = asyncio.create_task(self._take_turns(command.name, queue))
            self._turn_takers.add(task)  # held: the loop keeps only a weak reference
            task.add_done_callback(self._turn_takers.discard)
        else:
            queue.append(turn)
        outcome, context = await turn.done
        if isinstance(command, TransitionStage | SetAlias):
            refuse_if_held(command, outcome.state, context)  # governed: a request, not a move
        return outcome

    async def _take_turns(self, name: str, queue: list[_Turn]) -> None:
        """Handle the commands queued for model `name`, oldest first, until none is left."""
        turns: list[_Turn] = []
        try:
            while queue:
                turns = queue[:]
                del queue[:]
                try:
                    settled = await self._grouped(turns) if len(turns) > 1 else 0
                except Exception as failed:  # the store failed: as it would have for each alone
                    for turn in turns:
                        if not turn.done.done():
                            turn.done.set_exception(failed)
                    continue
                for turn in turns[settled:]:
                    await self._alone(turn)
        finally:
            del self._queues[name]
            for turn in (*turns, *queue):  # unsettled only when cancelled (a stop)
                if not turn.done.done():
                    turn.done.cancel()

    async def _alone(self, turn: _Turn) -> None:
        try:
            context = await self._context(turn.command, turn.meta)
            outcome = await self._handle(turn.command, turn.meta, context)
        except asyncio.CancelledError:
            turn.done.cancel()
            raise
        except BaseException as failed:  # the caller's to raise
            turn.done.set_exception(failed)
        else:
            turn.done.set_result((outcome, context))

    async def _grouped(self, turns: list[_Turn]) -> int:
        """Decide the leading `turns` one after another on the cached state, append all their
        events at once, and settle them; return how many were settled (the rest, from the first
        that is refused, a no-op, names a model or carries the caller's key, or all of them on a
        conflict, are handled alone: that path checks refusals on the stored stream)."""
        cached = self._cached(turns[0].command.name)
        if cached is None or cached.state is None:
            return 0
        state: ModelState | None = cached.state
        decided: list[tuple[_Turn, DecisionContext, list[NewEvent]]] = []
        for turn in turns:
            command, meta = turn.command, turn.meta
            if meta.chosen_by_caller or isinstance(command, RegisterModel):
                break
            try:
                context = await self._context(command, meta)
                await self._check_other_streams(command)
                events = decide(command, state, "", context)
            except DomainError:
                break
            if not events or _name_change(events) is not None:
                break
            at = self.clock()
            for event in events:
                state = evolve(state, event, at)
            decided.append(
                (turn, context, [self._new_event(i, e, meta, at) for i, e in enumerate(events)])
            )
        if len(decided) < 2:
            return 0  # nothing to gain: handled alone
        attempted = [event for _, _, events in decided for event in events]
        try:
            appended = await self.store.append(cached.stream_id, cached.head, attempted)
        except (ConcurrencyConflict, NameTaken, EventIdsTaken):
            return 0  # another process wrote first: each is decided again, alone
        if not _continues(cached, attempted, appended):
            return 0
        outcomes = []
        stream, start = cached, 0
        for turn, context, events in decided:
            mine = appended[start : start + len(events)]
            start += len(events)
            stream = stream.folded(mine)
            outcomes.append((turn, Outcome(stream, mine), context))
        await self._appended(cached.version, stream)
        for turn, outcome, context in outcomes:
            turn.done.set_result((outcome, context))
        return len(decided)

    async def _context(self, command: Command, meta: CommandMeta) -> DecisionContext:
        """Who asks, and for a move or a request, the policy in force and a new request's id
        (derived from the command id, so a retried command makes the same request)."""
        # AssessRisk reads the governance document's tiers, questionnaire and assessor role.
        moves = isinstance(command, (TransitionStage, SetAlias, AssessRisk, *REQUEST_COMMANDS))
        # A new request's id, or a new evaluation's: derived from the command id, so a retried
        # command makes the same one.
        names_new = moves or isinstance(command, RecordEvaluation)
        return DecisionContext(
            actor=meta.actor,
            role=meta.role,
            # A deployment report reads the governance document's environments.
            policies=(
                await self.policies.current()
                if moves or isinstance(command, ReportDeployment)
                else NO_POLICIES
            ),
            new_request_id=str(derived_event_id(meta.command_id, 999_999)) if names_new else "",
            now=self.clock(),
        )

    async def _handle(
        self, command: Command, meta: CommandMeta, context: DecisionContext
    ) -> Outcome:
        # First try on the state this process already holds, without reading: an append at a
        # stale head is refused by the store, and a refusal or no-op decided on it is checked
        # again on the stream as stored. Every later try reads the stream first.
        cached = self._cached(command.name)
        conflicts = 0
        while conflicts < self.max_attempts:
            verified = cached is None
            loaded = cached if cached is not None else await self.load(command.name)
            cached = None
            if (
                isinstance(command, RegisterModel)
                and loaded is not None
                and name_is_free(command.name, loaded.state)
            ):
                loaded = None  # a name its last model released: a new model takes it
            new_stream = loaded is None
            if loaded is None:
                loaded = LoadedStream(str(self.new_id()), None)
            try:
                await self._check_other_streams(command)
                decided = decide(
                    command, loaded.state, loaded.stream_id if new_stream else "", context
                )
            except DomainError:
                if not verified:
                    continue
                prior = await self.store.events_caused_by(meta.command_id)
                if prior:
                    return await self._replayed(command, meta, loaded, prior)
                raise
            if not decided:
                if not verified:
                    continue
                prior = await self.store.events_caused_by(meta.command_id)
                return (
                    await self._replayed(command, meta, loaded, prior)
                    if prior
                    else Outcome(loaded, [])
                )
            at = self.clock()  # one instant per decision: its events happened together
            new_events = [self._new_event(i, event, meta, at) for i, event in enumerate(decided)]
            try:
                appended = await self.store.append(
                    loaded.stream_id,
                    loaded.head,
                    new_events,
                    _name_change(decided),
                    meta.request_key(command),
                )
            except EventIdsTaken:
                raise IdempotencyKeyReused(reused_key_message(meta.command_id)) from None
            except (ConcurrencyConflict, NameTaken):
                # Someone else wrote first: pause a little (so concurrent writers in other
                # processes spread out), then read what they wrote and decide again.
                conflicts += 1
                await asyncio.sleep(CONTENTION.pause(conflicts))
                continue
            if not _continues(loaded, new_events, appended):
                return await self._replayed(command, meta, loaded, appended)
            after = loaded.folded(appended)
            await self._appended(loaded.version, after)
            return Outcome(after, appended)
        raise Conflict(
            f"model {command.name!r} is being changed by many writers at once; "
            f"gave up after {self.max_attempts} attempts, retry later"
        )

    async def _replayed(
        self, command: Command, meta: CommandMeta, loaded: LoadedStream, prior: list[Envelope]
    ) -> Outcome:
        """A command handled before (same command id): answer with what it did then, and the
        stream as it is now; decide nothing again. A caller's key used before for another
        request is refused: answering the first request's result would hide the mistake."""
        asked = meta.request_key(command)
        if asked is not None:
            first = await self.store.request_hash_of(asked.key)
            if first is not None and first != asked.request_hash:
                raise IdempotencyKeyReused(reused_key_message(asked.key))
        current = await self.load(command.name) if loaded.state is not None else None
        return Outcome(current or await self.load_stream(prior[0].stream_id), prior)

    def _cached(self, name: str) -> LoadedStream | None:
        """This process's last known state of the model named `name`, if it holds one."""
        cached = self._cache.get(self._stream_of_name.get(name, ""))
        if cached is None or cached.state is None or cached.state.name != name:
            return None
        return cached

    async def load(self, name: str) -> LoadedStream | None:
        """The stream that holds or once held `name`, as of now (strongly consistent).

        A model loaded before costs one query: its name resolved and its new events read together.
        """
        cached = self._cached(name)
        known = (cached.stream_id, cached.version) if cached is not None else None
        stream_id, events = await self.store.read_stream_by_name(name, known)
        if stream_id is None:
            return None
        if cached is None or cached.stream_id != stream_id:
            return await self.load_stream(stream_id)
        loaded = cached.folded(events)
        self._remember(loaded)
        return loaded

    async def load_stream(self, stream_id: str) -> LoadedStream:
        """The stream's current state: cache or snapshot, plus the events written since."""
        base = self._cache.get(stream_id)
        if base is None:
            base = await self._from_snapshot(stream_id)
        loaded = base.folded(await self.store.read_stream(stream_id, base.version))
        self._remember(loaded)
        return loaded

    async def _from_snapshot(self, stream_id: str) -> LoadedStream:
        snapshot = await self.store.load_snapshot(stream_id)
        if snapshot is None or snapshot.state_schema != STATE_SCHEMA:
            return LoadedStream(stream_id, None)
        return LoadedStream(
            stream_id,
            state_from_json(snapshot.state),
            snapshot.stream_version,
            snapshot.head_hash,
            snapshot.head_position,
        )

    async def _appended(self, version_before: int, after: LoadedStream) -> None:
        """What follows every append, alone or grouped: hold the new state, tell who follows
        appends (read-your-writes, the relay), and snapshot when due."""
        self._remember(after)
        if self.on_append is not None:
            self.on_append(after)
        await self._snapshot_if_due(version_before, after)

    async def _snapshot_if_due(self, version_before: int, after: LoadedStream) -> None:
        if after.state is None:
            return
        # A snapshot costs in proportion to the state: taken every `snapshot_every` events, a
        # model with thousands of versions paid tens of milliseconds each time. Spaced by its
        # number of versions, its cost per event stays the same however large the model grows.
        every = self.snapshot_every * (1 + len(after.state.versions) // self.snapshot_every)
        if after.version // every == version_before // every:
            return
        try:
            await self.store.save_snapshot(
                Snapshot(
                    after.stream_id,
                    after.version,
                    after.head_hash,
                    after.head_position,
                    STATE_SCHEMA,
                    state_to_json(after.state),
                )
            )
        except Exception:  # a snapshot is an optimisation: never fail a committed command for it
            log.exception("could not save a snapshot of stream %s", after.stream_id)

    async def _check_other_streams(self, command: Command) -> None:
        """Rules that read other models' streams: decided here, as a best-effort check."""
        if isinstance(command, RegisterVersion):
            for parent in command.parents:
                if parent.model == command.name:
                    continue
                other = await self.load(parent.model)
                if (
                    other is not None
                    and other.state is not None
                    and other.state.name != parent.model
                ):
                    # Lineage names models by their current name: a former one would go stale.
                    raise Invalid(
                        f"parent model {parent.model!r} was renamed to {other.state.name!r};"
                        " name the parent by its current name"
                    )
                version = (
                    other.state.live_version(parent.version) if other and other.state else None
                )
                if version is None or other is None or other.state is None or other.state.deleted:
                    raise Invalid(
                        f"parent version {parent.version} of model {parent.model!r} does not exist"
                    )
        elif isinstance(command, RenameModel) and command.new_name != command.name:
            holder = await self.load(command.new_name)
            if holder is not None and not name_is_free(command.new_name, holder.state):
                raise Conflict(
                    f"cannot rename to {command.new_name!r}: a model named"
                    f" {command.new_name!r} already exists"
                )

    @staticmethod
    def _new_event(index: int, event: Event, meta: CommandMeta, at: datetime) -> NewEvent:
        return NewEvent(
            event_id=derived_event_id(meta.command_id, index),
            type=event.type,
            payload=event.model_dump(mode="json", exclude={"type"}),
            recorded_at=at,
            actor=meta.actor,
            causation_id=meta.command_id,
            correlation_id=meta.correlation_id or meta.command_id,
            schema_version=SCHEMA_VERSION,
        )

    def _remember(self, loaded: LoadedStream) -> None:
        if loaded.state is not None:
            self._stream_of_name[loaded.state.name] = loaded.stream_id
        self._cache[loaded.stream_id] = loaded
        self._cache.move_to_end(loaded.stream_id)
        while len(self._cache) > self.cache_size:
            _, dropped = self._cache.popitem(last=False)
            if dropped.state is not None:
                self._stream_of_name.pop(dropped.state.name, None)
