-- Entitlements (protocol/entitlements.ts): a task kind runs only where its license's features
-- grant it (`tasks.echo`, `tasks.sleep`, `tasks.http_get` = true), and `tasks.max_concurrent` /
-- `tasks.per_day` cap what runs. So that nothing that ran before silently stops, every license that
-- exists now and names no `tasks.*` feature is given the task kinds that exist now, as explicit
-- values in its features (the admin view shows them; the next document signed for it carries
-- them). Documents signed before this migration name no `tasks.*` feature, and the agent reads
-- such a document as this same grant. A license with more than 97 features has no room for three
-- more in a signed document (at most 100): it is left as it is and runs no task until an admin
-- grants them.
UPDATE licenses
   SET features = '{"tasks.echo": true, "tasks.sleep": true, "tasks.http_get": true}'::jsonb || features
 WHERE NOT EXISTS (SELECT 1 FROM jsonb_object_keys(features) AS k WHERE k LIKE 'tasks.%')
   AND (SELECT count(*) FROM jsonb_object_keys(features)) <= 97;

-- The per-day cap counts a license's tasks queued in the last 24 hours; the concurrency cap its
-- leased ones.
CREATE INDEX tasks_license_created ON tasks (license_id, created_at);
CREATE INDEX tasks_license_leased ON tasks (license_id) WHERE state = 'leased';
