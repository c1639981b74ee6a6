-- "Every model's versions in a stage at T" (GET /v1/stages/{stage}?as_of=T), fast.
--
-- The GiST index on (stage, tstzrange) of 0007 found a stage's intervals at T slowly: with only
-- four stage values the btree_gist half of the key barely separates the tree (4.9 ms to find
-- 2,354 rows among 198,027 intervals), each row was then read from the heap (rows of one
-- instant lie all over the table), and the answer joined every model's current name (a hash of
-- all of history_models per query). Now each stage has an SP-GiST index on the interval as a
-- stored range (an expression index cannot answer an index-only scan), holding the model's
-- current name and the version: one index-only scan, 1.8 ms for 3,960 rows.

ALTER TABLE stage_history
    ADD COLUMN model text,  -- the model's current name (rewritten on rename, like history_models)
    ADD COLUMN valid tstzrange GENERATED ALWAYS AS (tstzrange(valid_from, valid_to, '[)')) STORED;
UPDATE stage_history h SET model = m.name FROM history_models m WHERE m.stream_id = h.stream_id;
ALTER TABLE stage_history ALTER COLUMN model SET NOT NULL;

DROP INDEX stage_history_as_of;
-- Queries name the stage as a literal (projections/stage_history.py): a partial index is only
-- chosen when the planner can see that its WHERE holds.
CREATE INDEX stage_history_none_at ON stage_history
    USING spgist (valid) INCLUDE (model, version) WHERE stage = 'None';
CREATE INDEX stage_history_staging_at ON stage_history
    USING spgist (valid) INCLUDE (model, version) WHERE stage = 'Staging';
CREATE INDEX stage_history_production_at ON stage_history
    USING spgist (valid) INCLUDE (model, version) WHERE stage = 'Production';
CREATE INDEX stage_history_archived_at ON stage_history
    USING spgist (valid) INCLUDE (model, version) WHERE stage = 'Archived';
