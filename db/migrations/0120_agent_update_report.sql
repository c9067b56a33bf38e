-- The agent's last update check as its heartbeat reports it (issue 13): outcome, refusal reason
-- (e.g. 'frozen' when the repository's timestamp expired) and when. Null until an agent that
-- updates itself reports one.
ALTER TABLE agents ADD COLUMN update_report jsonb CHECK (update_report IS NULL OR jsonb_typeof(update_report) = 'object');
