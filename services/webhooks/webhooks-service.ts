import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
} from '@temporalio/client';
import type { Pool, PoolClient } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { listen, withTransaction, type Tx } from '../../db/pool';
import * as repo from '../../db/webhooks-repo';
import {
  newId,
  redactString,
  scrubFreeText,
  WEBHOOK_EVENTS,
  type Actor,
  type Clock,
  type SecretKey,
  type WebhookDeliveryView,
  type WebhookEndpointView,
  type WebhookEvent,
} from '../../protocol';
import { WEBHOOK_WORKFLOW_TYPE, webhookEventId, webhookWorkflowId } from '../../workflows/webhook-delivery';
import { AppError } from '../errors';
import { createSealer } from '../sealed-values';
import type { TemporalDeps } from '../temporal';
import { createAllowList } from './outbound-address';
import { webhookPayload } from './webhook-payload';
import { DEFAULT_SEND_LIMITS, newWebhookSecret, sendWebhook, signWebhook, type SendLimits } from './webhook-sender';

export const DELIVERY_PAGE_DEFAULT = 50;
export const DELIVERY_PAGE_MAX = 200;
/** How long the secret before a rotation still signs, unless the rotation says otherwise. */
export const DEFAULT_ROTATION_OVERLAP_S = 24 * 3600;
export const MAX_ROTATION_OVERLAP_S = 7 * 24 * 3600;
/** The dispatcher looks for deliveries whose notice it missed (a restart, a dropped connection). */
export const DISPATCH_POLL_MS = 5_000;
const DISPATCH_BATCH = 200;
const DISPATCH_CONCURRENCY = 16;
export const AUTO_DISABLED_REASON = 'persistent delivery failure';

/** A delivery workflow's input: two ids, never the payload or a secret. */
export type WebhookDeliveryInput = { endpointId: string; eventSeq: string };
export type WebhookDeliveryResult = { outcome: 'succeeded' | 'failed'; attempts: number };

export type EndpointInput = { url: string; description?: string; events: WebhookEvent[]; enabled?: boolean };
export type EndpointPatch = Partial<EndpointInput>;

export type WebhooksServiceDeps = {
  pool: Pool;
  temporal: TemporalDeps;
  clock: Clock;
  secrets: () => SecretKey[];
  allowHosts: readonly string[];
  sendLimits?: SendLimits;
  onWarning: (message: string, err: unknown) => void;
};

/** Webhook endpoints (admin API), deliveries (the worker's dispatcher and activities). */
export function createWebhooksService(deps: WebhooksServiceDeps) {
  const { pool, clock } = deps;
  const box = createSealer(deps.secrets, 'webhook signing secret');
  const allow = createAllowList(deps.allowHosts);
  const limits = deps.sendLimits ?? DEFAULT_SEND_LIMITS;
  const sealSecret = (endpointId: string, secret: string) => box.seal(`webhook\n${endpointId}`, secret);
  const openSecret = (endpointId: string, sealed: string) => box.open(`webhook\n${endpointId}`, sealed);

  function checkUrl(raw: string): string {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new AppError('BAD_REQUEST', 'The webhook URL does not parse.');
    }
    if (url.username || url.password) throw new AppError('BAD_REQUEST', 'A webhook URL may not carry credentials.');
    if (url.hash) throw new AppError('BAD_REQUEST', 'A webhook URL may not carry a fragment.');
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && allow.host(url.hostname)))
      throw new AppError('BAD_REQUEST', 'A webhook URL must use https (http only for hosts in WEBHOOK_ALLOW_HOSTS).');
    return url.toString();
  }

  function checkEvents(events: readonly string[]): WebhookEvent[] {
    const unknown = events.filter((e) => !(WEBHOOK_EVENTS as readonly string[]).includes(e));
    if (unknown.length) throw new AppError('BAD_REQUEST', `Unknown webhook events: ${unknown.join(', ')}.`);
    if (events.length === 0) throw new AppError('BAD_REQUEST', 'Subscribe to at least one event.');
    return [...new Set(events)] as WebhookEvent[];
  }

  function view(row: repo.WebhookEndpointRow): WebhookEndpointView {
    const overlap = row.previous_secret_expires_at;
    return {
      id: row.id,
      url: row.url,
      description: row.description,
      events: row.events as WebhookEvent[],
      enabled: row.enabled,
      disabledReason: row.disabled_reason,
      previousSecretExpiresAt: overlap && overlap > clock.now() ? overlap.toISOString() : null,
      consecutiveFailures: row.consecutive_failures,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    };
  }

  async function requireEndpoint(db: Pool | Tx, id: string, forUpdate = false): Promise<repo.WebhookEndpointRow> {
    const row = await repo.getEndpoint(db, id, forUpdate);
    if (!row) throw new AppError('NOT_FOUND', `No webhook endpoint ${id}.`);
    return row;
  }

  /** What an audit row may say of a URL: its query string and any credentials scrubbed. */
  const auditUrl = (url: string) => redactString(url);

  async function audit(
    tx: Tx,
    actor: Actor,
    action: Parameters<typeof appendAudit>[1]['action'],
    id: string,
    data: Record<string, unknown>,
  ) {
    await appendAudit(tx, { actor, action, subject: { kind: 'webhook_endpoint', id }, data }, clock);
  }

  async function startDelivery(endpointId: string, seq: string, again: boolean): Promise<boolean> {
    try {
      await deps.temporal.client.workflow.start(WEBHOOK_WORKFLOW_TYPE, {
        taskQueue: deps.temporal.taskQueue,
        workflowId: webhookWorkflowId(endpointId, webhookEventId(seq)),
        args: [{ endpointId, eventSeq: seq } satisfies WebhookDeliveryInput],
        staticSummary: `webhook ${webhookEventId(seq)} to ${endpointId}`,
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
        workflowIdReusePolicy: again ? WorkflowIdReusePolicy.ALLOW_DUPLICATE : WorkflowIdReusePolicy.REJECT_DUPLICATE,
      });
      return true;
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
      throw err;
    }
  }

  /** Starts the workflow of every delivery not yet started; one pass, oldest event first. */
  async function dispatchPending(): Promise<number> {
    let started = 0;
    for (;;) {
      const rows = await repo.listUndispatched(pool, DISPATCH_BATCH);
      // Several starts in flight at once: each is a round trip to Temporal, then one to PostgreSQL.
      let next = 0;
      const lane = async () => {
        for (let i = next++; i < rows.length; i = next++) {
          const r = rows[i]!;
          // Already started (a pass that died before marking it): the id refuses a twin.
          await startDelivery(r.endpoint_id, r.event_seq, false);
          await repo.markDispatched(pool, r.endpoint_id, r.event_seq, clock.now());
          started++;
        }
      };
      await Promise.all(Array.from({ length: DISPATCH_CONCURRENCY }, lane));
      if (rows.length < DISPATCH_BATCH) return started;
    }
  }

  return {
    async createEndpoint(
      actor: Actor,
      input: EndpointInput,
    ): Promise<{ endpoint: WebhookEndpointView; secret: string }> {
      const url = checkUrl(input.url);
      const events = checkEvents(input.events);
      const id = newId('whk');
      const secret = newWebhookSecret();
      const now = clock.now();
      const row = await withTransaction(pool, async (tx) => {
        const r = await repo.insertEndpoint(tx, {
          id,
          url,
          description: input.description ?? '',
          events,
          enabled: input.enabled ?? true,
          secret_sealed: sealSecret(id, secret),
          created_by_kind: actor.kind,
          created_by_id: actor.id,
          created_at: now,
          updated_at: now,
        });
        await audit(tx, actor, 'webhook_endpoint.created', id, { url: auditUrl(url), events, enabled: r.enabled });
        return r;
      });
      return { endpoint: view(row), secret };
    },

    async listEndpoints(): Promise<{ items: WebhookEndpointView[] }> {
      return { items: (await repo.listEndpoints(pool)).map(view) };
    },

    async getEndpoint(id: string): Promise<WebhookEndpointView> {
      return view(await requireEndpoint(pool, id));
    },

    async updateEndpoint(actor: Actor, id: string, patch: EndpointPatch): Promise<WebhookEndpointView> {
      const url = patch.url === undefined ? undefined : checkUrl(patch.url);
      const events = patch.events === undefined ? undefined : checkEvents(patch.events);
      const row = await withTransaction(pool, async (tx) => {
        const cur = await requireEndpoint(tx, id, true);
        const change: repo.EndpointChange = { updated_at: clock.now() };
        if (url !== undefined) change.url = url;
        if (patch.description !== undefined) change.description = patch.description;
        if (events !== undefined) change.events = events;
        if (patch.enabled !== undefined && patch.enabled !== cur.enabled) {
          change.enabled = patch.enabled;
          // Re-enabled: a fresh start. Disabled by an admin: say so.
          change.disabled_reason = patch.enabled ? null : 'disabled by an admin';
          if (patch.enabled) change.consecutive_failures = 0;
        }
        const next = await repo.updateEndpoint(tx, id, change);
        await audit(tx, actor, 'webhook_endpoint.updated', id, {
          ...(url !== undefined ? { url: auditUrl(url) } : {}),
          ...(patch.description !== undefined ? { descriptionChanged: true } : {}),
          ...(events !== undefined ? { events } : {}),
          ...(change.enabled !== undefined ? { enabled: change.enabled } : {}),
        });
        return next;
      });
      return view(row);
    },

    /**
     * A new secret, shown once. The old one keeps signing (a second signature in
     * `webhook-signature`) for `overlapSeconds`, so receivers can switch without a gap.
     */
    async rotateSecret(
      actor: Actor,
      id: string,
      overlapSeconds = DEFAULT_ROTATION_OVERLAP_S,
    ): Promise<{ endpoint: WebhookEndpointView; secret: string }> {
      const secret = newWebhookSecret();
      const row = await withTransaction(pool, async (tx) => {
        const cur = await requireEndpoint(tx, id, true);
        const now = clock.now();
        const until = new Date(now.getTime() + overlapSeconds * 1000);
        const next = await repo.updateEndpoint(tx, id, {
          secret_sealed: sealSecret(id, secret),
          previous_secret_sealed: overlapSeconds > 0 ? cur.secret_sealed : null,
          previous_secret_expires_at: overlapSeconds > 0 ? until : null,
          updated_at: now,
        });
        await audit(tx, actor, 'webhook_endpoint.secret_rotated', id, { overlapSeconds });
        return next;
      });
      return { endpoint: view(row), secret };
    },

    async listDeliveries(
      id: string,
      q: { limit?: number; cursor?: string },
    ): Promise<{ items: WebhookDeliveryView[]; nextCursor: string | null }> {
      await requireEndpoint(pool, id);
      const limit = q.limit ?? DELIVERY_PAGE_DEFAULT;
      const rows = await repo.listDeliveries(pool, id, {
        limit: limit + 1,
        ...(q.cursor !== undefined ? { beforeSeq: q.cursor } : {}),
      });
      const page = rows.slice(0, limit);
      const attempts = await repo.listAttempts(
        pool,
        id,
        page.map((r) => r.event_seq),
      );
      return {
        items: page.map((r) => ({
          endpointId: r.endpoint_id,
          eventId: webhookEventId(r.event_seq),
          sequence: Number(r.event_seq),
          type: r.event_type as WebhookEvent,
          state: r.state,
          createdAt: r.created_at.toISOString(),
          completedAt: r.completed_at?.toISOString() ?? null,
          attempts: attempts
            .filter((a) => a.event_seq === r.event_seq)
            .map((a, i) => ({
              attempt: i + 1,
              startedAt: a.started_at.toISOString(),
              statusCode: a.status_code,
              latencyMs: a.latency_ms,
              ok: a.ok,
              error: a.error,
              responseExcerpt: a.response_excerpt,
            })),
        })),
        nextCursor: rows.length > limit ? page[page.length - 1]!.event_seq : null,
      };
    },

    /** Sends a delivery again by hand (same event id, so receivers can de-duplicate). */
    async redeliver(actor: Actor, id: string, eventId: string): Promise<{ state: 'pending' }> {
      const seq = /^msg_(\d{1,18})$/.exec(eventId)?.[1];
      const endpoint = await requireEndpoint(pool, id);
      const delivery = seq === undefined ? undefined : await repo.getDelivery(pool, id, seq);
      if (!delivery || seq === undefined) throw new AppError('NOT_FOUND', `No delivery ${eventId} for ${id}.`);
      if (!endpoint.enabled) throw new AppError('CONFLICT', 'The endpoint is disabled; enable it first.');
      if (delivery.state === 'pending' || delivery.state === 'delivering')
        throw new AppError('CONFLICT', 'This delivery is still being tried.');
      await withTransaction(pool, async (tx) => {
        await repo.setDeliveryState(tx, id, seq, 'pending', null);
        await audit(tx, actor, 'webhook.redelivery_requested', id, { eventId });
      });
      if (!(await startDelivery(id, seq, true))) throw new AppError('CONFLICT', 'This delivery is still being tried.');
      await repo.markDispatched(pool, id, seq, clock.now());
      return { state: 'pending' };
    },

    dispatchPending,

    /**
     * The worker's dispatcher: starts delivery workflows when the fan-out trigger NOTIFYs, and
     * every DISPATCH_POLL_MS for whatever a missed notice left behind. Returns its stop function.
     */
    startDispatcher(pollMs = DISPATCH_POLL_MS): () => Promise<void> {
      let stopped = false;
      let running: Promise<void> = Promise.resolve();
      let again = false;
      let client: PoolClient | undefined;
      const pass = () => {
        if (stopped) return;
        if (again) return;
        again = true;
        running = running.then(async () => {
          again = false;
          if (stopped) return;
          await dispatchPending().catch((err: unknown) => deps.onWarning('webhook dispatch failed', err));
        });
      };
      const connect = async () => {
        try {
          const c = await pool.connect();
          c.on('notification', pass);
          c.on('error', (err) => {
            deps.onWarning('webhook LISTEN connection failed', err);
            if (client === c) client = undefined;
            c.release(err);
          });
          await listen(c, repo.WEBHOOKS_CHANNEL);
          if (stopped) c.release(true);
          else client = c;
        } catch (err) {
          deps.onWarning('webhook LISTEN connection failed', err);
        }
      };
      void connect().then(pass);
      const timer = setInterval(() => {
        if (!client) void connect();
        pass();
      }, pollMs);
      return async () => {
        stopped = true;
        clearInterval(timer);
        await running;
        client?.release(true);
        client = undefined;
      };
    },

    /** One try of a delivery (the activity): sign with the secrets read here, send, log. */
    async attemptDelivery(
      input: WebhookDeliveryInput,
    ): Promise<{ ok: true; attempts: number } | { ok: false; retryable: boolean; error: string }> {
      const endpoint = await repo.getEndpoint(pool, input.endpointId);
      const event = await repo.readEvent(pool, input.eventSeq);
      const delivery = await repo.getDelivery(pool, input.endpointId, input.eventSeq);
      if (!endpoint || !event || !delivery) return { ok: false, retryable: false, error: 'no such delivery' };
      if (!endpoint.enabled) return { ok: false, retryable: false, error: 'the endpoint is disabled' };
      if (delivery.state === 'succeeded') return { ok: true, attempts: 0 };
      const now = clock.now();
      const secrets = [openSecret(endpoint.id, endpoint.secret_sealed)];
      if (
        endpoint.previous_secret_sealed &&
        endpoint.previous_secret_expires_at &&
        endpoint.previous_secret_expires_at > now
      )
        secrets.push(openSecret(endpoint.id, endpoint.previous_secret_sealed));
      const id = webhookEventId(event.seq);
      const timestamp = Math.floor(now.getTime() / 1000);
      const body = JSON.stringify(webhookPayload(event));
      await repo.setDeliveryState(pool, endpoint.id, input.eventSeq, 'delivering', null);
      const attemptId = await repo.startAttempt(pool, endpoint.id, input.eventSeq, now);
      const r = await sendWebhook({
        url: endpoint.url,
        body,
        allow,
        limits,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Agentina-Webhooks/1',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWebhook(secrets, id, timestamp, body),
        },
      });
      const error = r.error === null ? null : scrubFreeText(r.error, 500);
      await withTransaction(pool, async (tx) => {
        await repo.finishAttempt(tx, attemptId, {
          status_code: r.statusCode,
          latency_ms: r.latencyMs,
          ok: r.ok,
          error,
          response_excerpt: r.responseExcerpt === null ? null : scrubFreeText(r.responseExcerpt, 1024),
        });
        if (r.ok) await repo.setDeliveryState(tx, endpoint.id, input.eventSeq, 'succeeded', clock.now());
        await tx.query(
          r.ok
            ? 'UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = $1 AND consecutive_failures > 0'
            : 'UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1 WHERE id = $1',
          [endpoint.id],
        );
      });
      if (r.ok) return { ok: true, attempts: await countAttempts(input) };
      return { ok: false, retryable: true, error: error ?? 'failed' };
    },

    /** The tries ran out: the delivery is failed; the endpoint disabled and audited when asked. */
    async failDelivery(input: WebhookDeliveryInput & { disableEndpoint: boolean }): Promise<WebhookDeliveryResult> {
      await withTransaction(pool, async (tx) => {
        const delivery = await repo.getDelivery(tx, input.endpointId, input.eventSeq);
        if (delivery) await repo.setDeliveryState(tx, input.endpointId, input.eventSeq, 'failed', clock.now());
        const endpoint = await repo.getEndpoint(tx, input.endpointId, true);
        if (!input.disableEndpoint || !endpoint?.enabled) return;
        await repo.updateEndpoint(tx, endpoint.id, {
          enabled: false,
          disabled_reason: AUTO_DISABLED_REASON,
          updated_at: clock.now(),
        });
        await appendAudit(
          tx,
          {
            actor: { kind: 'workflow', id: webhookWorkflowId(input.endpointId, webhookEventId(input.eventSeq)) },
            action: 'webhook_endpoint.auto_disabled',
            subject: { kind: 'webhook_endpoint', id: endpoint.id },
            data: { eventId: webhookEventId(input.eventSeq), consecutiveFailures: endpoint.consecutive_failures },
          },
          clock,
        );
      });
      return { outcome: 'failed', attempts: await countAttempts(input) };
    },
  };

  async function countAttempts(input: WebhookDeliveryInput): Promise<number> {
    return (await repo.listAttempts(pool, input.endpointId, [input.eventSeq])).length;
  }
}

export type WebhooksService = ReturnType<typeof createWebhooksService>;
