import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AGENT_STATUSES, customerId, LICENSE_STATES, licenseId } from '../../protocol';
import type { AppDeps } from '../app';
import { auditEventSchema, namesSchema } from '../audit/routes';
import { errorSchema } from '../schemas';

const count = z.number().int().min(0);
const isoOut = z.string().max(40);
/** `{ <each value>: count }`, every key present. */
const countsOf = <K extends string>(keys: readonly K[]) =>
  z.strictObject(Object.fromEntries(keys.map((k) => [k, count])) as Record<K, typeof count>);

const overviewSchema = z.strictObject({
  generatedAt: isoOut,
  licenses: z.strictObject({
    byState: countsOf(LICENSE_STATES),
    endingWithin7Days: count,
    endingWithin30Days: count,
    endingSoon: z.array(
      z.strictObject({
        id: licenseId,
        customerId,
        customerName: z.string().max(200),
        plan: z.string().max(100),
        state: z.enum(LICENSE_STATES),
        endsAt: isoOut,
      }),
    ),
  }),
  agents: z.strictObject({
    byStatus: countsOf(AGENT_STATUSES),
  }),
  recentEvents: z.array(auditEventSchema),
  names: namesSchema,
});

/** GET /v1/admin/overview: the admin console's landing page, in one call. */
export function consoleRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/v1/admin/overview',
      {
        schema: {
          tags: ['admin'],
          summary: 'Licenses per state and ending soon, agents per status, the newest notable events',
          response: { 200: overviewSchema, 401: errorSchema, 403: errorSchema, 429: errorSchema },
        },
        config: { access: ['admin', 'service'], permission: 'licenses:read' },
      },
      async () => deps.services.console.overview(),
    );
  };
}
