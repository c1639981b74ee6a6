-- A version's model type and framework (VersionRegistered.model_type, .framework), shown with
-- the version. Versions registered before have neither: '' is what their events fold to.
ALTER TABLE cs_versions ADD COLUMN model_type text NOT NULL DEFAULT '';
ALTER TABLE cs_versions ADD COLUMN framework text NOT NULL DEFAULT '';
