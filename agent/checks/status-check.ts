import {
  signedStatusSchema,
  verifySignature,
  type KeySet,
  type SignedStatus,
  type StatusPayload,
} from '../../protocol';
import { fail, pass, type Check } from './check';

export const MAX_FUTURE_SKEW_MS = 5 * 60_000;

export type StatusAcceptance = { accepted: true; changed: boolean } | { accepted: false; reason: string };

/**
 * Check 3: the last signed status answer. It must be authentic (license key set), about this
 * agent and license, fresh (server time no older than `maxAgeMs`, no more than 5 minutes ahead of
 * the local clock) and good. Answers only move forward: an older version or server time than the
 * one held is a replay and is refused, so a recorded "good" answer cannot undo a revocation.
 */
export function createStatusCheck(input: {
  keys: KeySet;
  agentId: string;
  licenseId: string;
  maxAgeMs: (payload: StatusPayload) => number;
  initial: SignedStatus | null;
}) {
  let held: unknown = input.initial;

  function authentic(value: unknown): StatusPayload | string {
    const parsed = signedStatusSchema.safeParse(value);
    if (!parsed.success) return 'malformed status answer';
    const v = verifySignature(parsed.data.payload, parsed.data.signature, input.keys);
    if (!v.ok) return `status signature rejected: ${v.code}`;
    const p = parsed.data.payload;
    if (p.agentId !== input.agentId || p.licenseId !== input.licenseId) return 'status answer is about another agent';
    return p;
  }

  const check: Check & {
    accept(next: SignedStatus): StatusAcceptance;
    payload(): StatusPayload | null;
    held(): unknown;
  } = {
    name: 'status',
    async evaluate(now) {
      if (held === null || held === undefined)
        return fail('STATUS_MISSING', 'no signed status from the control plane yet');
      const p = authentic(held);
      if (typeof p === 'string') return fail('STATUS_TAMPERED', p);
      const t = now.getTime();
      const serverTime = Date.parse(p.serverTime);
      if (serverTime - t > MAX_FUTURE_SKEW_MS)
        return fail(
          'STATUS_FROM_FUTURE',
          `status server time ${p.serverTime} is more than 5 minutes ahead of this clock`,
        );
      if (t - serverTime > input.maxAgeMs(p)) return fail('STATUS_STALE', `last signed status is from ${p.serverTime}`);
      if (!p.good) {
        if (p.agentStatus === 'quarantined')
          return fail('AGENT_QUARANTINED', p.reason ?? 'the control plane quarantined this agent');
        if (p.agentStatus === 'deregistered') return fail('AGENT_DEREGISTERED', 'this agent was deregistered');
        return fail(`LICENSE_${p.licenseState.toUpperCase()}`, p.reason ?? `the license is ${p.licenseState}`);
      }
      return pass;
    },
    accept(next) {
      const p = authentic(next);
      if (typeof p === 'string') return { accepted: false, reason: p };
      const cur = held ? authentic(held) : null;
      if (cur && typeof cur !== 'string') {
        if (p.version < cur.version)
          return { accepted: false, reason: `replayed status: version ${p.version} < ${cur.version}` };
        if (Date.parse(p.serverTime) < Date.parse(cur.serverTime))
          return { accepted: false, reason: 'replayed status: server time went backwards' };
        const changed = p.version !== cur.version || p.good !== cur.good;
        held = next;
        return { accepted: true, changed };
      }
      held = next;
      return { accepted: true, changed: true };
    },
    payload() {
      const p = held ? authentic(held) : null;
      return p && typeof p !== 'string' ? p : null;
    },
    held: () => held,
  };
  return check;
}
