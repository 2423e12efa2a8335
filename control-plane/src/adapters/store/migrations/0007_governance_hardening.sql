-- Governance and input hardening (docs/security.md).

-- A deployment into an environment with gates that did not come from a promotion carries the override that let it
-- through: who, with which roles, why, and the evidence packet that records it. Null for every other deployment.
ALTER TABLE deployments ADD COLUMN override jsonb;

-- Signed checkpoints of the audit chain's head (domain/audit/audit-anchor.ts): a truncated or rewritten tail no
-- longer verifies against the newest checkpoint.
CREATE TABLE audit_checkpoints (
  seq         bigserial PRIMARY KEY,
  head_seq    bigint NOT NULL,
  head_hash   text NOT NULL,
  key_id      text NOT NULL,
  envelope    jsonb NOT NULL,
  created_at  timestamptz NOT NULL
);

-- The audit log, its checkpoints and the evidence packets are append-only in the database itself, not only in the
-- code: UPDATE, DELETE and TRUNCATE are refused whoever sends them. Only the table's owner (or a superuser) can get
-- past this, by disabling the trigger — which the signed checkpoints then expose.
CREATE FUNCTION ferry_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ferry: % is append-only; % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = '55000';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION ferry_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION ferry_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION ferry_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION ferry_refuse_change();
CREATE TRIGGER evidence_append_only BEFORE UPDATE OR DELETE ON evidence FOR EACH ROW EXECUTE FUNCTION ferry_refuse_change();
CREATE TRIGGER evidence_no_truncate BEFORE TRUNCATE ON evidence FOR EACH STATEMENT EXECUTE FUNCTION ferry_refuse_change();

-- Idempotency: a lease instead of a fixed five minutes, so a key whose request died with its process is free again
-- within seconds; and responses that carried a secret (API token secrets, join strings) are never kept — the ones
-- stored before this migration are dropped.
ALTER TABLE idempotency_keys ADD COLUMN lease_until timestamptz;
DELETE FROM idempotency_keys WHERE path IN ('/api/v1/api-tokens', '/api/v1/join-tokens');

-- Webhooks: the receiver's response body is kept apart from the error line, for admins only; and subscription URLs
-- lose any user:password@ (Node would have sent it as Basic auth to whatever the host resolved to).
ALTER TABLE webhook_deliveries ADD COLUMN last_response text;
UPDATE webhook_subscriptions SET url = regexp_replace(url, '^(https?://)[^/?#@]*@', '\1') WHERE url ~ '^https?://[^/?#@]*@';
