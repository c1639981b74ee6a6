-- The event store: an append-only log of every model stream's events, hash-chained per stream.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version >= 1),
    type            text        NOT NULL,
    schema_version  integer     NOT NULL,
    recorded_at     timestamptz NOT NULL,
    actor           text        NOT NULL,
    causation_id    uuid,
    correlation_id  uuid,
    -- json, not jsonb: the stored text is exactly what was hashed, byte for byte.
    payload         json        NOT NULL,
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL,
    -- The writing transaction: the catch-up reader orders by (transaction_id, position) and stops
    -- below the oldest transaction still running, so an event that commits late is never skipped.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT events_event_id_unique UNIQUE (event_id),
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_commit_order ON events (transaction_id, position);

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % is not allowed on the event store', TG_OP;
END;
$$;

CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Every name a model has ever had. Claimed in the same transaction as the event that takes it;
-- never deleted, so a name is never silently reused by another model.
CREATE TABLE model_names (
    name        text    PRIMARY KEY,
    stream_id   text    NOT NULL,
    is_current  boolean NOT NULL
);
CREATE INDEX model_names_stream ON model_names (stream_id);

-- Snapshots of a stream's state every N events: loading reads the snapshot and the events after it.
CREATE TABLE snapshots (
    stream_id       text        PRIMARY KEY,
    stream_version  integer     NOT NULL,
    head_hash       text        NOT NULL,
    head_position   bigint      NOT NULL,
    state_schema    integer     NOT NULL,
    state           jsonb       NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now()
);
