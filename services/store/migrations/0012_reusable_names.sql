-- A model name is held by one live model at a time, as in MLflow: deleting a model releases its
-- names, and a rename releases the former name, for a new model (or a rename) to take. Every
-- name a model ever had stays recorded here, so a released name still finds its last holder
-- until another model takes it; the events keep who held what, when.
ALTER TABLE model_names DROP CONSTRAINT model_names_pkey;
ALTER TABLE model_names ADD PRIMARY KEY (name, stream_id);
-- When the name was taken and let go (the recorded times of those events): an as-of question
-- by name means the model that held the name then.
ALTER TABLE model_names ADD COLUMN claimed_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE model_names ADD COLUMN released_at timestamptz;
UPDATE model_names n SET claimed_at = e.recorded_at FROM events e
    WHERE e.stream_id = n.stream_id
    AND ((e.type = 'ModelRegistered' AND e.payload ->> 'name' = n.name)
      OR (e.type = 'ModelRenamed' AND e.payload ->> 'new_name' = n.name));
UPDATE model_names n SET released_at = e.recorded_at FROM events e
    WHERE NOT n.is_current AND e.stream_id = n.stream_id
    AND e.type = 'ModelRenamed' AND e.payload ->> 'old_name' = n.name;
UPDATE model_names n SET is_current = false, released_at = e.recorded_at FROM events e
    WHERE e.stream_id = n.stream_id AND e.type = 'ModelDeleted' AND n.is_current;
-- is_current: the name of a live model. At most one per name; a claim that would make a second
-- fails the whole append (NameTaken).
CREATE UNIQUE INDEX model_names_held ON model_names (name) WHERE is_current;

-- The lineage read model's name → model map: a name now finds the last model that took it.
ALTER TABLE lineage_model_names ADD COLUMN position bigint NOT NULL DEFAULT 0;
