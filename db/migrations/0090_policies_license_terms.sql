-- Policies: named license templates (issue 15). A policy's terms are kept as immutable versions;
-- an update writes version n + 1 and moves `policies.version`. A license records the policy and
-- version it was created from (or last had applied), so changing a policy never silently changes
-- an existing license.

CREATE TABLE policies (
  id           text PRIMARY KEY CHECK (id ~ '^pol_[A-Za-z0-9_-]{16,64}$'),
  name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  version      integer NOT NULL DEFAULT 1 CHECK (version > 0),
  archived_at  timestamptz,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL
);
-- Names are unique among policies still in use; an archived name may be reused.
CREATE UNIQUE INDEX policies_name_live ON policies (lower(name)) WHERE archived_at IS NULL;
CREATE INDEX policies_created ON policies (created_at DESC, id DESC);
REVOKE ALL ON policies FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON policies TO agentina_app;

CREATE TABLE policy_versions (
  policy_id           text NOT NULL REFERENCES policies (id),
  version             integer NOT NULL CHECK (version > 0),
  name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  plan                text NOT NULL CHECK (length(plan) BETWEEN 1 AND 100),
  -- A trial of `duration_days`, or a paid term of `duration_days`.
  kind                text NOT NULL CHECK (kind IN ('trial', 'term')),
  duration_days       integer NOT NULL CHECK (duration_days BETWEEN 1 AND 3650),
  grace_days          integer NOT NULL CHECK (grace_days BETWEEN 0 AND 365),
  trial_end_state     text NOT NULL CHECK (trial_end_state IN ('expired', 'grace')),
  max_agents          integer NOT NULL CHECK (max_agents BETWEEN 1 AND 100000),
  features            jsonb NOT NULL CHECK (jsonb_typeof(features) = 'object'),
  -- Days an agent may stay offline before its seat is reclaimed; 0 = never.
  seat_reclaim_days   integer NOT NULL CHECK (seat_reclaim_days BETWEEN 0 AND 365),
  update_policy       text NOT NULL CHECK (update_policy IN ('automatic', 'manual')),
  created_at          timestamptz NOT NULL,
  created_by_kind     text NOT NULL CHECK (length(created_by_kind) <= 20),
  created_by_id       text NOT NULL CHECK (length(created_by_id) <= 200),
  PRIMARY KEY (policy_id, version),
  CHECK (kind = 'term' OR duration_days <= 365)
);
REVOKE ALL ON policy_versions FROM PUBLIC;
-- Versions are written once: the application may add them, never change them.
GRANT SELECT, INSERT ON policy_versions TO agentina_app;

ALTER TABLE licenses ADD COLUMN policy_id text REFERENCES policies (id);
ALTER TABLE licenses ADD COLUMN policy_version integer;
ALTER TABLE licenses ADD CONSTRAINT licenses_policy_version
  FOREIGN KEY (policy_id, policy_version) REFERENCES policy_versions (policy_id, version);
ALTER TABLE licenses ADD CONSTRAINT licenses_policy_pair CHECK ((policy_id IS NULL) = (policy_version IS NULL));
CREATE INDEX licenses_policy ON licenses (policy_id, created_at DESC, id DESC) WHERE policy_id IS NOT NULL;
