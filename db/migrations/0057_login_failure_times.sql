-- The account lock counts failed logins within a window (5 in 15 minutes), not for ever: each
-- account keeps the start times of its recent failures. With the per-address failure budget
-- (services/identity/login-service.ts) no one address can then lock an account on its own.
ALTER TABLE admins ADD COLUMN failure_times timestamptz[] NOT NULL DEFAULT '{}'
  CHECK (cardinality(failure_times) <= 20);
ALTER TABLE customer_users ADD COLUMN failure_times timestamptz[] NOT NULL DEFAULT '{}'
  CHECK (cardinality(failure_times) <= 20);

-- Failures counted before this migration keep counting, as if made at the row's last change.
UPDATE admins SET failure_times = array_fill(updated_at, ARRAY[least(failed_logins, 20)])
 WHERE failed_logins > 0 AND locked_until IS NULL;
UPDATE customer_users SET failure_times = array_fill(updated_at, ARRAY[least(failed_logins, 20)])
 WHERE failed_logins > 0 AND locked_until IS NULL;
