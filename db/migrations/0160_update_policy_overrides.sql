-- Update policy per license or per agent (issue 13), over the one its license's policy version
-- names: 'automatic' (the latest release), 'manual' (admin-approved: only a version an admin asks
-- for with POST /v1/admin/agents/:id/update) or 'pinned' (exactly update_pinned_version, never
-- beyond). NULL inherits: agent → license → policy version → automatic.
ALTER TABLE licenses
  ADD COLUMN update_policy text CHECK (update_policy IN ('automatic', 'manual', 'pinned')),
  ADD COLUMN update_pinned_version text CHECK (update_pinned_version IS NULL OR length(update_pinned_version) <= 80),
  ADD CONSTRAINT licenses_update_pin CHECK ((update_policy IS NOT DISTINCT FROM 'pinned') = (update_pinned_version IS NOT NULL));
ALTER TABLE agents
  ADD COLUMN update_policy text CHECK (update_policy IN ('automatic', 'manual', 'pinned')),
  ADD COLUMN update_pinned_version text CHECK (update_pinned_version IS NULL OR length(update_pinned_version) <= 80),
  ADD CONSTRAINT agents_update_pin CHECK ((update_policy IS NOT DISTINCT FROM 'pinned') = (update_pinned_version IS NOT NULL));
