import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  ACTOR_KINDS,
  canonicalBytes,
  canonicalJson,
  scrubFreeText,
  systemClock,
  type Actor,
  type Clock,
  type SecretKey,
} from '../../protocol';
import type { UpdateOrigin } from '../../workflows/license-contract';

export type { UpdateOrigin };

/**
 * Origin proofs on lifecycle Updates. Anyone who reaches Temporal's frontend can send an Update
 * naming any actor; only the API holds the `update-origin` secret. The API signs (HMAC-SHA256)
 * the workflow id, the Update's name, its canonical arguments, the time and a single-use nonce;
 * the transition activity checks the proof before it writes anything (workflow code can do no
 * crypto), against the workflow's own time of the transition, so a retried activity judges it
 * the same way.
 */
export const ORIGIN_PROOF_MAX_AGE_MS = 10 * 60_000;
/** How far ahead of the workflow's clock the API's may run. */
export const ORIGIN_PROOF_MAX_SKEW_MS = 2 * 60_000;

export type OriginRefusal =
  | 'missing_proof'
  | 'malformed_proof'
  | 'unknown_key'
  | 'bad_proof'
  | 'expired'
  | 'issued_in_future'
  | 'wrong_workflow'
  | 'replayed';

export type OriginVerdict = { ok: true; nonce: string } | { ok: false; reason: OriginRefusal };

const NONCE = /^[A-Za-z0-9_-]{16,64}$/;

function mac(
  secret: Buffer,
  m: { workflowId: string; update: string; args: unknown; issuedAt: string; nonce: string },
) {
  return createHmac('sha256', secret)
    .update(canonicalBytes({ v: 1, ...m }))
    .digest();
}

/** The arguments as the workflow will receive them: JSON, with undefined fields dropped. */
function asSent<T>(args: T): T {
  return JSON.parse(JSON.stringify(args)) as T;
}

/**
 * `clock` dates the proofs this process signs. It is the wall clock unless a test gives another:
 * proofs are judged against the Temporal server's time, which is a wall clock too, whatever
 * clock the process's own rules run on.
 */
export function createUpdateOrigin(deps: { secrets: () => SecretKey[]; clock?: Clock; maxAgeMs?: number }) {
  const maxAgeMs = deps.maxAgeMs ?? ORIGIN_PROOF_MAX_AGE_MS;
  const clock = deps.clock ?? systemClock;
  return {
    maxAgeMs,
    /** The Update's arguments with their proof added. */
    sign<A extends object>(workflowId: string, update: string, args: A): A & { origin: UpdateOrigin } {
      const keys = deps.secrets();
      const key = keys[keys.length - 1]!;
      const plain = asSent(args);
      const issuedAt = clock.now().toISOString();
      const nonce = randomBytes(18).toString('base64url');
      const m = mac(key.secret, { workflowId, update, args: plain, issuedAt, nonce });
      return { ...plain, origin: { kid: key.kid, issuedAt, nonce, mac: m.toString('base64url') } };
    },

    /**
     * Checks the proof carried in `args.origin` for this workflow, Update and (the rest of) `args`,
     * at workflow time `at`; with `actor`, also that it is the actor the proof covers (the one the
     * audit will name).
     */
    verify(input: {
      workflowId: string;
      update: string;
      args: unknown;
      at: Date;
      actor?: Actor | undefined;
    }): OriginVerdict {
      const args = input.args;
      if (args === null || typeof args !== 'object' || Array.isArray(args))
        return { ok: false, reason: 'missing_proof' };
      const { origin, ...claimed } = args as { origin?: unknown } & Record<string, unknown>;
      if (origin === undefined || origin === null) return { ok: false, reason: 'missing_proof' };
      const o = origin as Partial<UpdateOrigin>;
      const issued = typeof o.issuedAt === 'string' ? Date.parse(o.issuedAt) : NaN;
      if (
        typeof o.kid !== 'string' ||
        typeof o.nonce !== 'string' ||
        !NONCE.test(o.nonce) ||
        typeof o.mac !== 'string' ||
        !Number.isFinite(issued)
      )
        return { ok: false, reason: 'malformed_proof' };
      const key = deps.secrets().find((k) => k.kid === o.kid);
      if (!key) return { ok: false, reason: 'unknown_key' };
      let expected: Buffer;
      try {
        expected = mac(key.secret, {
          workflowId: input.workflowId,
          update: input.update,
          args: claimed,
          issuedAt: o.issuedAt!,
          nonce: o.nonce,
        });
      } catch {
        return { ok: false, reason: 'malformed_proof' }; // arguments with no canonical form
      }
      const given = Buffer.from(o.mac, 'base64url');
      if (given.length !== expected.length || !timingSafeEqual(given, expected))
        return { ok: false, reason: 'bad_proof' };
      const at = input.at.getTime();
      if (issued < at - maxAgeMs) return { ok: false, reason: 'expired' };
      if (issued > at + ORIGIN_PROOF_MAX_SKEW_MS) return { ok: false, reason: 'issued_in_future' };
      if ('actor' in input && canonicalJson(claimed.actor ?? null) !== canonicalJson(input.actor ?? null))
        return { ok: false, reason: 'bad_proof' };
      return { ok: true, nonce: o.nonce };
    },
  };
}

export type UpdateOriginService = ReturnType<typeof createUpdateOrigin>;

/**
 * An Update the API did not sign (sent by hand through Temporal's CLI or Web UI, or replayed):
 * nothing was written but the refusal's audit row. Never worth a retry.
 */
export class UpdateRefused extends Error {
  constructor(
    readonly what: string,
    readonly reason: OriginRefusal,
  ) {
    super(
      `Refused: this change to ${what} was not made through the Agentina API (origin check: ${reason}); it is recorded in the audit ledger.`,
    );
    this.name = 'UpdateRefused';
  }
}

/** The actor a refused Update claimed, as the audit may hold it: bounded, and only of a known shape. */
export function claimedActor(a: unknown): { kind: string; id: string } | 'malformed' {
  const x = a as Partial<Actor> | null;
  return x &&
    typeof x === 'object' &&
    (ACTOR_KINDS as readonly string[]).includes(String(x.kind)) &&
    typeof x.id === 'string' &&
    x.id.length <= 200
    ? { kind: String(x.kind), id: scrubFreeText(x.id, 200) }
    : 'malformed';
}

/** A short digest of a refused Update's arguments: distinct attempts get distinct audit keys. */
export function argsDigest(args: unknown): string {
  let text: string;
  try {
    text = canonicalJson(args);
  } catch {
    text = String(JSON.stringify(args));
  }
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** A proof's nonce was spent before: thrown inside the transaction, so the change rolls back. */
export class NonceSpent extends Error {}
