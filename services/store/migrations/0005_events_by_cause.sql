-- A command's events carry its id as causation_id: a retried command finds what it did before.
CREATE INDEX events_causation ON events (causation_id);
