-- Chain audit rows at COMMIT instead of at append time.
--
-- appendAudit stages a row (content + its canonical JSON around the not-yet-known seq) in
-- audit_staging; a DEFERRABLE INITIALLY DEFERRED constraint trigger moves it into audit_events
-- when the caller commits: it locks the chain head, computes seq and hash, inserts, advances the
-- head and drops the staged row. The head lock is therefore held only from the caller's COMMIT
-- to the end of its WAL flush -- not across the caller's remaining statements and round trips --
-- which is what bounds throughput under contention (see test/bench/audit.ts).
--
-- The trigger function runs as agentina_owner (SECURITY DEFINER), so the application role no
-- longer needs INSERT on audit_events or UPDATE on audit_head: it can only stage rows, and only
-- the trigger can extend the chain. A rolled-back caller leaves nothing: the staged row and the
-- pending trigger event vanish with it.

CREATE TABLE audit_staging (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time            timestamptz NOT NULL,
  actor_kind      text NOT NULL,
  actor_id        text NOT NULL,
  action          text NOT NULL,
  subject_kind    text NOT NULL,
  subject_id      text NOT NULL,
  data            jsonb NOT NULL,
  idempotency_key text NOT NULL,
  -- canonicalJson(content) = canon_before_seq || seq || canon_after_seq (protocol/audit-chain.ts)
  canon_before_seq text NOT NULL,
  canon_after_seq  text NOT NULL
);

CREATE FUNCTION audit_chain_staged() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = agentina, pg_temp AS $$
DECLARE
  head_seq  bigint;
  head_hash text;
  next_hash text;
BEGIN
  DELETE FROM audit_staging WHERE id = NEW.id;
  IF EXISTS (SELECT 1 FROM audit_events WHERE idempotency_key = NEW.idempotency_key) THEN
    RETURN NULL; -- a retried activity: its row is already in the chain
  END IF;
  SELECT seq, hash INTO head_seq, head_hash FROM audit_head FOR UPDATE;
  next_hash := encode(sha256(convert_to(head_hash || NEW.canon_before_seq || (head_seq + 1)::text || NEW.canon_after_seq, 'UTF8')), 'hex');
  INSERT INTO audit_events (seq, time, actor_kind, actor_id, action, subject_kind, subject_id, data, idempotency_key, prev_hash, hash)
  VALUES (head_seq + 1, NEW.time, NEW.actor_kind, NEW.actor_id, NEW.action, NEW.subject_kind, NEW.subject_id, NEW.data, NEW.idempotency_key, head_hash, next_hash)
  ON CONFLICT (idempotency_key) DO NOTHING;
  IF FOUND THEN
    UPDATE audit_head SET seq = head_seq + 1, hash = next_hash;
  END IF;
  RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION audit_chain_staged() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER audit_staging_chain AFTER INSERT ON audit_staging
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_chain_staged();
ALTER TABLE audit_staging ENABLE ALWAYS TRIGGER audit_staging_chain;

REVOKE ALL ON audit_staging FROM PUBLIC;
GRANT INSERT ON audit_staging TO agentina_app;
REVOKE INSERT ON audit_events FROM agentina_app;
REVOKE UPDATE ON audit_head FROM agentina_app;
