-- Deployments and the durable task queue.
--
-- A deployment puts one release on some targets of one environment; it becomes one signed task per target. Tasks
-- are claimed with FOR UPDATE SKIP LOCKED, leased to their agent, and finish exactly once. Task logs arrive in
-- chunks keyed by byte offset, so a chunk resent after a reconnect is stored once.

CREATE TABLE deployments (
  id            text PRIMARY KEY,
  environment   text NOT NULL REFERENCES environments(name),
  -- NULL for a rollback that put different releases back on different targets (each task names its release).
  release_id    text REFERENCES releases(id),
  action        text NOT NULL CHECK (action IN ('deploy', 'rollback')),
  state         text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  retry_of      text REFERENCES deployments(id),
  requested_by  text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz
);
CREATE INDEX deployments_created_idx ON deployments (created_at DESC, id DESC);
CREATE INDEX deployments_env_idx ON deployments (environment, created_at DESC);

CREATE TABLE tasks (
  id                text PRIMARY KEY,
  deployment_id     text NOT NULL REFERENCES deployments(id),
  agent_id          text NOT NULL REFERENCES agents(id),
  target_id         text NOT NULL REFERENCES targets(id),
  release_id        text NOT NULL REFERENCES releases(id),
  action            text NOT NULL,
  state             text NOT NULL CHECK (state IN ('queued', 'leased', 'running', 'succeeded', 'failed', 'errored', 'expired', 'cancelled')),
  -- The signed envelope exactly as delivered: canonical JSON payload, key id, signature over PAE(type, payload).
  payload           bytea NOT NULL,
  payload_type      text NOT NULL,
  key_id            text NOT NULL,
  signature         bytea NOT NULL,
  images            jsonb NOT NULL,                -- [{component, repository, digest, ref}]
  not_after         timestamptz NOT NULL,
  attempt           integer NOT NULL DEFAULT 0,
  lease_expires_at  timestamptz,
  queued_at         timestamptz NOT NULL DEFAULT now(),
  leased_at         timestamptz,
  started_at        timestamptz,
  finished_at       timestamptz,
  code              text,
  message           text,
  details           jsonb,
  log_bytes         bigint NOT NULL DEFAULT 0,      -- log stored so far (contiguous from 0)
  log_total         bigint,                          -- the agent's total, known once the result arrived
  progress_seq      integer NOT NULL DEFAULT 0,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_queued_idx ON tasks (agent_id, queued_at) WHERE state = 'queued';
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE state IN ('leased', 'running');
CREATE INDEX tasks_deployment_idx ON tasks (deployment_id);
CREATE INDEX tasks_target_active_idx ON tasks (target_id) WHERE state IN ('queued', 'leased', 'running');

CREATE TABLE task_events (
  task_id   text NOT NULL REFERENCES tasks(id),
  seq       integer NOT NULL,
  at        timestamptz NOT NULL,
  step      text NOT NULL,
  detail    text NOT NULL DEFAULT '',
  PRIMARY KEY (task_id, seq)
);

CREATE TABLE task_logs (
  task_id   text NOT NULL REFERENCES tasks(id),
  "offset"  bigint NOT NULL,
  data      bytea NOT NULL,
  PRIMARY KEY (task_id, "offset")
);

-- Every successful deployment of a target, newest last: what rollback puts back and what drift is measured against.
CREATE TABLE target_deployments (
  seq            bigserial PRIMARY KEY,
  target_id      text NOT NULL REFERENCES targets(id),
  deployment_id  text NOT NULL REFERENCES deployments(id),
  task_id        text NOT NULL REFERENCES tasks(id) UNIQUE,
  release_id     text NOT NULL REFERENCES releases(id),
  images         jsonb NOT NULL,
  finished_at    timestamptz NOT NULL
);
CREATE INDEX target_deployments_target_idx ON target_deployments (target_id, seq DESC);

-- What the agent last reported from the target itself (its version sticker and what it saw running).
CREATE TABLE target_stickers (
  target_id     text PRIMARY KEY REFERENCES targets(id),
  agent_id      text NOT NULL,
  sticker       jsonb NOT NULL,
  reported_at   timestamptz NOT NULL
);
