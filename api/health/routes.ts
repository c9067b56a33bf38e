import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorSchema } from '../schemas';
import { errorBody } from '../errors';
import type { AppDeps } from '../app';
import { AppError } from '../errors';
import { metricsAccess } from '../../services/metrics-access';

type Check = { name: 'postgres' | 'temporal'; run: () => Promise<void>; down: string };

async function probe(check: Check, timeoutMs: number): Promise<{ name: string; ok: boolean; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
  });
  try {
    await Promise.race([check.run(), timeout]);
    return { name: check.name, ok: true, ms: Math.round(performance.now() - started) };
  } catch {
    return { name: check.name, ok: false, ms: Math.round(performance.now() - started) };
  } finally {
    clearTimeout(timer);
  }
}

/** Anyone may ask: the answer says up or down, nothing about versions, timings or which part is down. */
const readySchema = z.strictObject({ status: z.literal('ready') });

export function healthRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/livez',
      {
        schema: {
          tags: ['health'],
          summary: 'The process is up',
          response: { 200: z.object({ status: z.literal('ok') }) },
        },
        config: { rateLimit: false, access: ['anonymous'] },
      },
      async () => ({ status: 'ok' as const }),
    );

    app.get(
      '/readyz',
      {
        schema: {
          tags: ['health'],
          summary: 'PostgreSQL and Temporal both answer',
          response: { 200: readySchema, 503: errorSchema },
        },
        config: { rateLimit: false, access: ['anonymous'] },
      },
      async (req, reply) => {
        const checks: Check[] = [
          {
            name: 'postgres',
            run: () => deps.services.pingDatabase(),
            down: 'PostgreSQL is not answering',
          },
          { name: 'temporal', run: () => deps.temporal.ping(2000), down: 'Temporal is not answering' },
        ];
        const results = await Promise.all(checks.map((c) => probe(c, 2500)));
        const failed = results.filter((r) => !r.ok);
        if (failed.length) {
          // Which part is down, and how slow the rest were, is for the operator's log only.
          req.log.warn(
            { down: failed.map((f) => checks.find((c) => c.name === f.name)!.down), checks: results },
            'not ready',
          );
          return reply.status(503).send(errorBody('NOT_READY', 'Not ready.', req.id));
        }
        return { status: 'ready' as const };
      },
    );

    app.get(
      '/metrics',
      {
        schema: {
          tags: ['health'],
          summary:
            'Prometheus metrics (METRICS_TOKEN bearer; 404 here when METRICS_PORT serves them or neither is set)',
          security: [{ metricsToken: [] }],
        },
        config: { rateLimit: false, access: ['anonymous'] },
      },
      async (req, reply) => {
        const access = metricsAccess(deps.config.metrics, 'public', req.headers.authorization);
        if (access === 'hidden')
          return reply.status(404).send(errorBody('NOT_FOUND', `No route ${req.method} /metrics`, req.id));
        if (access === 'denied')
          throw new AppError('UNAUTHENTICATED', 'Present the metrics bearer token.', undefined, {
            'www-authenticate': 'Bearer realm="metrics"',
          });
        return reply.type(deps.metrics.contentType).send(await deps.metrics.render());
      },
    );
  };
}
