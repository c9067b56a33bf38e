import type { WebhookDeliveryState } from '../protocol/enums';
import type { Queryable } from './pool';

/** Webhook endpoints, their deliveries (one per audit row of a subscribed action) and attempts. */
export const WEBHOOKS_CHANNEL = 'agentina_webhooks';

export type WebhookEndpointRow = {
  id: string;
  url: string;
  description: string;
  events: string[];
  enabled: boolean;
  disabled_reason: string | null;
  secret_sealed: string;
  previous_secret_sealed: string | null;
  previous_secret_expires_at: Date | null;
  consecutive_failures: number;
  created_by_kind: string;
  created_by_id: string;
  created_at: Date;
  updated_at: Date;
};

const ENDPOINT_COLUMNS = `id, url, description, events, enabled, disabled_reason, secret_sealed, previous_secret_sealed,
  previous_secret_expires_at, consecutive_failures, created_by_kind, created_by_id, created_at, updated_at`;

export async function insertEndpoint(
  db: Queryable,
  row: Omit<
    WebhookEndpointRow,
    'previous_secret_sealed' | 'previous_secret_expires_at' | 'consecutive_failures' | 'disabled_reason'
  >,
): Promise<WebhookEndpointRow> {
  const { rows } = await db.query<WebhookEndpointRow>(
    `INSERT INTO webhook_endpoints (id, url, description, events, enabled, secret_sealed, created_by_kind, created_by_id, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${ENDPOINT_COLUMNS}`,
    [
      row.id,
      row.url,
      row.description,
      row.events,
      row.enabled,
      row.secret_sealed,
      row.created_by_kind,
      row.created_by_id,
      row.created_at,
      row.updated_at,
    ],
  );
  return rows[0]!;
}

export async function getEndpoint(
  db: Queryable,
  id: string,
  forUpdate = false,
): Promise<WebhookEndpointRow | undefined> {
  const { rows } = await db.query<WebhookEndpointRow>(
    `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0];
}

export async function listEndpoints(db: Queryable): Promise<WebhookEndpointRow[]> {
  const { rows } = await db.query<WebhookEndpointRow>(
    `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at DESC, id LIMIT 500`,
  );
  return rows;
}

export type EndpointChange = Partial<
  Pick<
    WebhookEndpointRow,
    | 'url'
    | 'description'
    | 'events'
    | 'enabled'
    | 'disabled_reason'
    | 'secret_sealed'
    | 'previous_secret_sealed'
    | 'previous_secret_expires_at'
    | 'consecutive_failures'
  >
> & { updated_at: Date };

export async function updateEndpoint(db: Queryable, id: string, change: EndpointChange): Promise<WebhookEndpointRow> {
  const entries = Object.entries(change);
  const sets = entries.map(([k], i) => `${k} = $${i + 2}`).join(', ');
  const { rows } = await db.query<WebhookEndpointRow>(
    `UPDATE webhook_endpoints SET ${sets} WHERE id = $1 RETURNING ${ENDPOINT_COLUMNS}`,
    [id, ...entries.map(([, v]) => v)],
  );
  return rows[0]!;
}

export type WebhookDeliveryRow = {
  endpoint_id: string;
  event_seq: string;
  event_type: string;
  state: WebhookDeliveryState;
  created_at: Date;
  dispatched_at: Date | null;
  completed_at: Date | null;
};

const DELIVERY_COLUMNS = 'endpoint_id, event_seq, event_type, state, created_at, dispatched_at, completed_at';

/** Deliveries whose workflow has not been started yet, oldest event first. */
export async function listUndispatched(db: Queryable, limit: number): Promise<WebhookDeliveryRow[]> {
  const { rows } = await db.query<WebhookDeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE dispatched_at IS NULL ORDER BY event_seq LIMIT $1`,
    [limit],
  );
  return rows;
}

export async function markDispatched(db: Queryable, endpointId: string, seq: string, at: Date): Promise<void> {
  await db.query(
    'UPDATE webhook_deliveries SET dispatched_at = $3 WHERE endpoint_id = $1 AND event_seq = $2 AND dispatched_at IS NULL',
    [endpointId, seq, at],
  );
}

export async function getDelivery(
  db: Queryable,
  endpointId: string,
  seq: string,
): Promise<WebhookDeliveryRow | undefined> {
  const { rows } = await db.query<WebhookDeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 AND event_seq = $2`,
    [endpointId, seq],
  );
  return rows[0];
}

export async function setDeliveryState(
  db: Queryable,
  endpointId: string,
  seq: string,
  state: WebhookDeliveryState,
  completedAt: Date | null,
): Promise<void> {
  await db.query(
    'UPDATE webhook_deliveries SET state = $3, completed_at = $4 WHERE endpoint_id = $1 AND event_seq = $2',
    [endpointId, seq, state, completedAt],
  );
}

/** Newest first; `beforeSeq` pages back. */
export async function listDeliveries(
  db: Queryable,
  endpointId: string,
  opts: { limit: number; beforeSeq?: string },
): Promise<WebhookDeliveryRow[]> {
  const { rows } = await db.query<WebhookDeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 AND ($2::bigint IS NULL OR event_seq < $2)
     ORDER BY event_seq DESC LIMIT $3`,
    [endpointId, opts.beforeSeq ?? null, opts.limit],
  );
  return rows;
}

export type WebhookAttemptRow = {
  id: string;
  endpoint_id: string;
  event_seq: string;
  started_at: Date;
  status_code: number | null;
  latency_ms: number;
  ok: boolean;
  error: string | null;
  response_excerpt: string | null;
};

/**
 * Written before the request goes out, so a try whose worker dies before it can report still
 * shows in the log (with UNFINISHED_ATTEMPT as its error); finishAttempt fills in the outcome.
 */
export const UNFINISHED_ATTEMPT = 'no outcome recorded (in flight, or its worker stopped during the try)';

export async function startAttempt(db: Queryable, endpointId: string, seq: string, startedAt: Date): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO webhook_attempts (endpoint_id, event_seq, started_at, status_code, latency_ms, ok, error, response_excerpt)
     VALUES ($1, $2, $3, NULL, 0, false, $4, NULL) RETURNING id`,
    [endpointId, seq, startedAt, UNFINISHED_ATTEMPT],
  );
  return rows[0]!.id;
}

export async function finishAttempt(
  db: Queryable,
  id: string,
  r: Pick<WebhookAttemptRow, 'status_code' | 'latency_ms' | 'ok' | 'error' | 'response_excerpt'>,
): Promise<void> {
  await db.query(
    'UPDATE webhook_attempts SET status_code = $2, latency_ms = $3, ok = $4, error = $5, response_excerpt = $6 WHERE id = $1',
    [id, r.status_code, r.latency_ms, r.ok, r.error, r.response_excerpt],
  );
}

/** The attempts of these deliveries of one endpoint, oldest first. */
export async function listAttempts(db: Queryable, endpointId: string, seqs: string[]): Promise<WebhookAttemptRow[]> {
  const { rows } = await db.query<WebhookAttemptRow>(
    `SELECT id, endpoint_id, event_seq, started_at, status_code, latency_ms, ok, error, response_excerpt
       FROM webhook_attempts WHERE endpoint_id = $1 AND event_seq = ANY ($2::bigint[]) ORDER BY id`,
    [endpointId, seqs],
  );
  return rows;
}

export type WebhookEventRow = {
  seq: string;
  time: Date;
  actor_kind: string;
  actor_id: string;
  action: string;
  subject_kind: string;
  subject_id: string;
  data: Record<string, unknown>;
};

/** The audit row a delivery announces. */
export async function readEvent(db: Queryable, seq: string): Promise<WebhookEventRow | undefined> {
  const { rows } = await db.query<WebhookEventRow>(
    'SELECT seq, time, actor_kind, actor_id, action, subject_kind, subject_id, data FROM audit_events WHERE seq = $1',
    [seq],
  );
  return rows[0];
}
