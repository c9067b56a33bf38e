-- The statement withTransaction runs after an asynchronous audit COMMIT (0053) to wait for its
-- WAL flush. It must write WAL itself: PostgreSQL does not flush at the commit of a transaction
-- that wrote none (an xid alone is not enough). One row per backend, so concurrent writers never
-- wait on each other here and their flushes are shared.
CREATE TABLE audit_commit_flush (
  pid integer PRIMARY KEY,
  n   bigint NOT NULL
);
REVOKE ALL ON audit_commit_flush FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON audit_commit_flush TO agentina_app;
