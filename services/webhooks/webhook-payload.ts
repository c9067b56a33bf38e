import { WEBHOOK_PAYLOAD_VERSION, type WebhookEvent, type WebhookEventV1 } from '../../protocol';
import type { WebhookEventRow } from '../../db/webhooks-repo';
import { webhookEventId } from '../../workflows/webhook-delivery';

/**
 * The fields of an audit row's data a payload may carry: ids, states, versions, dates, short
 * reasons (already scrubbed when the row was written). Anything else in the row (addresses,
 * fingerprint commitments) stays in the ledger.
 */
const PASSED = [
  'customerId',
  'licenseId',
  'agentId',
  'from',
  'to',
  'statusVersion',
  'expiresAt',
  'trialEndsAt',
  'effectiveAt',
  'daysBefore',
  'plan',
  'maxAgents',
  'agentVersion',
  'reason',
] as const;

/** The body of every delivery of this audit row (version 1: protocol/webhooks.ts). */
export function webhookPayload(row: WebhookEventRow): WebhookEventV1 {
  const data: WebhookEventV1['data'] = {
    version: WEBHOOK_PAYLOAD_VERSION,
    eventId: webhookEventId(row.seq),
    sequence: Number(row.seq),
    actor: { kind: row.actor_kind, id: row.actor_id },
    subject: { kind: row.subject_kind, id: row.subject_id },
  };
  const source = row.data;
  const out = data as Record<string, unknown>;
  for (const key of PASSED) if (source[key] !== undefined) out[key] = source[key];
  if (row.subject_kind === 'license') data.licenseId = row.subject_id;
  if (row.subject_kind === 'agent') data.agentId = row.subject_id;
  if (row.subject_kind === 'license' && typeof source.version === 'number') data.licenseVersion = source.version;
  return { type: row.action as WebhookEvent, timestamp: row.time.toISOString(), data };
}
