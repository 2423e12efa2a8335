-- Target checks (docs/api.md#target-checks): when a target is created or its config or agent changes, the
-- control plane queues a signed `inspect` task to the target's agent, and keeps its outcome here. A check task is a
-- task like any other (the same queue, leases, signing, logs), but belongs to no deployment and no release.
-- Only a check task has no deployment; a check task, like a router task (migration 0014), names no release.
ALTER TABLE tasks ALTER COLUMN deployment_id DROP NOT NULL;
ALTER TABLE tasks DROP CONSTRAINT tasks_release_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_release_check CHECK (release_id IS NOT NULL OR action IN ('route', 'inspect'));
ALTER TABLE tasks ADD CONSTRAINT tasks_check_has_no_deployment CHECK (action = 'inspect' OR deployment_id IS NOT NULL);

CREATE TABLE target_checks (
  target_id     text PRIMARY KEY REFERENCES targets (id) ON DELETE CASCADE,
  -- pending: asked for, no answer yet (no task while the agent is away or does not serve the kind); ok; failed.
  state         text NOT NULL CHECK (state IN ('pending', 'ok', 'failed')),
  code          text,
  message       text NOT NULL DEFAULT '',
  details       jsonb,
  -- The inspect task of this check, once one was queued (kept after the task ends).
  task_id       text REFERENCES tasks (id) ON DELETE SET NULL,
  -- The target's updated_at when the check was asked for: which config the verdict is about. (Only the answer to the
  -- newest check's task is kept: a late answer to an older one does not match task_id.)
  config_at     timestamptz NOT NULL,
  requested_at  timestamptz NOT NULL,
  checked_at    timestamptz
);
CREATE INDEX target_checks_task_idx ON target_checks (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX target_checks_pending_idx ON target_checks (target_id) WHERE state = 'pending' AND task_id IS NULL;
