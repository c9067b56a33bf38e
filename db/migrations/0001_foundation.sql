-- Foundation: administrators (the first one is created by `npm start` / `agentina create-admin`).
-- Objects are created as agentina_owner; the application role gets only what it needs.

CREATE TABLE admins (
  id              text PRIMARY KEY CHECK (id ~ '^adm_[A-Za-z0-9_-]{16,64}$'),
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

GRANT SELECT, INSERT, UPDATE ON admins TO agentina_app;
