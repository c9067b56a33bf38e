-- Origin proofs the API puts on lifecycle Updates are single-use: the transition that spends one
-- records its nonce in the same transaction, so a proof read from a workflow history cannot be
-- replayed. Rows older than a proof may live are pruned as new ones are written.
CREATE TABLE update_origin_nonces (
  nonce        text PRIMARY KEY CHECK (nonce ~ '^[A-Za-z0-9_-]{16,64}$'),
  workflow_id  text NOT NULL CHECK (length(workflow_id) <= 200),
  used_at      timestamptz NOT NULL
);
CREATE INDEX update_origin_nonces_used_at ON update_origin_nonces (used_at);
REVOKE ALL ON update_origin_nonces FROM PUBLIC;
-- UPDATE only because pruning locks the rows it deletes (FOR UPDATE SKIP LOCKED).
GRANT SELECT, INSERT, UPDATE, DELETE ON update_origin_nonces TO agentina_app;
