import type { Logger } from 'pino';
import type { Metrics } from '../services/metrics';
import type { Services } from '../services';

/**
 * Re-verifies the whole audit chain (links, hashes, every stored checkpoint's signature) at worker
 * start and every `intervalMs`, for the metrics: `agentina_audit_verify_ok` (listed once the first
 * run ended), the time of the last run, and failures. `agentina audit verify --checkpoints <held
 * file>` stays the full check, against checkpoints kept off the database. Returns a stop function.
 */
export function startAuditVerifyWatch(input: {
  audit: Pick<Services['audit'], 'verify'>;
  metrics: Metrics;
  intervalMs: number;
  logger: Pick<Logger, 'error' | 'warn'>;
}): () => void {
  const { metrics } = input;
  if (input.intervalMs <= 0) return () => undefined;
  metrics.declareCounter('agentina_audit_verify_failures_total', 'Audit chain verifications that found a break');
  let last: { ok: boolean; at: number } | null = null;
  let running = false;
  let stopped = false;

  async function verifyOnce(): Promise<void> {
    if (running || stopped) return;
    running = true;
    try {
      const r = await input.audit.verify();
      if (!last) {
        metrics.gauge(
          'agentina_audit_verify_ok',
          '1 when the last audit chain verification passed, 0 when it found a break',
          () => (last!.ok ? 1 : 0),
        );
        metrics.gauge(
          'agentina_audit_verify_last_run_timestamp_seconds',
          'When the audit chain was last verified (Unix time)',
          () => last!.at,
        );
      }
      last = { ok: r.ok, at: Date.now() / 1000 };
      if (!r.ok) {
        metrics.inc('agentina_audit_verify_failures_total', 'Audit chain verifications that found a break');
        input.logger.error({ firstBreak: r.firstBreak }, 'audit chain verification failed');
      }
    } catch (err) {
      // The database away: no verdict, the last one stands (its timestamp ages).
      input.logger.warn({ err }, 'audit chain verification could not run');
    } finally {
      running = false;
    }
  }

  void verifyOnce();
  const timer = setInterval(() => void verifyOnce(), input.intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
