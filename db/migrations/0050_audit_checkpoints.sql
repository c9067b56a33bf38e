-- Signed checkpoints of the audit chain: {sequence, hash, time} signed with the `audit` Ed25519
-- key (a file outside the database). Append-only exactly like audit_events.
-- Also hardens audit_events: the owner role itself gives up UPDATE, DELETE and TRUNCATE, so no
-- role short of a superuser holds them (ownership still allows ALTER; the hash chain and the
-- checkpoints are what catch an owner or a superuser).

CREATE TABLE audit_checkpoints (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sequence        bigint NOT NULL CHECK (sequence > 0),
  hash            text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  time            timestamptz NOT NULL,
  alg             text NOT NULL CHECK (alg = 'Ed25519'),
  kid             text NOT NULL CHECK (kid ~ '^[A-Za-z0-9._-]{1,64}$'),
  sig             text NOT NULL CHECK (length(sig) BETWEEN 1 AND 100),
  idempotency_key text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 300)
);
CREATE INDEX audit_checkpoints_sequence ON audit_checkpoints (sequence);

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_update;
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_delete;
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_truncate;

REVOKE ALL ON audit_checkpoints FROM PUBLIC;
GRANT SELECT, INSERT ON audit_checkpoints TO agentina_app;

REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM agentina_owner;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_checkpoints FROM agentina_owner;
