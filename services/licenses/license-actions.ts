import {
  checkChangeTerms,
  checkConvertTrial,
  checkRenew,
  checkResume,
  checkRevoke,
  checkSuspend,
  type Refusal,
} from '../../workflows/license-rules';
import type { LicenseSnapshot } from '../../workflows/license-contract';
import { LICENSE_ACTIONS, type LicenseActionView } from '../../protocol/views';

const FAR = '9998-01-01T00:00:00.000Z';
const probe = { actor: { kind: 'system', id: 'console' }, reason: 'probe', expiresAt: FAR } as const;

/**
 * Which changes the lifecycle would accept in the license's current state, and why not the others:
 * the workflow's own state checks run against well-formed arguments, so only the state decides
 * (a refusal of the arguments a person still has to type is not a reason to hide the action).
 */
export function licenseActions(s: LicenseSnapshot, now: number): LicenseActionView[] {
  const checks: Record<(typeof LICENSE_ACTIONS)[number], () => Refusal | null> = {
    renew: () => checkRenew(s, probe, now),
    convertTrial: () => checkConvertTrial(s, probe, now),
    suspend: () => checkSuspend(s, probe),
    resume: () => checkResume(s, probe),
    revoke: () => checkRevoke(s, probe),
    changeTerms: () => checkChangeTerms(s, { actor: probe.actor, terms: { maxAgents: 1 } }),
  };
  return LICENSE_ACTIONS.map((action) => {
    const refusal = checks[action]();
    return refusal && refusal.type === 'InvalidTransition'
      ? { action, allowed: false, reason: refusal.message }
      : { action, allowed: true, reason: null };
  });
}
