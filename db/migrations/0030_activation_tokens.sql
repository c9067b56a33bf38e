-- Single-use activation tokens (act_…): only sha256(token) is stored. A token is bound to one
-- license and is spent by one conditional UPDATE at activation, so two agents can never both
-- redeem it.
CREATE TABLE activation_tokens (
  id               text PRIMARY KEY CHECK (id ~ '^tok_[A-Za-z0-9_-]{16,64}$'),
  license_id       text NOT NULL REFERENCES licenses (id),
  customer_id      text NOT NULL REFERENCES customers (id),
  token_hash       text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  label            text CHECK (length(label) <= 200),
  created_by_kind  text NOT NULL CHECK (length(created_by_kind) <= 20),
  created_by_id    text NOT NULL CHECK (length(created_by_id) <= 100),
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL,
  spent_at         timestamptz,
  spent_ip         text CHECK (length(spent_ip) <= 100),
  agent_id         text REFERENCES agents (id),
  revoked_at       timestamptz,
  revoked_by_kind  text CHECK (length(revoked_by_kind) <= 20),
  revoked_by_id    text CHECK (length(revoked_by_id) <= 100),
  CHECK (expires_at > created_at)
);
CREATE INDEX activation_tokens_license ON activation_tokens (license_id, created_at DESC);
CREATE INDEX activation_tokens_customer ON activation_tokens (customer_id, created_at DESC);
GRANT SELECT, INSERT, UPDATE ON activation_tokens TO agentina_app;

-- Agents are looked up by credential hash on every agent request (UNIQUE already indexes it) and
-- listed per license for the max-agents check.
CREATE INDEX agents_license_status ON agents (license_id, status);
