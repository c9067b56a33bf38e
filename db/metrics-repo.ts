import type { Queryable } from './pool';

/** Counts the worker's /metrics reports for the whole deployment (one cheap aggregate per table). */
export type FleetCounts = {
  webhookEndpoints: {
    enabled: number;
    disabled: number;
    autoDisabled: number;
    failing: number;
    maxConsecutiveFailures: number;
  };
  agentsByStatus: Array<{ status: string; count: number }>;
};

/** `autoDisabledReason`: the disabled_reason the webhook service writes when tries run out. */
export async function readFleetCounts(db: Queryable, autoDisabledReason: string): Promise<FleetCounts> {
  const [endpoints, agents] = await Promise.all([
    db.query<{ enabled: number; disabled: number; auto_disabled: number; failing: number; max_failures: number }>(
      `SELECT count(*) FILTER (WHERE enabled)::int AS enabled,
              count(*) FILTER (WHERE NOT enabled)::int AS disabled,
              count(*) FILTER (WHERE NOT enabled AND disabled_reason = $1)::int AS auto_disabled,
              count(*) FILTER (WHERE enabled AND consecutive_failures > 0)::int AS failing,
              coalesce(max(consecutive_failures) FILTER (WHERE enabled), 0)::int AS max_failures
         FROM webhook_endpoints`,
      [autoDisabledReason],
    ),
    db.query<{ status: string; count: number }>('SELECT status, count(*)::int AS count FROM agents GROUP BY status'),
  ]);
  const e = endpoints.rows[0]!;
  return {
    webhookEndpoints: {
      enabled: e.enabled,
      disabled: e.disabled,
      autoDisabled: e.auto_disabled,
      failing: e.failing,
      maxConsecutiveFailures: e.max_failures,
    },
    agentsByStatus: agents.rows,
  };
}
