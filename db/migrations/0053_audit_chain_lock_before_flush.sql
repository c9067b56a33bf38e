-- Release the chain lock before the WAL flush, without acknowledging anything that is not durable.
--
-- The commit-time trigger (0051) holds the audit_head lock until its transaction ends, and with
-- synchronous_commit = on that includes the WAL flush, so appends cannot share flushes. When the
-- staged row says so (appendAudit inside withTransaction), the trigger makes this one COMMIT
-- asynchronous: the commit record is written, the lock is released, the next append chains on.
-- withTransaction then runs one tiny synchronous transaction, whose flush covers this commit
-- (WAL is flushed in order), before it returns to the caller -- so an acknowledged change is as
-- durable as before, and those flushes are shared between writers (group commit).
-- The chain cannot break in a crash: a row chained onto another has a later commit record, so it
-- is never durable without its predecessor.

ALTER TABLE audit_staging ADD COLUMN async_commit boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION audit_chain_staged() RETURNS trigger
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
  IF NEW.async_commit THEN
    PERFORM set_config('synchronous_commit', 'off', true);
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
