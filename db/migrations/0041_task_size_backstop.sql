-- jsonb's text form adds a space after every ':' and ',', so a payload the API accepted at 64 KiB
-- of JSON could fail a 64 KiB check on payload::text. The API enforces 64 KiB; the table keeps a
-- looser backstop.
ALTER TABLE tasks DROP CONSTRAINT tasks_payload_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_payload_check CHECK (jsonb_typeof(payload) = 'object' AND octet_length(payload::text) <= 262144);
ALTER TABLE tasks DROP CONSTRAINT tasks_result_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_result_check CHECK (result IS NULL OR octet_length(result::text) <= 262144);
