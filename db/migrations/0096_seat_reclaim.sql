-- Seats come back: an agent silent (offline) for longer than its license's reclaim window is
-- deregistered by its agentSeatReclaim workflow (workflows/agent-seat-reclaim.ts), freeing the
-- seat. The window is the license's own value so that a policy can set it; 14 days unless given,
-- 0 turns reclaiming off for the license.
ALTER TABLE licenses ADD COLUMN seat_reclaim_days integer NOT NULL DEFAULT 14 CHECK (seat_reclaim_days BETWEEN 0 AND 3650);
