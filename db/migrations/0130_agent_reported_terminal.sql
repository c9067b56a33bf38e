-- What the agent itself last reported in a heartbeat: that it has gone terminal, and the reason its
-- journal gives. Kept next to (never in place of) the control plane's own status, so the console
-- can show both: "active" here and "terminal: license revoked" from the machine tell a story.
ALTER TABLE agents ADD COLUMN reported_terminal_reason text CHECK (length(reported_terminal_reason) <= 200);
ALTER TABLE agents ADD COLUMN reported_terminal_at timestamptz;
