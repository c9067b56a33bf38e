-- The release an admin asked this agent to install (POST /v1/admin/agents/:id/update). The
-- heartbeat answer carries it; cleared once the agent reports running it (or a later version).
ALTER TABLE agents ADD COLUMN wanted_version text CHECK (wanted_version IS NULL OR length(wanted_version) <= 80);
