-- The deployments read model: each version's status in each environment over time, as validity
-- intervals [valid_from, valid_to) in recorded time (valid_to NULL: still so), from the
-- DeploymentReported events of the models' streams. Keyed by the model's stream id, so a rename
-- keeps the history.

-- Each model stream's current name and deletion, and the last stream version applied here.
CREATE TABLE deployment_models (
    stream_id       text    PRIMARY KEY,
    name            text    NOT NULL,
    deleted         boolean NOT NULL,
    stream_version  integer NOT NULL
);

CREATE TABLE deployment_history (
    stream_id      text        NOT NULL,
    environment    text        NOT NULL,
    version        integer     NOT NULL,
    status         text        NOT NULL,  -- deploying, serving, failed, retired
    status_since   timestamptz NOT NULL,  -- when the version entered this status there
    endpoint       text        NOT NULL,
    deployer       text        NOT NULL,
    message        text        NOT NULL,
    report_id      text        NOT NULL,
    replaced_by    integer,               -- retired because this version began serving there
    actor          text        NOT NULL,
    valid_from     timestamptz NOT NULL,
    valid_to       timestamptz CHECK (valid_to >= valid_from),
    from_position  bigint      NOT NULL,
    to_position    bigint,
    ended_by       text,                  -- DeploymentReported, ModelDeleted
    PRIMARY KEY (stream_id, environment, version, from_position)
);
-- "What runs in environment E at T", and drift's serving history of E.
CREATE INDEX deployment_history_environment
    ON deployment_history (environment, valid_from) INCLUDE (stream_id, version, status, valid_to);
-- Open intervals: the ones a new report closes.
CREATE INDEX deployment_history_open
    ON deployment_history (stream_id, environment, version) WHERE to_position IS NULL;
