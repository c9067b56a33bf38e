import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { jsonValue, safeString, TASK_STATES } from '../../protocol';
import {
  agentId,
  customerId,
  licenseId,
  nextTaskQuerySchema,
  nextTaskResponseSchema,
  TASK_KINDS,
  taskId,
  taskResultRequestSchema,
  taskResultResponseSchema,
} from '../../protocol';
import type { AppDeps } from '../app';
import { principalOf, type AccessKind, type RoutePermission } from '../auth/access';
import { emptyBody, errorSchema } from '../schemas';

const taskViewSchema = z.strictObject({
  id: taskId,
  agentId,
  licenseId,
  customerId,
  kind: z.string().max(64),
  payload: z.record(z.string(), z.unknown()),
  state: z.enum(TASK_STATES),
  attempts: z.number().int().min(0),
  maxAttempts: z.number().int().min(1),
  leaseExpiresAt: z.string().max(40).nullable(),
  result: z.unknown(),
  error: z.string().max(2000).nullable(),
  createdBy: z.strictObject({ kind: z.string().max(20), id: z.string().max(200) }),
  createdAt: z.string().max(40),
  completedAt: z.string().max(40).nullable(),
});
const createTaskBody = z.strictObject({
  agentId,
  kind: z.enum(TASK_KINDS),
  /** Bounded again after parsing: at most 64 KiB of JSON. */
  payload: z
    .record(safeString(100), jsonValue)
    .refine((p) => Object.keys(p).length <= 100, 'at most 100 top-level fields'),
  maxAttempts: z.number().int().min(1).max(20).optional(),
});
const listQuery = z.strictObject({
  agentId: agentId.optional(),
  state: z.enum(TASK_STATES).optional(),
  before: taskId.optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
});
const taskListSchema = z.strictObject({ items: z.array(taskViewSchema), nextCursor: taskId.nullable() });
const idParams = z.strictObject({ id: taskId });
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };
const writeErrors = { ...errors, 409: errorSchema, 413: errorSchema };

/**
 * Tasks: admin and portal queue and read them (a customer only for its own agents; another's is
 * a 404), agents lease the next one (long-poll) and report results.
 */
export function tasksRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const tasks = deps.services.tasks;

    for (const [scope, kind] of [
      ['admin', 'admin'],
      ['portal', 'customer'],
    ] as const) {
      // Admin routes are open to service tokens with the tasks scope; portal routes to customers.
      const rule = (
        permission: 'tasks:read' | 'tasks:write',
      ): { access: AccessKind[]; permission?: RoutePermission } =>
        kind === 'admin' ? { access: ['admin', 'service'], permission } : { access: ['customer'] };
      const caller = (req: FastifyRequest) =>
        kind === 'admin' ? principalOf(req, 'admin', 'service') : principalOf(req, 'customer');
      app.post(
        `/v1/${scope}/tasks`,
        {
          schema: {
            tags: [scope],
            summary: 'Queue a task for an agent',
            body: createTaskBody,
            response: { 201: taskViewSchema, ...writeErrors },
          },
          config: rule('tasks:write'),
        },
        async (req, reply) => reply.status(201).send(await tasks.create(caller(req), req.body)),
      );

      app.get(
        `/v1/${scope}/tasks`,
        {
          schema: {
            tags: [scope],
            summary: 'Tasks, newest first',
            querystring: listQuery,
            response: { 200: taskListSchema, ...errors },
          },
          config: rule('tasks:read'),
        },
        async (req) => tasks.list(caller(req), req.query),
      );

      app.get(
        `/v1/${scope}/tasks/:id`,
        {
          schema: {
            tags: [scope],
            summary: 'One task',
            params: idParams,
            response: { 200: taskViewSchema, ...errors },
          },
          config: rule('tasks:read'),
        },
        async (req) => tasks.get(caller(req), req.params.id),
      );

      app.post(
        `/v1/${scope}/tasks/:id/cancel`,
        {
          schema: {
            tags: [scope],
            summary: 'Cancel a queued or leased task',
            params: idParams,
            body: emptyBody,
            response: { 200: taskViewSchema, ...writeErrors },
          },
          config: rule('tasks:write'),
        },
        async (req) => tasks.cancel(caller(req), req.params.id),
      );
    }

    const agentRateLimit = {
      max: 1200,
      timeWindow: '1 minute',
      keyGenerator: (req: { principal: { id: string } | null; ip: string }) => req.principal?.id ?? req.ip,
    };

    app.get(
      '/v1/agent/tasks/next',
      {
        schema: {
          tags: ['agent'],
          summary:
            'Lease the next task (parks up to `wait` seconds); null when there is none or the agent may not work',
          querystring: nextTaskQuerySchema,
          response: { 200: nextTaskResponseSchema, ...errors, 429: errorSchema },
        },
        config: { access: ['agent'], rateLimit: agentRateLimit },
      },
      async (req, reply) => {
        const agent = principalOf(req, 'agent');
        const abort = new AbortController();
        reply.raw.once('close', () => abort.abort());
        void reply.header('cache-control', 'no-store');
        return { task: await tasks.next(agent, req.query.wait ?? 0, abort.signal) };
      },
    );

    app.post(
      '/v1/agent/tasks/:id/result',
      {
        schema: {
          tags: ['agent'],
          summary: 'Report the outcome of a leased task',
          params: idParams,
          body: taskResultRequestSchema,
          response: { 200: taskResultResponseSchema, ...writeErrors, 429: errorSchema },
        },
        config: { access: ['agent'], rateLimit: agentRateLimit },
      },
      async (req) => {
        const r = await tasks.complete(principalOf(req, 'agent'), req.params.id, req.body);
        return { id: r.id, state: r.state as 'succeeded' | 'failed' | 'interrupted' | 'rejected' };
      },
    );
  };
}
