-- Lock files stored with the deployment (docs/drivers/compose.md#the-lock-file-and-why-it-is-derived-rather-than-carried).
--
-- A task to a target whose kind writes a lock file (compose) gets one row here, written in the transaction that
-- queues it: the exact text the agent will write on the host (derived from the signed pins and the target's config)
-- and its SHA-256 ("sha256:<hex>", as the agent reports it). The agent's result must report the same SHA-256, or the
-- task does not count as a success. A rollback's row equals the earlier deployment's byte for byte, since both derive
-- from the same pins and config.
CREATE TABLE task_locks (
  task_id     text PRIMARY KEY REFERENCES tasks(id),
  -- The file the agent writes on the host, e.g. ferry.lock.json.
  file_name   text NOT NULL CHECK (length(file_name) BETWEEN 1 AND 255),
  text        text NOT NULL CHECK (length(text) <= 1048576),
  sha256      text NOT NULL CHECK (sha256 ~ '^sha256:[0-9a-f]{64}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
