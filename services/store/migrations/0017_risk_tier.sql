-- A model's assessed risk tier (RiskAssessed), shown with the model and filtered on by the
-- catalogue. Models assessed before this column have none until a replay fills it.
ALTER TABLE cs_models ADD COLUMN risk_tier text;
