-- Core business tables shared by identity, licensing and the agent API.
-- Later migrations by area: 0010-0019 identity, 0020-0029 license lifecycle, 0030-0039 activation
-- and status, 0040-0049 agents and tasks, 0050-0059 audit checkpoints.

CREATE TABLE customers (
  id             text PRIMARY KEY CHECK (id ~ '^cus_[A-Za-z0-9_-]{16,64}$'),
  name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  active         boolean NOT NULL DEFAULT true,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  deactivated_at timestamptz
);
GRANT SELECT, INSERT, UPDATE ON customers TO agentina_app;

-- One row per license; written only by the licenseLifecycle workflow's transition activity
-- (and its creation). `version` rises by one with every transition.
CREATE TABLE licenses (
  id               text PRIMARY KEY CHECK (id ~ '^lic_[A-Za-z0-9_-]{16,64}$'),
  customer_id      text NOT NULL REFERENCES customers (id),
  plan             text NOT NULL CHECK (length(plan) BETWEEN 1 AND 100),
  features         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(features) = 'object'),
  max_agents       integer NOT NULL CHECK (max_agents BETWEEN 1 AND 100000),
  state            text NOT NULL CHECK (state IN ('trial', 'active', 'grace', 'expired', 'suspended', 'revoked')),
  version          bigint NOT NULL DEFAULT 1 CHECK (version > 0),
  not_before       timestamptz NOT NULL,
  expires_at       timestamptz NOT NULL,
  trial_ends_at    timestamptz,
  grace_days       integer NOT NULL DEFAULT 7 CHECK (grace_days BETWEEN 0 AND 365),
  state_reason     text CHECK (length(state_reason) <= 500),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX licenses_customer ON licenses (customer_id);
CREATE INDEX licenses_state ON licenses (state);
GRANT SELECT, INSERT, UPDATE ON licenses TO agentina_app;

-- Agents bound to a license at activation. An agent's status version is
-- licenses.version + agents.status_version: both only rise, so the sum rises on any change.
CREATE TABLE agents (
  id                  text PRIMARY KEY CHECK (id ~ '^agt_[A-Za-z0-9_-]{16,64}$'),
  license_id          text NOT NULL REFERENCES licenses (id),
  customer_id         text NOT NULL REFERENCES customers (id),
  status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'quarantined', 'offline', 'deregistered')),
  status_version      bigint NOT NULL DEFAULT 0 CHECK (status_version >= 0),
  status_reason       text CHECK (length(status_reason) <= 500),
  credential_hash     text NOT NULL UNIQUE CHECK (credential_hash ~ '^[0-9a-f]{64}$'),
  public_key          text NOT NULL CHECK (length(public_key) <= 1000),
  -- Salted component hashes recorded at activation (protocol/fingerprint.ts); raw serials never arrive.
  fingerprint_salt    text NOT NULL CHECK (length(fingerprint_salt) BETWEEN 16 AND 64),
  fingerprint         jsonb NOT NULL CHECK (jsonb_typeof(fingerprint) = 'object'),
  fingerprint_commitment text NOT NULL CHECK (fingerprint_commitment ~ '^[0-9a-f]{64}$'),
  fingerprint_score   integer CHECK (fingerprint_score BETWEEN 0 AND 100),
  changed_components  text[] NOT NULL DEFAULT '{}',
  agent_version       text CHECK (length(agent_version) <= 50),
  runtime_hash        text CHECK (runtime_hash ~ '^[0-9a-f]{64}$'),
  in_flight_tasks     integer NOT NULL DEFAULT 0,
  hostname_hint       text CHECK (length(hostname_hint) <= 255),
  last_seen_at        timestamptz,
  last_heartbeat_at   timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  deregistered_at     timestamptz
);
CREATE INDEX agents_license ON agents (license_id);
CREATE INDEX agents_customer ON agents (customer_id);
GRANT SELECT, INSERT, UPDATE ON agents TO agentina_app;

-- The status feed: one row per license transition or agent status change, in commit order of
-- their ids. Long-polls wake on NOTIFY agentina_status; /v1/agent/revocations pages by id.
CREATE TABLE status_feed (
  id          bigserial PRIMARY KEY,
  license_id  text NOT NULL REFERENCES licenses (id),
  agent_id    text REFERENCES agents (id),
  state       text NOT NULL CHECK (length(state) BETWEEN 1 AND 30),
  version     bigint NOT NULL,
  reason      text CHECK (length(reason) <= 500),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_feed_license ON status_feed (license_id, id);
GRANT SELECT, INSERT ON status_feed TO agentina_app;
GRANT USAGE, SELECT ON SEQUENCE status_feed_id_seq TO agentina_app;
