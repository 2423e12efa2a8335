-- The SHA-256 of each certificate's public key (SPKI DER, hex), so a renewal can refuse a key the agent has had
-- certified before (domain/fleet/renewal-policy.ts). Certificates issued before this migration have none; their keys
-- are unknown and cannot be compared.
ALTER TABLE agent_certificates ADD COLUMN public_key_sha256 text;
CREATE INDEX agent_certificates_agent_key_idx ON agent_certificates (agent_id, public_key_sha256);
-- Renewal rate limit: certificates issued to one agent in a recent window.
CREATE INDEX agent_certificates_agent_issued_idx ON agent_certificates (agent_id, issued_at);
