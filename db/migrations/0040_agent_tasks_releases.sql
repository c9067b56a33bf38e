-- Agents, tasks and releases on the control-plane side (issue 7, part B).

-- The offline sweep looks for active agents whose last heartbeat is old.
CREATE INDEX agents_status_heartbeat ON agents (status, last_heartbeat_at);

-- Work queued for one agent. An agent leases one task at a time (FOR UPDATE SKIP LOCKED); a
-- lease that expires (the agent crashed) is offered again until max_attempts is reached.
CREATE TABLE tasks (
  id               text PRIMARY KEY CHECK (id ~ '^tsk_[A-Za-z0-9_-]{16,64}$'),
  agent_id         text NOT NULL REFERENCES agents (id),
  license_id       text NOT NULL REFERENCES licenses (id),
  customer_id      text NOT NULL REFERENCES customers (id),
  kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,63}$'),
  payload          jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object' AND octet_length(payload::text) <= 65536),
  state            text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'leased', 'succeeded', 'failed', 'interrupted', 'rejected', 'cancelled')),
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
  leased_at        timestamptz,
  lease_expires_at timestamptz,
  result           jsonb CHECK (result IS NULL OR octet_length(result::text) <= 65536),
  error            text CHECK (length(error) <= 2000),
  created_by_kind  text NOT NULL CHECK (created_by_kind IN ('admin', 'customer', 'system')),
  created_by_id    text NOT NULL CHECK (length(created_by_id) BETWEEN 1 AND 200),
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  completed_at     timestamptz,
  CHECK ((state = 'leased') = (lease_expires_at IS NOT NULL))
);
-- The lease query: the oldest offerable task of one agent.
CREATE INDEX tasks_agent_open ON tasks (agent_id, created_at, id) WHERE state IN ('queued', 'leased');
CREATE INDEX tasks_customer ON tasks (customer_id, created_at DESC);
CREATE INDEX tasks_created ON tasks (created_at DESC, id);
GRANT SELECT, INSERT, UPDATE ON tasks TO agentina_app;

-- Signed release manifests, verified against the `release` key set when registered. Rows are
-- never changed: a manifest is the expected runtime hash of every agent reporting that version.
CREATE TABLE releases (
  id            text PRIMARY KEY CHECK (id ~ '^rel_[A-Za-z0-9_-]{16,64}$'),
  version       text NOT NULL UNIQUE CHECK (length(version) <= 60),
  -- Semantic-version precedence: numbers, then a release before its pre-releases.
  major         integer NOT NULL CHECK (major >= 0),
  minor         integer NOT NULL CHECK (minor >= 0),
  patch         integer NOT NULL CHECK (patch >= 0),
  prerelease    text CHECK (length(prerelease) <= 60),
  runtime_hash  text NOT NULL CHECK (runtime_hash ~ '^[0-9a-f]{64}$'),
  manifest      jsonb NOT NULL CHECK (jsonb_typeof(manifest) = 'object'),
  signature     jsonb NOT NULL CHECK (jsonb_typeof(signature) = 'object'),
  key_id        text NOT NULL CHECK (length(key_id) <= 64),
  file_count    integer NOT NULL CHECK (file_count >= 0),
  published_by_kind text NOT NULL CHECK (published_by_kind IN ('admin', 'system')),
  published_by_id   text NOT NULL CHECK (length(published_by_id) BETWEEN 1 AND 200),
  created_at    timestamptz NOT NULL
);
CREATE INDEX releases_precedence ON releases (major DESC, minor DESC, patch DESC, (prerelease IS NULL) DESC, prerelease DESC);
GRANT SELECT, INSERT ON releases TO agentina_app;
