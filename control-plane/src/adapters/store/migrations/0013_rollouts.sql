-- Rollouts (docs/rollouts.md#the-engine): a deployment with a strategy other than all-at-once is a persisted plan of
-- steps that the rollout engine (every replica runs it) executes one at a time. Every transition is written here
-- before anything relies on it, so a control plane killed at any step, or a replica taking over, resumes from the row.
CREATE TABLE rollouts (
  id               text PRIMARY KEY,
  -- The deployment of the first wave (queued in the same transaction that created the rollout).
  deployment_id    text NOT NULL REFERENCES deployments (id),
  environment      text NOT NULL REFERENCES environments (name),
  release_id       text NOT NULL REFERENCES releases (id),
  strategy         jsonb NOT NULL,
  -- [{id, name}] in plan order: every target the rollout may touch; a deployment to one of them is refused while the
  -- rollout is active.
  targets          jsonb NOT NULL,
  -- {targetId: {releaseId, images}}: what each target ran when the rollout was created, i.e. what a rollback puts back.
  previous         jsonb NOT NULL,
  state            text NOT NULL CHECK (state IN ('running', 'halted', 'rolling_back', 'succeeded', 'failed', 'rolled_back')),
  current_step     integer NOT NULL DEFAULT 0 CHECK (current_step >= 0),
  paused           boolean NOT NULL DEFAULT false,
  abort_requested  boolean NOT NULL DEFAULT false,
  -- Why the rollout failed, rolled back or was aborted: {step, code, message, by}.
  reason           jsonb,
  requested_by     text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  -- Claim of the engine replica advancing the rollout; another replica takes over when the lease runs out.
  lease_owner      text,
  lease_expires_at timestamptz
);
CREATE INDEX rollouts_active ON rollouts (updated_at) WHERE state IN ('running', 'halted', 'rolling_back');
CREATE INDEX rollouts_by_environment ON rollouts (environment, created_at DESC);

CREATE TABLE rollout_steps (
  rollout_id   text NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  idx          integer NOT NULL CHECK (idx >= 0),
  -- forward: the planner's plan; rollback: steps appended by planRollback after a failure or an abort.
  phase        text NOT NULL CHECK (phase IN ('forward', 'rollback')),
  kind         text NOT NULL CHECK (kind IN ('wave', 'weights', 'wait', 'analysis', 'approval')),
  name         text NOT NULL,
  spec         jsonb NOT NULL,
  state        text NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
  attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- The step's timeout, and for a wait the moment it ends: both in the database, never in a process's memory.
  deadline_at  timestamptz,
  wake_at      timestamptz,
  started_at   timestamptz,
  finished_at  timestamptz,
  result       jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (rollout_id, idx)
);
