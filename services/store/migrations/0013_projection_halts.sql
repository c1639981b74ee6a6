-- A projection that meets an event it cannot apply stops there (rather than retrying it for
-- ever) and says so here: when, why, and the event. A process starting the projection clears it.
ALTER TABLE projection_progress
    ADD COLUMN halted_at        timestamptz,
    ADD COLUMN halted_reason    text,
    ADD COLUMN halted_position  bigint;
