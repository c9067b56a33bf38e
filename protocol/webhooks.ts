/**
 * The webhook contract receivers rely on: the versioned event payload (documented in the OpenAPI
 * document as `WebhookEventV1`) and the views of endpoints and deliveries the admin UI reads.
 * Payloads carry ids, states, dates and short reasons: never a secret.
 */
import { z } from 'zod';
import { WEBHOOK_EVENTS, type WebhookEvent } from './audit-actions';
import type { WebhookDeliveryState } from './enums';

export const WEBHOOK_PAYLOAD_VERSION = 1;
/** What follows `whsec_` is base64, as the Standard Webhooks specification has it. */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

const ref = z.object({ kind: z.string().max(50), id: z.string().max(200) });
const text = (max: number) => z.string().max(max);

/** One event, as the body of a delivery. `data.sequence` orders events (the ledger's seq). */
export const webhookEventV1Schema = z
  .object({
    type: z.enum(WEBHOOK_EVENTS),
    timestamp: text(40).describe('When the audit row was written (ISO 8601)'),
    data: z.object({
      version: z.literal(WEBHOOK_PAYLOAD_VERSION),
      eventId: text(40).describe('Equals the webhook-id header: stable across retries and redeliveries'),
      sequence: z.number().int().describe('The audit ledger sequence: increasing, so a receiver can order events'),
      actor: ref,
      subject: ref,
      customerId: text(72).optional(),
      licenseId: text(72).optional(),
      agentId: text(72).optional(),
      from: text(40).optional().describe('State before a transition'),
      to: text(40).optional().describe('State after a transition'),
      licenseVersion: z.number().int().optional(),
      statusVersion: z.number().int().optional(),
      expiresAt: text(40).nullable().optional(),
      trialEndsAt: text(40).nullable().optional(),
      effectiveAt: text(40).optional(),
      daysBefore: z.number().int().optional().describe('license.expiring_soon: the notice this is'),
      plan: text(200).optional(),
      maxAgents: z.number().int().optional(),
      agentVersion: text(60).optional(),
      reason: text(2000).nullable().optional(),
    }),
  })
  .describe('A webhook delivery body (version 1), signed per the Standard Webhooks specification');
export type WebhookEventV1 = z.infer<typeof webhookEventV1Schema>;

export type WebhookEndpointView = {
  id: string;
  url: string;
  description: string;
  events: WebhookEvent[];
  enabled: boolean;
  /** Why it was disabled (`persistent delivery failure`, or an admin's reason), else null. */
  disabledReason: string | null;
  /** Until when the secret before the last rotation still signs (second signature), else null. */
  previousSecretExpiresAt: string | null;
  consecutiveFailures: number;
  createdAt: string;
  updatedAt: string;
};

export type WebhookAttemptView = {
  attempt: number;
  startedAt: string;
  /** The receiver's HTTP status; null when no answer came (refused address, timeout, reset). */
  statusCode: number | null;
  latencyMs: number;
  ok: boolean;
  error: string | null;
  /** The first bytes of the receiver's answer, as text. */
  responseExcerpt: string | null;
};

export type WebhookDeliveryView = {
  endpointId: string;
  eventId: string;
  sequence: number;
  type: WebhookEvent;
  state: WebhookDeliveryState;
  attempts: WebhookAttemptView[];
  createdAt: string;
  completedAt: string | null;
};
