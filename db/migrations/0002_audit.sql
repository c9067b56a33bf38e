-- Append-only, hash-chained audit ledger.
-- hash = sha256(prev_hash ‖ canonical JSON of the row's content); see protocol/audit-chain.ts.
-- Append-only three ways: the app role may only INSERT/SELECT; ENABLE ALWAYS triggers refuse
-- UPDATE, DELETE and TRUNCATE (even under session_replication_role = replica); the table is
-- owned by agentina_owner, a NOLOGIN role the application never uses.

CREATE TABLE audit_events (
  seq             bigint PRIMARY KEY CHECK (seq > 0),
  time            timestamptz NOT NULL,
  actor_kind      text NOT NULL CHECK (actor_kind IN ('admin', 'customer', 'system', 'agent', 'workflow')),
  actor_id        text NOT NULL CHECK (length(actor_id) BETWEEN 1 AND 200),
  action          text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
  subject_kind    text NOT NULL CHECK (length(subject_kind) BETWEEN 1 AND 50),
  subject_id      text NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 200),
  data            jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(data) = 'object'),
  idempotency_key text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 300),
  prev_hash       text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash            text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX audit_events_actor ON audit_events (actor_kind, actor_id, seq);
CREATE INDEX audit_events_subject ON audit_events (subject_kind, subject_id, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);

-- The chain head: one row, locked FOR UPDATE by every append, so appends are serialized and the
-- chain cannot fork. It is a cache of the last row; verification never trusts it.
CREATE TABLE audit_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  seq       bigint NOT NULL,
  hash      text NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, repeat('0', 64));

CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_update;
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_delete;
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate;

REVOKE ALL ON audit_events FROM PUBLIC;
GRANT SELECT, INSERT ON audit_events TO agentina_app;
GRANT SELECT, UPDATE ON audit_head TO agentina_app;
