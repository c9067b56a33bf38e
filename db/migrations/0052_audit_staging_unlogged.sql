-- A staged audit row lives only inside its own transaction: the commit-time trigger moves it into
-- audit_events (which is WAL-logged) and deletes it; a rollback or a crash discards it with its
-- transaction. Logging it would only add WAL to every append's commit flush, which is the part
-- of an append that holds the chain lock.
ALTER TABLE audit_staging SET UNLOGGED;
