-- Identity: customer-portal users, sessions (two tables, never shared) and service accounts.
-- Secrets are stored only as sha256 hex: a dump of these tables holds no usable credential.

CREATE TABLE customer_users (
  id              text PRIMARY KEY CHECK (id ~ '^usr_[A-Za-z0-9_-]{16,64}$'),
  customer_id     text NOT NULL REFERENCES customers (id),
  email           text NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
  display_name    text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
  password_hash   text NOT NULL CHECK (password_hash LIKE 'scrypt$%'),
  active          boolean NOT NULL DEFAULT true,
  failed_logins   integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
  locked_until    timestamptz,
  must_change_password boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  deactivated_at  timestamptz
);
CREATE INDEX customer_users_customer ON customer_users (customer_id, created_at);
GRANT SELECT, INSERT, UPDATE ON customer_users TO agentina_app;

-- Same shape for both session tables; the token itself is never stored.
CREATE TABLE admin_sessions (
  id            text PRIMARY KEY CHECK (id ~ '^ses_[A-Za-z0-9_-]{16,64}$'),
  token_hash    text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  admin_id      text NOT NULL REFERENCES admins (id),
  created_at    timestamptz NOT NULL,
  last_seen_at  timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  ip            text CHECK (length(ip) <= 64),
  user_agent    text CHECK (length(user_agent) <= 300)
);
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON admin_sessions TO agentina_app;

CREATE TABLE customer_sessions (
  id            text PRIMARY KEY CHECK (id ~ '^ses_[A-Za-z0-9_-]{16,64}$'),
  token_hash    text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  user_id       text NOT NULL REFERENCES customer_users (id),
  customer_id   text NOT NULL REFERENCES customers (id),
  created_at    timestamptz NOT NULL,
  last_seen_at  timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  ip            text CHECK (length(ip) <= 64),
  user_agent    text CHECK (length(user_agent) <= 300)
);
CREATE INDEX customer_sessions_user ON customer_sessions (user_id);
CREATE INDEX customer_sessions_expires ON customer_sessions (expires_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON customer_sessions TO agentina_app;

CREATE TABLE service_accounts (
  id            text PRIMARY KEY CHECK (id ~ '^svcacct_[A-Za-z0-9_-]{16,64}$'),
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  token_hash    text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  -- The last characters of the token, so an operator can tell tokens apart without the secret.
  token_hint    text NOT NULL CHECK (length(token_hint) <= 8),
  created_by    text NOT NULL CHECK (length(created_by) <= 200),
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz
);
GRANT SELECT, INSERT, UPDATE ON service_accounts TO agentina_app;
