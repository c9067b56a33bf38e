import type { Config } from '../config';
import { secretMatches } from './secrets';

/**
 * Who may read /metrics (counters name routes, pool sizes and agent quarantines: reconnaissance
 * for an attacker). With METRICS_PORT it is served only on its own listener; with METRICS_TOKEN a
 * caller must present `Authorization: Bearer <token>`; with neither it is not served at all.
 *   'hidden':  answer as for a route that does not exist (404)
 *   'denied':  401, asking for the bearer token
 */
export type MetricsAccess = 'allowed' | 'hidden' | 'denied';

export function metricsAccess(
  config: Config['metrics'],
  where: 'public' | 'metrics-listener',
  authorization: string | undefined,
): MetricsAccess {
  if (where === 'public' && (config.listener !== undefined || config.token === undefined)) return 'hidden';
  if (config.token === undefined) return 'allowed'; // its own listener, no token: the network is the guard
  const m = /^Bearer ([^\s]+)$/i.exec(authorization ?? '');
  return secretMatches(m?.[1], config.token) ? 'allowed' : 'denied';
}
