-- Router operations as tasks (docs/rollouts.md#the-engine): a deployment and its tasks may have the action `route`
-- (weights, measure, maintenance on a routed target), queued by the rollout engine or by the maintenance endpoint.
-- A maintenance task names no release, so a route task's release_id may be NULL; every other task keeps one.
ALTER TABLE deployments DROP CONSTRAINT deployments_action_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_action_check CHECK (action IN ('deploy', 'rollback', 'route'));
ALTER TABLE tasks ALTER COLUMN release_id DROP NOT NULL;
ALTER TABLE tasks ADD CONSTRAINT tasks_release_check CHECK (release_id IS NOT NULL OR action = 'route');
-- Whether the task's success changes the version the target runs (target_deployments): a task whose phases include
-- switch. A step that only starts the new version beside the old one, restores, or operates the router does not.
ALTER TABLE tasks ADD COLUMN switches boolean NOT NULL DEFAULT true;
