import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AUDIT_ACTIONS } from '../../protocol/audit-actions';
import { ACTOR_KINDS, BREAK_CODES, hex64, isoTime, licenseId, safeString } from '../../protocol';
import type { AppDeps } from '../app';
import { AppError } from '../errors';
import { errorSchema } from '../schemas';
import { AUDIT_PAGE_MAX } from '../../services/audit/audit-service';

const text = (max: number) => safeString(max).min(1);
const seqCursor = safeString(15).regex(/^[1-9]\d{0,14}$/, 'must be a sequence number');

export const auditEventSchema = z.strictObject({
  seq: z.number().int().min(1),
  time: z.string().max(40),
  actor: z.strictObject({ kind: z.enum(ACTOR_KINDS), id: z.string().max(200) }),
  action: z.string().max(100),
  subject: z.strictObject({ kind: z.string().max(50), id: z.string().max(200) }),
  data: z.record(z.string(), z.unknown()),
  idempotencyKey: z.string().max(300),
  prevHash: hex64,
  hash: hex64,
});
export type AuditEventBody = z.infer<typeof auditEventSchema>;
/** Id → who it is, for the actors and subjects of the events answered. */
export const namesSchema = z.record(
  z.string().max(200),
  z.strictObject({ name: z.string().max(255), email: z.string().max(254).nullable() }),
);

const listQuery = z.strictObject({
  actorKind: z.enum(ACTOR_KINDS).optional(),
  actorId: text(200).optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
  subjectKind: text(50).optional(),
  subjectId: text(200).optional(),
  licenseId: licenseId.optional().describe('Events about this license, its agents and its activation tokens.'),
  since: isoTime.optional(),
  until: isoTime.optional(),
  cursor: seqCursor.optional(),
  limit: z.coerce.number().int().min(1).max(AUDIT_PAGE_MAX).optional(),
});
const { cursor: _cursor, limit: _limit, ...filterFields } = listQuery.shape;
const exportQuery = z.strictObject({
  ...filterFields,
  format: z
    .enum(['csv', 'jsonl'])
    .describe('csv: one row per event with names; jsonl: the event lines of agentina audit export'),
});
const EXPORT_TYPES = { csv: 'text/csv; charset=utf-8', jsonl: 'application/x-ndjson; charset=utf-8' } as const;

/** The time window must be a window. */
function checkWindow(q: { since?: string | undefined; until?: string | undefined }): void {
  if (q.since && q.until && Date.parse(q.since) >= Date.parse(q.until)) {
    throw new AppError('VALIDATION_FAILED', 'since must be before until.', [
      { path: 'querystring.since', message: 'must be before until' },
    ]);
  }
}

const listSchema = z.strictObject({
  items: z.array(auditEventSchema),
  nextCursor: seqCursor.nullable(),
  names: namesSchema,
});

const verifyQuery = z.strictObject({ from: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional() });
const verifySchema = z.strictObject({
  ok: z.boolean(),
  checkedFrom: z.number().int(),
  checkedThrough: z.number().int(),
  events: z.number().int(),
  checkpoints: z.strictObject({
    total: z.number().int(),
    valid: z.number().int(),
    latest: z
      .strictObject({ sequence: z.number().int(), hash: hex64, time: z.string().max(40), kid: z.string().max(64) })
      .optional(),
  }),
  unsignedTail: z.number().int(),
  firstBreak: z
    .strictObject({
      seq: z.number().int(),
      code: z.enum(BREAK_CODES),
      message: z.string().max(500),
      checkpointId: z.number().int().optional(),
    })
    .optional(),
});
export type AuditVerifyBody = z.infer<typeof verifySchema>;

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 429: errorSchema };

/**
 * GET /v1/admin/audit and /v1/admin/audit/verify. Read-only, so service accounts may call them
 * too: an auditor's script holding a `svc_` token can list and verify without an admin login.
 * Verification walks the whole chain, so it has a tight rate limit of its own.
 */
export function auditRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const audit = deps.services.audit;

    app.get(
      '/v1/admin/audit',
      {
        schema: {
          tags: ['admin'],
          summary: 'Audit events, newest first (filter by actor, action, subject, time; page with cursor)',
          querystring: listQuery,
          response: { 200: listSchema, ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'audit:read' },
      },
      async (req) => {
        checkWindow(req.query);
        return audit.list(req.query);
      },
    );

    app.get(
      '/v1/admin/audit/export',
      {
        schema: {
          tags: ['admin'],
          summary: 'Download the events the filters match, oldest first, as CSV or JSON lines',
          querystring: exportQuery,
          response: { 200: z.string().describe('CSV (RFC 4180) or JSON lines, as a download'), ...errors },
        },
        config: {
          access: ['admin', 'service'],
          permission: 'audit:read',
          rateLimit: { max: 20, timeWindow: '1 minute' },
        },
      },
      async (req, reply) => {
        checkWindow(req.query);
        const { format, ...filters } = req.query;
        const body = await audit.export(filters, format);
        const stamp = new Date().toISOString().replace(/[:.]/g, '-');
        return reply
          .type(EXPORT_TYPES[format])
          .header('content-disposition', `attachment; filename="agentina-audit-${stamp}.${format}"`)
          .header('cache-control', 'no-store')
          .serializer((payload: unknown) => String(payload))
          .send(body);
      },
    );

    app.get(
      '/v1/admin/audit/verify',
      {
        schema: {
          tags: ['admin'],
          summary: 'Re-walk the audit chain and check every signed checkpoint',
          querystring: verifyQuery,
          response: { 200: verifySchema, ...errors },
        },
        config: {
          access: ['admin', 'service'],
          permission: 'audit:read',
          rateLimit: { max: 20, timeWindow: '1 minute' },
        },
      },
      async (req) => audit.verify(req.query.from),
    );
  };
}
