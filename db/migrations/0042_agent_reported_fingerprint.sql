-- The component hashes of the latest heartbeat, next to (never replacing) the activation record in
-- agents.fingerprint, which stays the reference every heartbeat is scored against: a machine
-- cannot drift away one component at a time.
ALTER TABLE agents ADD COLUMN reported_fingerprint jsonb CHECK (reported_fingerprint IS NULL OR jsonb_typeof(reported_fingerprint) = 'object');
