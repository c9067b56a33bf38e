import { setTimeout as delay } from 'node:timers/promises';

/** Exponential backoff with full jitter between minMs and a cap that doubles up to maxMs (1-30 s by default). */
export function createBackoff(input: { minMs?: number; maxMs?: number; random?: () => number } = {}) {
  const minMs = input.minMs ?? 1000;
  const maxMs = input.maxMs ?? 30_000;
  const random = input.random ?? Math.random;
  let attempt = 0;
  return {
    next(): number {
      const cap = Math.min(maxMs, minMs * 2 ** attempt);
      attempt = Math.min(attempt + 1, 30);
      return Math.round(minMs + random() * (cap - minMs));
    },
    reset(): void {
      attempt = 0;
    },
  };
}

/** Sleeps, but returns early (without throwing) when the signal aborts. */
export async function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch {
    // aborted: the caller checks its own state
  }
}
