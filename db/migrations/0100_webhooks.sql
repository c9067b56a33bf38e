-- Webhooks (issue 16): endpoints, one delivery per (endpoint, audit row of a subscribed action),
-- and the log of every attempt.
--
-- Events are emitted in one place: an AFTER INSERT trigger on audit_events. Whatever writes an
-- audit row of an action some enabled endpoint subscribes to (a license transition, a token
-- reuse, an agent quarantine, a checkpoint failure) fans out here, in the same commit as the
-- row, so no change is announced that did not commit and none that committed is missed. The
-- worker's dispatcher starts one Temporal workflow per delivery (webhook/<endpointId>/msg_<seq>).

CREATE TABLE webhook_endpoints (
  id                         text PRIMARY KEY CHECK (id ~ '^whk_[A-Za-z0-9_-]{16,64}$'),
  url                        text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
  description                text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
  events                     text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 100),
  enabled                    boolean NOT NULL,
  disabled_reason            text CHECK (length(disabled_reason) <= 500),
  -- AES-256-GCM under the webhook-secrets key, bound to the endpoint id (services/sealed-box.ts).
  secret_sealed              text NOT NULL CHECK (length(secret_sealed) <= 1000),
  previous_secret_sealed     text CHECK (length(previous_secret_sealed) <= 1000),
  previous_secret_expires_at timestamptz,
  consecutive_failures       integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
  created_by_kind            text NOT NULL,
  created_by_id              text NOT NULL,
  created_at                 timestamptz NOT NULL,
  updated_at                 timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
  endpoint_id   text NOT NULL REFERENCES webhook_endpoints (id),
  event_seq     bigint NOT NULL,
  event_type    text NOT NULL,
  state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivering', 'succeeded', 'failed')),
  created_at    timestamptz NOT NULL,
  dispatched_at timestamptz,
  completed_at  timestamptz,
  PRIMARY KEY (endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_undispatched ON webhook_deliveries (event_seq) WHERE dispatched_at IS NULL;

CREATE TABLE webhook_attempts (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  endpoint_id       text NOT NULL,
  event_seq         bigint NOT NULL,
  started_at        timestamptz NOT NULL,
  status_code       integer,
  latency_ms        integer NOT NULL CHECK (latency_ms >= 0),
  ok                boolean NOT NULL,
  error             text CHECK (length(error) <= 500),
  response_excerpt  text CHECK (length(response_excerpt) <= 1024),
  FOREIGN KEY (endpoint_id, event_seq) REFERENCES webhook_deliveries (endpoint_id, event_seq)
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (endpoint_id, event_seq, id);

CREATE FUNCTION webhook_fan_out() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = agentina, pg_temp AS $$
BEGIN
  INSERT INTO webhook_deliveries (endpoint_id, event_seq, event_type, created_at)
  SELECT e.id, NEW.seq, NEW.action, NEW.time FROM webhook_endpoints e WHERE e.enabled AND NEW.action = ANY (e.events)
  ON CONFLICT DO NOTHING;
  IF FOUND THEN
    PERFORM pg_notify('agentina_webhooks', '');
  END IF;
  RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION webhook_fan_out() FROM PUBLIC;

CREATE TRIGGER audit_events_webhook_fan_out AFTER INSERT ON audit_events
  FOR EACH ROW EXECUTE FUNCTION webhook_fan_out();
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_webhook_fan_out;

GRANT SELECT, INSERT, UPDATE ON webhook_endpoints TO agentina_app;
GRANT SELECT, INSERT, UPDATE ON webhook_deliveries TO agentina_app;
GRANT SELECT, INSERT, UPDATE ON webhook_attempts TO agentina_app;
