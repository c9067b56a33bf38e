import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction, type Tx } from '../../db/pool';
import * as repo from '../../db/webhooks-repo';
import {
  newId,
  redactString,
  WEBHOOK_EVENTS,
  type Actor,
  type Clock,
  type WebhookEndpointView,
  type WebhookEvent,
} from '../../protocol';
import { AppError } from '../errors';
import type { AllowList } from './outbound-address';
import { newWebhookSecret } from './webhook-sender';

/** How long the secret before a rotation still signs, unless the rotation says otherwise. */
export const DEFAULT_ROTATION_OVERLAP_S = 24 * 3600;
export const MAX_ROTATION_OVERLAP_S = 7 * 24 * 3600;

export type EndpointInput = { url: string; description?: string; events: WebhookEvent[]; enabled?: boolean };
export type EndpointPatch = Partial<EndpointInput>;

/** The endpoint, or NOT_FOUND; `forUpdate` locks its row for the caller's transaction. */
export async function requireEndpoint(db: Pool | Tx, id: string, forUpdate = false): Promise<repo.WebhookEndpointRow> {
  const row = await repo.getEndpoint(db, id, forUpdate);
  if (!row) throw new AppError('NOT_FOUND', `No webhook endpoint ${id}.`);
  return row;
}

/** The audit row of a change to an endpoint, in the change's transaction. */
export async function auditEndpoint(
  tx: Tx,
  clock: Clock,
  actor: Actor,
  action: Parameters<typeof appendAudit>[1]['action'],
  id: string,
  data: Record<string, unknown>,
) {
  await appendAudit(tx, { actor, action, subject: { kind: 'webhook_endpoint', id }, data }, clock);
}

/** Webhook endpoints as admins manage them: URL and events checked, secrets rotated, each change audited. */
export function createWebhookEndpoints(
  deps: { pool: Pool; clock: Clock },
  allow: AllowList,
  sealSecret: (endpointId: string, secret: string) => string,
) {
  const { pool, clock } = deps;

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

  /** What an audit row may say of a URL: its query string and any credentials scrubbed. */
  const auditUrl = (url: string) => redactString(url);

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
        await auditEndpoint(tx, clock, actor, 'webhook_endpoint.created', id, {
          url: auditUrl(url),
          events,
          enabled: r.enabled,
        });
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
        await auditEndpoint(tx, clock, actor, 'webhook_endpoint.updated', id, {
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
        await auditEndpoint(tx, clock, actor, 'webhook_endpoint.secret_rotated', id, { overlapSeconds });
        return next;
      });
      return { endpoint: view(row), secret };
    },
  };
}
