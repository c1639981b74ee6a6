-- The audit trail: one row per event of every stream (models, runs, access, refusals...), with a
-- readable summary. Keyed by the event's global position, which is also the page order.
CREATE TABLE audit_trail (
    position        bigint      PRIMARY KEY,
    recorded_at     timestamptz NOT NULL,
    actor           text        NOT NULL,
    action          text        NOT NULL,  -- the event type, e.g. StageChanged, AccessRefused
    model_id        text,                  -- the model's stream id (stable across renames)
    model           text,                  -- the model's name when the event was recorded
    version         integer,
    summary         text        NOT NULL,
    reason          text,                  -- why a refused attempt was refused
    correlation_id  uuid,
    causation_id    uuid,
    event_id        uuid        NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL
);
CREATE UNIQUE INDEX audit_trail_stream ON audit_trail (stream_id, stream_version);
CREATE INDEX audit_trail_time ON audit_trail (recorded_at, position);
CREATE INDEX audit_trail_actor ON audit_trail (actor, position);
CREATE INDEX audit_trail_action ON audit_trail (action, position);
CREATE INDEX audit_trail_model ON audit_trail (model_id, version, position);
CREATE INDEX audit_trail_model_name ON audit_trail (model, position) WHERE model_id IS NULL;

-- Each stream's last version applied to the audit trail, and a model stream's name as of it.
CREATE TABLE audit_streams (
    stream_id       text    PRIMARY KEY,
    stream_version  integer NOT NULL,
    model           text
);

-- Point-in-time history: each version's stages and each alias's holders, with validity intervals
-- [valid_from, valid_to) in recorded time; valid_to NULL means "still". Keys are the model's
-- stream id, so a rename keeps the history.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE history_models (
    stream_id       text    PRIMARY KEY,
    name            text    NOT NULL,  -- the current name
    deleted         boolean NOT NULL,
    stream_version  integer NOT NULL,  -- last event of the stream applied here
    -- The command of that event, and the time of the command's first event: all of a command's
    -- events take effect at that one instant.
    causation_id    uuid,
    command_at      timestamptz
);

CREATE TABLE stage_history (
    stream_id      text        NOT NULL,
    version        integer     NOT NULL,
    stage          text        NOT NULL,
    valid_from     timestamptz NOT NULL,
    valid_to       timestamptz CHECK (valid_to >= valid_from),
    from_position  bigint      NOT NULL,
    to_position    bigint,
    actor          text        NOT NULL,
    ended_by       text,  -- the event type that closed it: StageChanged, VersionDeleted, ModelDeleted
    PRIMARY KEY (stream_id, version, from_position)
);
-- "Who held stage S at T" is a range containment on one index.
CREATE INDEX stage_history_as_of ON stage_history
    USING gist (stage, tstzrange(valid_from, valid_to, '[)'));

CREATE TABLE alias_history (
    stream_id      text        NOT NULL,
    alias          text        NOT NULL,
    version        integer     NOT NULL,
    valid_from     timestamptz NOT NULL,
    valid_to       timestamptz CHECK (valid_to >= valid_from),
    from_position  bigint      NOT NULL,
    to_position    bigint,
    actor          text        NOT NULL,
    ended_by       text,  -- AliasSet (moved), AliasDeleted, ModelDeleted
    PRIMARY KEY (stream_id, alias, from_position)
);
CREATE INDEX alias_history_version ON alias_history (stream_id, version, from_position);
