-- The result of each command that came over Kafka (registry.commands), recorded before it is
-- published on registry.command-results: a redelivered command is answered from here, never
-- decided again, and not at all once its result is published. `request_hash` (sha256 of the
-- canonical command message) tells a redelivery from another command that reuses the id.
CREATE TABLE command_results (
    command_id    uuid        PRIMARY KEY,
    request_hash  text        NOT NULL,
    result        jsonb       NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
