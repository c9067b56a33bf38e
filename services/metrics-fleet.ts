import type { Pool } from 'pg';
import { readFleetCounts, type FleetCounts } from '../db/metrics-repo';
import { AGENT_STATUSES } from '../protocol/enums';
import type { Metrics } from './metrics';
import { AUTO_DISABLED_REASON } from './webhooks/webhooks-service';

/** How long one read of the fleet counts serves the gauges of a scrape (they are read together). */
const SHARED_READ_MS = 2000;

/**
 * Gauges about the whole deployment, read from PostgreSQL at each scrape: the worker reports them
 * (run several workers and they report the same numbers: alert on max()).
 */
export function registerFleetGauges(metrics: Metrics, deps: { pool: Pool }): void {
  let last: { at: number; read: Promise<FleetCounts> } | null = null;
  const counts = (): Promise<FleetCounts> => {
    const now = performance.now();
    if (!last || now - last.at > SHARED_READ_MS) {
      last = { at: now, read: readFleetCounts(deps.pool, AUTO_DISABLED_REASON) };
      last.read.catch(() => (last = null));
    }
    return last.read;
  };
  metrics.labelledGauge(
    'agentina_webhook_endpoints',
    'Webhook endpoints by state: enabled; disabled (all); auto_disabled (its deliveries ran out of tries); failing (enabled, its last try failed)',
    ['state'],
    async () => {
      const e = (await counts()).webhookEndpoints;
      return [
        { labels: { state: 'enabled' }, value: e.enabled },
        { labels: { state: 'disabled' }, value: e.disabled },
        { labels: { state: 'auto_disabled' }, value: e.autoDisabled },
        { labels: { state: 'failing' }, value: e.failing },
      ];
    },
  );
  metrics.gauge(
    'agentina_webhook_endpoint_consecutive_failures_max',
    'The most consecutive failed delivery tries of any enabled webhook endpoint',
    async () => (await counts()).webhookEndpoints.maxConsecutiveFailures,
  );
  metrics.labelledGauge('agentina_agents', 'Agents by status', ['status'], async () => {
    const rows = (await counts()).agentsByStatus;
    return AGENT_STATUSES.map((status) => ({
      labels: { status },
      value: rows.find((r) => r.status === status)?.count ?? 0,
    }));
  });
}
