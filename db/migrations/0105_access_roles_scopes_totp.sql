-- Finer access: admin roles, scoped and expiring service tokens, and a second factor (TOTP).

-- Every admin before this migration held every power: they stay owners. New admins name a role.
ALTER TABLE admins ADD COLUMN role text NOT NULL DEFAULT 'owner'
  CHECK (role IN ('owner', 'operator', 'viewer'));
ALTER TABLE admins ALTER COLUMN role DROP DEFAULT;

-- Tokens made before this migration keep exactly what they could do (customers, licenses and
-- activation tokens, publishing releases, reading the audit). New tokens name their scopes.
ALTER TABLE service_accounts ADD COLUMN scopes text[] NOT NULL
  DEFAULT ARRAY['customers:read', 'customers:write', 'licenses:read', 'licenses:write', 'releases:write', 'audit:read']
  CHECK (cardinality(scopes) BETWEEN 1 AND 32 AND scopes <@ ARRAY[
    'licenses:read', 'licenses:write', 'customers:read', 'customers:write', 'agents:read', 'agents:write',
    'tasks:read', 'tasks:write', 'releases:read', 'releases:write', 'audit:read', 'webhooks:read', 'webhooks:write']);
ALTER TABLE service_accounts ALTER COLUMN scopes DROP DEFAULT;
ALTER TABLE service_accounts ADD COLUMN expires_at timestamptz;

-- One TOTP factor per account. The secret is sealed (AES-256-GCM under the totp-secrets key,
-- bound to the account), never stored or logged in clear. last_step is the RFC 6238 time step of
-- the last code accepted: a code of that step or earlier is refused, so a seen code cannot be replayed.
CREATE TABLE second_factors (
  account_kind   text NOT NULL CHECK (account_kind IN ('admin', 'customer')),
  account_id     text NOT NULL CHECK (length(account_id) <= 80),
  sealed_secret  text NOT NULL CHECK (length(sealed_secret) <= 400),
  confirmed_at   timestamptz,
  last_step      bigint NOT NULL DEFAULT 0,
  created_at     timestamptz NOT NULL,
  PRIMARY KEY (account_kind, account_id)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON second_factors TO agentina_app;

-- Ten single-use recovery codes per confirmed factor, stored as sha256 only.
CREATE TABLE recovery_codes (
  account_kind   text NOT NULL CHECK (account_kind IN ('admin', 'customer')),
  account_id     text NOT NULL CHECK (length(account_id) <= 80),
  code_hash      text NOT NULL CHECK (code_hash ~ '^[0-9a-f]{64}$'),
  used_at        timestamptz,
  PRIMARY KEY (account_kind, account_id, code_hash)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON recovery_codes TO agentina_app;

-- Which admin roles must sign in with a second factor (set by owners).
CREATE TABLE admin_role_policies (
  role           text PRIMARY KEY CHECK (role IN ('owner', 'operator', 'viewer')),
  totp_required  boolean NOT NULL,
  updated_at     timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON admin_role_policies TO agentina_app;
