-- Promotions, approvals, scan reports and exceptions, signed evidence, webhooks.
--
-- A promotion moves one release into one environment through that environment's gates and ends in a deployment.
-- Every transition is a row in promotion_transitions (timestamped, attributed). Evidence envelopes are chained:
-- each one names the hash of the one before it.

CREATE TABLE promotions (
  id               text PRIMARY KEY,
  release_id       text NOT NULL REFERENCES releases(id),
  environment      text NOT NULL REFERENCES environments(name),
  state            text NOT NULL CHECK (state IN ('requested', 'awaiting_gates', 'approved', 'deploying', 'succeeded', 'failed',
                                                  'rolled_back', 'rejected', 'cancelled', 'expired')),
  digest_set_hash  text NOT NULL,
  requested_by     text NOT NULL,
  requested_at     timestamptz NOT NULL,
  break_glass      jsonb,                       -- {by, reason, at}
  deployment_id    text REFERENCES deployments(id),
  gate_results     jsonb NOT NULL DEFAULT '[]'::jsonb,
  reason           text,
  expires_at       timestamptz NOT NULL,
  decided_at       timestamptz,
  finished_at      timestamptz,
  updated_at       timestamptz NOT NULL
);
CREATE INDEX promotions_active_idx ON promotions (environment) WHERE state IN ('requested', 'awaiting_gates', 'approved', 'deploying');
CREATE INDEX promotions_created_idx ON promotions (requested_at DESC, id DESC);
CREATE INDEX promotions_release_idx ON promotions (release_id);

CREATE TABLE promotion_transitions (
  promotion_id  text NOT NULL REFERENCES promotions(id),
  seq           integer NOT NULL,
  from_state    text,
  to_state      text NOT NULL,
  at            timestamptz NOT NULL,
  actor         text NOT NULL,
  reason        text NOT NULL DEFAULT '',
  PRIMARY KEY (promotion_id, seq)
);

CREATE TABLE approvals (
  promotion_id     text NOT NULL REFERENCES promotions(id),
  subject          text NOT NULL,
  decision         text NOT NULL CHECK (decision IN ('approve', 'reject')),
  roles            text[] NOT NULL,
  groups           text[] NOT NULL,
  digest_set_hash  text NOT NULL,
  comment          text NOT NULL DEFAULT '',
  at               timestamptz NOT NULL,
  PRIMARY KEY (promotion_id, subject)
);

-- Groups of subjects, for approval gates ("N approvals from group prod-approvers").
CREATE TABLE subject_groups (
  group_name  text NOT NULL,
  subject     text NOT NULL,
  added_by    text NOT NULL,
  added_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_name, subject)
);

CREATE TABLE scan_reports (
  id           text PRIMARY KEY,
  digest       text NOT NULL CHECK (digest ~ '^sha256:[a-f0-9]{64}$'),
  scanner      text NOT NULL,
  format       text NOT NULL CHECK (format IN ('trivy', 'sarif')),
  counts       jsonb NOT NULL,
  findings     jsonb NOT NULL,
  uploaded_by  text NOT NULL,
  uploaded_at  timestamptz NOT NULL
);
CREATE INDEX scan_reports_digest_idx ON scan_reports (digest, uploaded_at DESC);

CREATE TABLE security_exceptions (
  id            text PRIMARY KEY,
  digest        text NOT NULL CHECK (digest ~ '^sha256:[a-f0-9]{64}$'),
  max_severity  text NOT NULL CHECK (max_severity IN ('critical', 'high', 'medium', 'low')),
  reason        text NOT NULL,
  approver      text NOT NULL,
  expires_at    timestamptz NOT NULL,
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL
);
CREATE INDEX security_exceptions_digest_idx ON security_exceptions (digest);

CREATE TABLE evidence (
  seq            bigserial PRIMARY KEY,
  id             text NOT NULL UNIQUE,
  kind           text NOT NULL,               -- promotion.decision | promotion.deployment | ...
  subject_id     text NOT NULL,               -- the promotion (or deployment) it is about
  hash           text NOT NULL UNIQUE,        -- sha256 of the payload bytes
  previous_hash  text,
  key_id         text NOT NULL,
  envelope       jsonb NOT NULL,
  created_at     timestamptz NOT NULL
);
CREATE INDEX evidence_subject_idx ON evidence (subject_id);

CREATE TABLE webhook_subscriptions (
  id           text PRIMARY KEY,
  url          text NOT NULL,
  events       text[] NOT NULL,
  secret       text NOT NULL,                 -- the HMAC key (needed to sign each delivery); never returned by the API
  enabled      boolean NOT NULL DEFAULT true,
  disabled_reason text,
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
  id               text PRIMARY KEY,
  subscription_id  text NOT NULL REFERENCES webhook_subscriptions(id),
  event_type       text NOT NULL,
  event_id         text NOT NULL,
  status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dropped')),
  attempts         integer NOT NULL DEFAULT 0,
  last_status      integer,
  last_error       text,
  next_attempt_at  timestamptz,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_sub_idx ON webhook_deliveries (subscription_id, created_at DESC);
