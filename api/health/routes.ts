import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorSchema } from '../schemas';
import { errorBody } from '../errors';
import type { AppDeps } from '../app';

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

const readySchema = z.object({
  status: z.literal('ready'),
  checks: z.object({
    postgres: z.object({ ok: z.boolean(), ms: z.number() }),
    temporal: z.object({ ok: z.boolean(), ms: z.number() }),
  }),
});

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
          const details = failed.map((f) => ({ path: f.name, message: checks.find((c) => c.name === f.name)!.down }));
          return reply
            .status(503)
            .send(errorBody('NOT_READY', `Not ready: ${details.map((d) => d.message).join('; ')}.`, req.id, details));
        }
        const [pg, temporal] = results as unknown as [{ ok: boolean; ms: number }, { ok: boolean; ms: number }];
        return {
          status: 'ready' as const,
          checks: { postgres: { ok: pg.ok, ms: pg.ms }, temporal: { ok: temporal.ok, ms: temporal.ms } },
        };
      },
    );

    app.get(
      '/metrics',
      {
        schema: { tags: ['health'], summary: 'Prometheus metrics', hide: false },
        config: { rateLimit: false, access: ['anonymous'] },
      },
      async (_req, reply) => {
        return reply.type('text/plain; version=0.0.4').send(deps.metrics.render());
      },
    );
  };
}
