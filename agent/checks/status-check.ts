import {
  signedStatusSchema,
  verifyBatchableSignature,
  type KeySet,
  type SignedStatus,
  type StatusPayload,
} from '../../protocol';
import { fail, pass, type Check } from './check';

export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
/**
 * How far a status version may run ahead of the license document's version. The control plane
 * computes a status version as the license's version plus the agent's own status version (see
 * protocol/agent-api.ts), and the document carries the license's version when it was issued; the
 * lead therefore grows by one with every lifecycle change of the license since the document was
 * issued (renewals, suspensions, resumptions) and every status change of this agent (each
 * offline/online flip counts two). 100 000 covers decades of those; a version beyond it is not a
 * plausible answer (a signing fault, or a bid to make every later answer, a revocation among
 * them, look like a replay) and is refused rather than adopted.
 */
export const MAX_STATUS_VERSION_LEAD = 100_000;

export type StatusAcceptance = { accepted: true; changed: boolean } | { accepted: false; reason: string };

/**
 * Check 3: the last signed status answer. It must be authentic (license key set), about this
 * agent and license, fresh (server time no older than `maxAgeMs`, no more than 5 minutes ahead of
 * the local clock) and good. Answers only move forward: an older version or server time than the
 * one held, or than the newest in the persistent record (`setFloor`), is a replay and is refused,
 * so a recorded "good" answer cannot undo a revocation. A version implausibly far ahead of the
 * license document's is refused too (MAX_STATUS_VERSION_LEAD).
 */
export function createStatusCheck(input: {
  keys: KeySet;
  agentId: string;
  licenseId: string;
  maxAgeMs: (payload: StatusPayload) => number;
  initial: SignedStatus | null;
  /** The version of the license document held now (the bound on status versions); null: none. */
  licenseVersion?: () => number | null;
}) {
  let held: unknown = input.initial;
  /** The newest answer ever accepted, from the persistent record: nothing older is taken, after a restart either. */
  let floor: { version: number; serverTime: string | null } | null = null;

  function implausible(p: StatusPayload): string | null {
    const lv = input.licenseVersion?.() ?? null;
    if (lv === null || p.version <= lv + MAX_STATUS_VERSION_LEAD) return null;
    return `implausible status: version ${p.version} is more than ${MAX_STATUS_VERSION_LEAD} ahead of the license document's version ${lv}`;
  }
  function belowFloor(p: StatusPayload): string | null {
    if (!floor) return null;
    if (p.version < floor.version) return `replayed status: version ${p.version} < ${floor.version} already accepted`;
    if (floor.serverTime && Date.parse(p.serverTime) < Date.parse(floor.serverTime))
      return 'replayed status: server time before the newest answer already accepted';
    return null;
  }

  function authentic(value: unknown): StatusPayload | string {
    const parsed = signedStatusSchema.safeParse(value);
    if (!parsed.success) return 'malformed status answer';
    const v = verifyBatchableSignature(parsed.data.payload, parsed.data.signature, input.keys);
    if (!v.ok) return `status signature rejected: ${v.code}`;
    const p = parsed.data.payload;
    if (p.agentId !== input.agentId || p.licenseId !== input.licenseId) return 'status answer is about another agent';
    return p;
  }

  const check: Check & {
    accept(next: SignedStatus): StatusAcceptance;
    setFloor(f: { version: number; serverTime: string | null }): void;
    payload(): StatusPayload | null;
    held(): unknown;
  } = {
    name: 'status',
    async evaluate(now) {
      if (held === null || held === undefined)
        return fail('STATUS_MISSING', 'no signed status from the control plane yet');
      const p = authentic(held);
      if (typeof p === 'string') return fail('STATUS_TAMPERED', p);
      const replay = belowFloor(p);
      if (replay)
        return fail('STATUS_REPLAYED', `the stored status answer is older than one already accepted (${replay})`);
      const far = implausible(p);
      if (far) return fail('STATUS_IMPLAUSIBLE', far);
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
      const replay = belowFloor(p);
      if (replay) return { accepted: false, reason: replay };
      const far = implausible(p);
      if (far) return { accepted: false, reason: far };
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
    setFloor(f) {
      floor = f.version < 0 ? null : f;
    },
    payload() {
      const p = held ? authentic(held) : null;
      return p && typeof p !== 'string' ? p : null;
    },
    held: () => held,
  };
  return check;
}
