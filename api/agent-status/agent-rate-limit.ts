import { AppError } from '../errors';

/**
 * A per-agent request budget (fixed one-minute windows), cheap enough for the hottest agent
 * route: one Map lookup per request, and the whole map is dropped when the window turns.
 * A long-polling agent holds one request at a time; this only stops a runaway loop.
 */
export function createAgentRateLimit(
  maxPerWindow: number,
  windowMs = 60_000,
  now: () => number = () => performance.now(),
) {
  let windowStart = now();
  let counts = new Map<string, number>();
  return {
    /** Counts one request; throws RATE_LIMITED (with Retry-After) past the budget. */
    take(agentId: string): void {
      const t = now();
      if (t - windowStart >= windowMs) {
        windowStart = t;
        counts = new Map();
      }
      const n = (counts.get(agentId) ?? 0) + 1;
      counts.set(agentId, n);
      if (n > maxPerWindow) {
        const retryAfter = Math.max(1, Math.ceil((windowStart + windowMs - t) / 1000));
        throw new AppError('RATE_LIMITED', 'Too many requests from this agent; try again later.', undefined, {
          'retry-after': String(retryAfter),
        });
      }
    },
  };
}
