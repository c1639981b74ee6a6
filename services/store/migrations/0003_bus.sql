-- The relay's progress: the store's commit-order checkpoint it has published through, and for
-- each partition of registry.events the next offset it expects the broker to assign (an ack below
-- it means the broker lost what it had: the relay then republishes everything).
CREATE TABLE relay_state (
    name               text        PRIMARY KEY,
    transaction_id     bigint      NOT NULL,
    position           bigint      NOT NULL,
    partition_offsets  jsonb       NOT NULL DEFAULT '{}',
    republished        integer     NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Where each Kafka-fed projection is: the highest global position it applied, and how many events.
CREATE TABLE projection_progress (
    projection      text        PRIMARY KEY,
    position        bigint      NOT NULL,
    events_applied  bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
