-- The current-state projection: models and versions as they are now, for lists and searches.
CREATE TABLE cs_models (
    stream_id       text        PRIMARY KEY,
    name            text        NOT NULL,
    description     text        NOT NULL,
    tags            jsonb       NOT NULL,
    aliases         jsonb       NOT NULL,
    latest_version  integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted         boolean     NOT NULL,
    stream_version  integer     NOT NULL  -- last event of the stream applied here
);
CREATE INDEX cs_models_name ON cs_models (name text_pattern_ops);
CREATE INDEX cs_models_tags ON cs_models USING gin (tags jsonb_path_ops);

CREATE TABLE cs_versions (
    stream_id    text        NOT NULL,
    version      integer     NOT NULL,
    model_name   text        NOT NULL,
    source       text        NOT NULL,
    run_id       text        NOT NULL,
    digest       text        NOT NULL,
    size         bigint,
    stage        text        NOT NULL,
    aliases      text[]      NOT NULL,
    tags         jsonb       NOT NULL,
    metrics      jsonb       NOT NULL,
    params       jsonb       NOT NULL,
    datasets     jsonb       NOT NULL,
    parents      jsonb       NOT NULL,
    description  text        NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    deleted      boolean     NOT NULL,  -- the version, or its whole model, was deleted
    PRIMARY KEY (stream_id, version)
);
CREATE INDEX cs_versions_model ON cs_versions (model_name, version);
CREATE INDEX cs_versions_run ON cs_versions (run_id) WHERE run_id <> '';
CREATE INDEX cs_versions_stage ON cs_versions (stage, model_name, version);
CREATE INDEX cs_versions_aliases ON cs_versions USING gin (aliases);
CREATE INDEX cs_versions_tags ON cs_versions USING gin (tags jsonb_path_ops);

-- Where each projection is in the store's commit order.
CREATE TABLE projection_checkpoints (
    projection      text        PRIMARY KEY,
    transaction_id  bigint      NOT NULL,
    position        bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
