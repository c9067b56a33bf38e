-- The status version the agent last accepted, as its heartbeat reports it (null: it reported none).
-- Kept next to the control plane's own version, so the console shows whether the agent has caught up.
ALTER TABLE agents ADD COLUMN acknowledged_status_version bigint CHECK (acknowledged_status_version >= 0);
