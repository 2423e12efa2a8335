-- Reads the operator console makes often: the change feed's newest update per table (every 250 ms while a console is
-- open), an agent's recent tasks and a release's deployments. Columns written once or rarely, so these indexes cost
-- nothing on the heartbeat and task-progress paths.
CREATE INDEX deployments_updated_idx ON deployments (updated_at);
CREATE INDEX promotions_updated_idx ON promotions (updated_at);
CREATE INDEX deployments_release_idx ON deployments (release_id, created_at DESC);
CREATE INDEX tasks_agent_recent_idx ON tasks (agent_id, queued_at DESC);
