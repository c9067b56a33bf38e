import type { Agent } from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { httpsRequest } from './http-client';

/**
 * The registered task kinds. Each handler validates its payload with its own schema and honours
 * the abort signal (drain timeout). A kind not in the registry is rejected, never guessed at.
 */
export type TaskContext = { signal: AbortSignal; httpGetAllow: readonly string[]; httpsAgent: Agent };
export type TaskHandler = { payload: z.ZodType; run(payload: unknown, ctx: TaskContext): Promise<unknown> };

const echo: TaskHandler = {
  payload: z.record(z.string().max(100), z.unknown()),
  run: async (payload) => ({ echo: payload }),
};

const sleep: TaskHandler = {
  payload: z.strictObject({ ms: z.number().int().min(0).max(3_600_000) }),
  async run(payload, ctx) {
    const { ms } = payload as { ms: number };
    await delay(ms, undefined, { signal: ctx.signal });
    return { sleptMs: ms };
  },
};

const HTTP_GET_MAX_BYTES = 256 * 1024;
const httpGet: TaskHandler = {
  payload: z.strictObject({
    url: z.string().url().max(2000),
    headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/), z.string().max(2000)).optional(),
    timeoutMs: z.number().int().min(100).max(60_000).optional(),
  }),
  async run(payload, ctx) {
    const p = payload as { url: string; headers?: Record<string, string>; timeoutMs?: number };
    const url = new URL(p.url);
    if (url.protocol !== 'https:' || !ctx.httpGetAllow.includes(url.origin))
      throw new Error(`http.get: ${url.origin} is not on the allow-list`);
    const res = await httpsRequest(ctx.httpsAgent, {
      method: 'GET',
      url,
      headers: p.headers ?? {},
      timeoutMs: p.timeoutMs ?? 10_000,
      signal: ctx.signal,
      maxBytes: HTTP_GET_MAX_BYTES,
    });
    const type = res.headers['content-type'];
    return {
      status: res.status,
      contentType: typeof type === 'string' ? type.slice(0, 200) : null,
      body: res.body.toString('utf8').slice(0, 64 * 1024),
    };
  },
};

export function createTaskHandlers(): ReadonlyMap<string, TaskHandler> {
  return new Map<string, TaskHandler>([
    ['echo', echo],
    ['sleep', sleep],
    ['http.get', httpGet],
  ]);
}
