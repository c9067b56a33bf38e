import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json';

/**
 * The audit chain's hashing rule, shared by the writer, `agentina audit verify` and anyone
 * verifying an export elsewhere:  hash = sha256( prev_hash ‖ canonicalJson(content) ), both as
 * UTF-8 text, prev_hash as 64 lowercase hex characters (64 zeros before the first row).
 */
export const GENESIS_HASH = '0'.repeat(64);

export { ACTOR_KINDS } from './enums';
import type { Actor } from './enums';

export type { Actor, ActorKind } from './enums';
export type Subject = { kind: string; id: string };

/** Exactly what is hashed for one row. */
export type AuditContent = {
  seq: number;
  time: string;
  actor: Actor;
  action: string;
  subject: Subject;
  data: Record<string, unknown>;
  idempotencyKey: string;
};

export function auditHash(prevHash: string, content: AuditContent): string {
  return createHash('sha256').update(prevHash, 'utf8').update(canonicalJson(content), 'utf8').digest('hex');
}

/** The signed statement a checkpoint makes about the chain head. */
export type CheckpointStatement = { sequence: number; hash: string; time: string };

/**
 * canonicalJson(content) split around the value of `seq`, for a writer that learns the sequence
 * number only when the row is chained (at commit, in SQL):
 *   canonicalJson(content) === before + String(content.seq) + after
 * Keys sort as action, actor, data, idempotencyKey, seq, subject, time.
 */
export function auditCanonicalParts(content: Omit<AuditContent, 'seq'>): { before: string; after: string } {
  const before = `{"action":${canonicalJson(content.action)},"actor":${canonicalJson(content.actor)},"data":${canonicalJson(content.data)},"idempotencyKey":${canonicalJson(content.idempotencyKey)},"seq":`;
  const after = `,"subject":${canonicalJson(content.subject)},"time":${canonicalJson(content.time)}}`;
  return { before, after };
}
