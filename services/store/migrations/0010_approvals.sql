-- Model-card fields of each version, in the current-state projection (shown in every version view).
ALTER TABLE cs_versions ADD COLUMN model_card jsonb NOT NULL DEFAULT '{}';

-- A transition request's model stream, found from the store itself (strongly consistent, unlike
-- a projection): GET /v1/transition-requests/{id} and approve / reject / cancel start here.
CREATE INDEX events_transition_requests ON events ((payload ->> 'request_id'))
    WHERE type = 'TransitionRequested';

-- The approvals projection: every transition request, for GET /v1/approvals.
CREATE TABLE ap_requests (
    request_id        text        PRIMARY KEY,  -- UUIDv7-like: sorts by creation time
    stream_id         text        NOT NULL,
    model_name        text        NOT NULL,
    version           integer     NOT NULL,
    stage             text,
    alias             text,
    archive_existing  boolean     NOT NULL,
    state             text        NOT NULL,     -- pending | applied | rejected | cancelled
    requested_by      text        NOT NULL,
    comment           text        NOT NULL,
    approvals         jsonb       NOT NULL,     -- those that count: [{by, at, comment}]
    closed_by         text        NOT NULL,
    closed_comment    text        NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX ap_requests_state ON ap_requests (state, request_id);
CREATE INDEX ap_requests_model ON ap_requests (model_name, request_id);

-- The last event of each model stream the approvals projection applied (skips redeliveries).
CREATE TABLE ap_streams (
    stream_id       text    PRIMARY KEY,
    stream_version  integer NOT NULL
);
