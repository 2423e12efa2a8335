-- The estate model: environments in order, targets in them, components, and immutable digest-pinned releases.
-- Plus idempotency records for POST requests retried by CI.

CREATE TABLE environments (
  name         text PRIMARY KEY,
  position     integer NOT NULL UNIQUE CHECK (position > 0),
  description  text NOT NULL DEFAULT '',
  settings     jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE components (
  name             text PRIMARY KEY,
  repository       text NOT NULL,             -- registry/repository, no tag or digest
  credentials_ref  text,                      -- name of registry credentials in the secret store, never the secret
  description      text NOT NULL DEFAULT '',
  created_by       text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE targets (
  id           text PRIMARY KEY,
  environment  text NOT NULL REFERENCES environments(name),
  name         text NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('docker', 'compose', 'ecs', 'nomad', 'ssh', 'winrm')),
  agent_id     text REFERENCES agents(id),
  config       jsonb NOT NULL DEFAULT '{}'::jsonb,
  description  text NOT NULL DEFAULT '',
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (environment, name)
);
CREATE INDEX targets_agent_idx ON targets (agent_id);

CREATE TABLE releases (
  id           text PRIMARY KEY,
  name         text NOT NULL,
  version      text NOT NULL,
  notes        text NOT NULL DEFAULT '',
  provenance   jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (name, version)
);
CREATE INDEX releases_created_idx ON releases (created_at DESC, id DESC);

-- One row per component of a release. Never updated: a changed release is a new release.
CREATE TABLE release_pins (
  release_id   text NOT NULL REFERENCES releases(id),
  component    text NOT NULL REFERENCES components(name),
  repository   text NOT NULL,
  digest       text NOT NULL CHECK (digest ~ '^sha256:[a-f0-9]{64}$'),
  source_tag   text,
  media_type   text NOT NULL,
  platforms    jsonb NOT NULL DEFAULT '[]'::jsonb,
  PRIMARY KEY (release_id, component)
);
CREATE INDEX release_pins_component_idx ON release_pins (component);

CREATE TABLE idempotency_keys (
  principal     text NOT NULL,
  key           text NOT NULL,
  method        text NOT NULL,
  path          text NOT NULL,
  request_hash  text NOT NULL,
  status        integer,                       -- null while the first request is still running
  response      jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (principal, key)
);
