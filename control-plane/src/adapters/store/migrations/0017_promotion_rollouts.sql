-- Promotions through the rollout engine, and releases that must not be rolled back automatically
-- (docs/promotions.md#strategies-and-rollouts, docs/rollouts.md#releases-that-cannot-be-rolled-back-automatically).

-- The strategy a promotion deploys with, resolved when it is requested (the request's override, else the
-- environment's settings.strategy, else all-at-once; strategy_source says which) and, once deploying, the rollout it
-- follows. Promotions requested before this migration have none: they deploy all at once. A restarted control plane
-- keeps following the rollout from rollout_id; an all-at-once promotion has none and follows its deployment.
ALTER TABLE promotions ADD COLUMN strategy jsonb;
ALTER TABLE promotions ADD COLUMN strategy_source text CHECK (strategy_source IN ('request', 'environment', 'default'));
ALTER TABLE promotions ADD COLUMN rollout_id text REFERENCES rollouts (id);
CREATE INDEX promotions_rollout_idx ON promotions (rollout_id) WHERE rollout_id IS NOT NULL;

-- A release whose rollback is not safe to run unattended (an irreversible migration, say): a failed rollout of it
-- waits for an operator's approval before rolling back. Set when the release is created, never changed after.
ALTER TABLE releases ADD COLUMN rollback_safe boolean NOT NULL DEFAULT true;
ALTER TABLE releases ADD COLUMN rollback_note text CHECK (rollback_note IS NULL OR length(rollback_note) <= 500);
