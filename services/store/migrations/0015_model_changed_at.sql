-- When a model itself last changed (ModelState.changed_at): what MLflow's registered model
-- last_updated_timestamp shows, and sorts by. Rows projected before take their last update; a
-- replay (registrar replay --projection current_state) computes the exact value.
ALTER TABLE cs_models ADD COLUMN changed_at timestamptz;
UPDATE cs_models SET changed_at = updated_at;
ALTER TABLE cs_models ALTER COLUMN changed_at SET NOT NULL;
