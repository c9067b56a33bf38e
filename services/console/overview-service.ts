import type { Pool } from 'pg';
import { listAuditEvents } from '../../db/audit-read-repo';
import { countAgents, countLicenses, listEndingLicenses } from '../../db/console-repo';
import type { ChainEvent, Clock } from '../../protocol';
import type { AuditAction } from '../../protocol/audit-actions';
import type { OverviewView } from '../../protocol/views';
import { namesOf } from '../audit/audit-service';

const DAY_MS = 86_400_000;
const ENDING_SHOWN = 10;
const EVENTS_SHOWN = 10;

/**
 * What an operator wants to hear about first: licenses and agents that stopped being good, refusals,
 * a webhook endpoint switched off after failing, and an audit checkpoint run that gave up.
 */
export const NOTABLE_ACTIONS: readonly AuditAction[] = [
  'license.revoked',
  'license.suspended',
  'license.grace_started',
  'license.expired',
  'license.update_refused',
  'activation_token.reused',
  'agent.quarantined',
  'agent.fingerprint_mismatch',
  'agent.integrity_mismatch',
  'agent.clone_detected',
  'agent.release_refused',
  'agent.offline',
  'webhook_endpoint.auto_disabled',
  'audit.checkpoint_failed',
];

/** The overview as the service builds it: events with their chain links (the route's schema shows them). */
export type Overview = Omit<OverviewView, 'recentEvents'> & { recentEvents: ChainEvent[] };

/**
 * The admin console's landing page: licenses per state and what ends soon, agents per status,
 * and the newest notable events. Five queries whatever the size of the fleet.
 */
export function createOverviewService(deps: { pool: Pool; clock: Clock }) {
  return {
    async overview(): Promise<Overview> {
      const now = deps.clock.now();
      const [licenses, ending, agents, events] = await Promise.all([
        countLicenses(deps.pool, now),
        listEndingLicenses(deps.pool, new Date(now.getTime() + 30 * DAY_MS), ENDING_SHOWN),
        countAgents(deps.pool),
        listAuditEvents(deps.pool, { actions: NOTABLE_ACTIONS, limit: EVENTS_SHOWN }),
      ]);
      return {
        generatedAt: now.toISOString(),
        licenses: {
          ...licenses,
          endingSoon: ending.map((l) => ({
            id: l.id,
            customerId: l.customer_id,
            customerName: l.customer_name,
            plan: l.plan,
            state: l.state,
            endsAt: l.ends_at.toISOString(),
          })),
        },
        agents: { byStatus: agents },
        recentEvents: events,
        names: await namesOf(deps.pool, events),
      };
    },
  };
}
