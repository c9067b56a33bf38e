-- Credential rotation and clone detection (issue 14). An agent that asks for it gets the next
-- generation of its credential with every heartbeat. Only hashes are kept: the current
-- generation's (credential_hash), the one it superseded (still accepted, for requests already
-- under way, for a short while), and the next generations issued but not used yet. A heartbeat
-- repeated with the current generation (its answer was lost) is issued another next generation;
-- the first one used wins and its siblings are dropped, so a second machine that uses the one it
-- was handed is told apart from the first (its credential names the agent and the generation).
ALTER TABLE agents
  ADD COLUMN credential_generation    bigint NOT NULL DEFAULT 0 CHECK (credential_generation BETWEEN 0 AND 4294967295),
  ADD COLUMN previous_credential_hash text UNIQUE CHECK (previous_credential_hash ~ '^[0-9a-f]{64}$'),
  -- When the current generation was first used (the previous one superseded), and the address that
  -- last used the current generation, named in an agent.clone_detected audit row.
  ADD COLUMN credential_superseded_at timestamptz,
  ADD COLUMN credential_used_ip       text CHECK (length(credential_used_ip) <= 64);

CREATE TABLE agent_pending_credentials (
  credential_hash text PRIMARY KEY CHECK (credential_hash ~ '^[0-9a-f]{64}$'),
  agent_id        text NOT NULL REFERENCES agents (id),
  issued_at       timestamptz NOT NULL
);
CREATE INDEX agent_pending_credentials_agent ON agent_pending_credentials (agent_id, issued_at);
GRANT SELECT, INSERT, DELETE ON agent_pending_credentials TO agentina_app;
