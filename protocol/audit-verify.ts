import { z } from 'zod';
import { ACTOR_KINDS, auditHash, GENESIS_HASH, type AuditContent, type CheckpointStatement } from './audit-chain';
import { hex64, isoTime, signatureSchema } from './schemas';
import { verifySignature, type KeySet, type Signature } from './signer';

/**
 * Verifies an audit chain and its signed checkpoints, from the database or from an export, with
 * nothing but the rows, the checkpoints and a public key set: an auditor can run it anywhere.
 *
 * What it proves: every row hashes to its stored hash, links to the row before it, sequence
 * numbers have no gap, every checkpoint carries a valid signature by a known key and vouches for
 * exactly the row hash at its sequence, and no checkpoint vouches for a row that is missing
 * (rows cut from the end). Rows after the newest checkpoint are linked but not yet signed;
 * the result says how many.
 */

/** One row as exported (JSON lines) and as read back from audit_events. */
export type ChainEvent = AuditContent & { prevHash: string; hash: string };
export type ChainCheckpoint = { id: number; statement: CheckpointStatement; signature: Signature };

export const BREAK_CODES = [
  'SEQUENCE_GAP',
  'PREV_HASH_MISMATCH',
  'HASH_MISMATCH',
  'MALFORMED_ROW',
  'CHECKPOINT_UNKNOWN_KEY',
  'CHECKPOINT_BAD_SIGNATURE',
  'CHECKPOINT_MISMATCH',
  'CHECKPOINT_MISSING',
  'TRUNCATED',
] as const;
export type BreakCode = (typeof BREAK_CODES)[number];

/** The first broken link: the lowest sequence number at which the chain no longer holds. */
export type ChainBreak = { seq: number; code: BreakCode; message: string; checkpointId?: number };

export type ChainVerifyResult = {
  ok: boolean;
  /** First sequence number checked (1 unless verifying from a later row). */
  checkedFrom: number;
  /** Last sequence number that holds (0 when nothing does). */
  checkedThrough: number;
  events: number;
  checkpoints: { total: number; valid: number; latest?: CheckpointStatement & { kid: string } };
  /** Rows after the newest valid checkpoint: linked, not yet covered by a signature. */
  unsignedTail: number;
  firstBreak?: ChainBreak;
};

const MESSAGE: Record<BreakCode, string> = {
  SEQUENCE_GAP: 'a row is missing: sequence numbers are not contiguous',
  PREV_HASH_MISMATCH: "the row's prev_hash is not the previous row's hash",
  HASH_MISMATCH: "the row's content does not hash to its stored hash (edited)",
  MALFORMED_ROW: 'the row cannot be read as an audit event',
  CHECKPOINT_UNKNOWN_KEY: 'a checkpoint is signed by a key that is not in the public key set',
  CHECKPOINT_BAD_SIGNATURE: "a checkpoint's signature does not verify (forged or altered)",
  CHECKPOINT_MISMATCH: 'a signed checkpoint vouches for a different hash at this sequence (rewritten)',
  CHECKPOINT_MISSING: 'the chain records a checkpoint that is no longer stored',
  TRUNCATED: 'a signed checkpoint vouches for rows that are gone (cut from the end)',
};

export type ChainVerifierInput = {
  checkpoints: readonly ChainCheckpoint[];
  keys: KeySet;
  /** Where verification starts. The first row's prev_hash is trusted when this is above 1. */
  from?: number;
};

/**
 * Incremental verifier: push rows in sequence order (any batch size), then finish(). Memory is
 * bounded by the number of checkpoints, not rows, so a long chain streams through it.
 */
export function createChainVerifier(input: ChainVerifierInput) {
  const from = Math.max(1, input.from ?? 1);
  const breaks: ChainBreak[] = [];
  const bySeq = new Map<number, ChainCheckpoint[]>();
  const byId = new Map<number, ChainCheckpoint>();
  let valid = 0;
  let latest: (CheckpointStatement & { kid: string }) | undefined;
  for (const cp of [...input.checkpoints].sort((a, b) => a.id - b.id)) {
    byId.set(cp.id, cp);
    const sig = verifySignature(cp.statement, cp.signature, input.keys);
    if (!sig.ok) {
      const code: BreakCode = sig.code === 'UNKNOWN_KEY' ? 'CHECKPOINT_UNKNOWN_KEY' : 'CHECKPOINT_BAD_SIGNATURE';
      breaks.push({
        seq: cp.statement.sequence,
        code,
        message: `checkpoint ${cp.id}: ${MESSAGE[code]}`,
        checkpointId: cp.id,
      });
      continue;
    }
    valid += 1;
    if (!latest || cp.statement.sequence >= latest.sequence) latest = { ...cp.statement, kid: cp.signature.kid };
    if (cp.statement.sequence < from) continue;
    const list = bySeq.get(cp.statement.sequence) ?? [];
    list.push(cp);
    bySeq.set(cp.statement.sequence, list);
  }

  let expectedSeq = from;
  let prevHash: string | undefined = from === 1 ? GENESIS_HASH : undefined;
  let eventBreak: ChainBreak | undefined;
  let lastGood = from - 1;
  let events = 0;
  let lastSignedSeq = 0;

  function fail(seq: number, code: BreakCode, detail?: string): void {
    eventBreak = { seq, code, message: detail ? `${MESSAGE[code]}: ${detail}` : MESSAGE[code] };
  }

  function push(event: ChainEvent): void {
    if (eventBreak) return;
    events += 1;
    if (event.seq !== expectedSeq) {
      fail(
        expectedSeq,
        'SEQUENCE_GAP',
        event.seq > expectedSeq
          ? `expected ${expectedSeq}, found ${event.seq}`
          : `found ${event.seq} after ${expectedSeq - 1}`,
      );
      return;
    }
    if (prevHash !== undefined && event.prevHash !== prevHash) return fail(event.seq, 'PREV_HASH_MISMATCH');
    let computed: string;
    try {
      const { prevHash: _p, hash: _h, ...content } = event;
      computed = auditHash(event.prevHash, content);
    } catch (err) {
      return fail(event.seq, 'MALFORMED_ROW', (err as Error).message);
    }
    if (computed !== event.hash) return fail(event.seq, 'HASH_MISMATCH');
    for (const cp of bySeq.get(event.seq) ?? []) {
      if (cp.statement.hash !== event.hash) {
        eventBreak = {
          seq: event.seq,
          code: 'CHECKPOINT_MISMATCH',
          message: `checkpoint ${cp.id}: ${MESSAGE.CHECKPOINT_MISMATCH}`,
          checkpointId: cp.id,
        };
        return;
      }
      lastSignedSeq = event.seq;
    }
    if (event.action === 'audit.checkpoint_signed') {
      const id = Number(event.data.checkpointId);
      const cp = byId.get(id);
      if (!cp || cp.statement.sequence !== Number(event.data.sequence) || cp.statement.hash !== event.data.hash) {
        eventBreak = {
          seq: event.seq,
          code: 'CHECKPOINT_MISSING',
          message: `checkpoint ${String(event.data.checkpointId)}: ${MESSAGE.CHECKPOINT_MISSING}`,
        };
        return;
      }
    }
    prevHash = event.hash;
    lastGood = event.seq;
    expectedSeq = event.seq + 1;
  }

  function finish(): ChainVerifyResult {
    const all = [...breaks];
    if (eventBreak) all.push(eventBreak);
    else {
      // Every checkpoint at or above `from` must have met its row on the way.
      const beyond = [...bySeq.keys()].filter((s) => s > lastGood).sort((a, b) => a - b)[0];
      if (beyond !== undefined) {
        const cp = bySeq.get(beyond)![0]!;
        all.push({
          seq: lastGood + 1,
          code: 'TRUNCATED',
          message: `checkpoint ${cp.id} vouches for sequence ${beyond}: ${MESSAGE.TRUNCATED}`,
          checkpointId: cp.id,
        });
      }
    }
    all.sort((a, b) => a.seq - b.seq);
    const firstBreak = all[0];
    const result: ChainVerifyResult = {
      ok: firstBreak === undefined,
      checkedFrom: from,
      checkedThrough: firstBreak ? Math.min(lastGood, firstBreak.seq - 1) : lastGood,
      events,
      checkpoints: { total: input.checkpoints.length, valid, ...(latest ? { latest } : {}) },
      unsignedTail: Math.max(0, lastGood - Math.max(lastSignedSeq, from - 1)),
    };
    if (firstBreak) result.firstBreak = firstBreak;
    return result;
  }

  return { push, finish };
}

/** Verifies rows already in memory. */
export function verifyAuditChain(input: ChainVerifierInput & { events: Iterable<ChainEvent> }): ChainVerifyResult {
  const v = createChainVerifier(input);
  for (const e of input.events) v.push(e);
  return v.finish();
}

// --- the export format: JSON lines ---------------------------------------------------------------

export const EXPORT_FORMAT = 'agentina-audit-export';

const bounded = z.string().min(1).max(300);
export const exportHeaderLine = z.strictObject({
  type: z.literal('header'),
  format: z.literal(EXPORT_FORMAT),
  version: z.literal(1),
  from: z.number().int().min(1),
  exportedAt: isoTime,
});
export const exportEventLine = z.strictObject({
  type: z.literal('event'),
  seq: z.number().int().min(1),
  time: isoTime,
  actor: z.strictObject({ kind: z.enum(ACTOR_KINDS), id: bounded }),
  action: z
    .string()
    .regex(/^[a-z_]+\.[a-z_]+$/)
    .max(100),
  subject: z.strictObject({ kind: bounded, id: bounded }),
  data: z.record(z.string(), z.unknown()),
  idempotencyKey: bounded,
  prevHash: hex64,
  hash: hex64,
});
export const exportCheckpointLine = z.strictObject({
  type: z.literal('checkpoint'),
  id: z.number().int().min(1),
  statement: z.strictObject({ sequence: z.number().int().min(1), hash: hex64, time: isoTime }),
  signature: signatureSchema,
});
export const exportLine = z.discriminatedUnion('type', [exportHeaderLine, exportEventLine, exportCheckpointLine]);
export type ExportLine = z.infer<typeof exportLine>;

export function eventToExportLine(e: ChainEvent): string {
  return JSON.stringify({ type: 'event', ...e });
}

export function checkpointToExportLine(c: ChainCheckpoint): string {
  return JSON.stringify({ type: 'checkpoint', id: c.id, statement: c.statement, signature: c.signature });
}

/**
 * Verifies an export line by line (checkpoints come before events in an export, so it streams).
 * A line that does not parse is reported as a malformed row at the sequence where it sits.
 */
export function createExportVerifier(keys: KeySet) {
  const checkpoints: ChainCheckpoint[] = [];
  let from = 1;
  let verifier: ReturnType<typeof createChainVerifier> | undefined;
  let lastSeq = 0;
  let lineNo = 0;
  let seen = 0;
  let stopped: ChainVerifyResult | undefined;
  const chain = () => (verifier ??= createChainVerifier({ checkpoints, keys, from }));
  const malformed = (detail: string): void => {
    const r = chain().finish();
    const brk: ChainBreak = {
      seq: verifier && lastSeq ? lastSeq + 1 : from,
      code: 'MALFORMED_ROW',
      message: `${MESSAGE.MALFORMED_ROW}: line ${lineNo}: ${detail}`,
    };
    // Reading stopped here, so a checkpoint further on is not evidence of a cut tail.
    const first = r.firstBreak && r.firstBreak.code !== 'TRUNCATED' && r.firstBreak.seq < brk.seq ? r.firstBreak : brk;
    stopped = { ...r, ok: false, checkedThrough: Math.min(r.checkedThrough, first.seq - 1), firstBreak: first };
  };
  function push(raw: string): void {
    if (stopped) return;
    lineNo += 1;
    if (raw.trim() === '') return;
    seen += 1;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return malformed('not JSON');
    }
    const parsed = exportLine.safeParse(json);
    if (!parsed.success) return malformed(parsed.error.issues[0]?.message ?? 'invalid line');
    const line = parsed.data;
    if (line.type === 'header') {
      if (seen !== 1) return malformed('header after the first line');
      from = line.from;
    } else if (seen === 1) {
      return malformed('the first line must be the export header');
    } else if (line.type === 'checkpoint') {
      if (verifier) return malformed('checkpoint after the first event');
      checkpoints.push({ id: line.id, statement: line.statement, signature: line.signature });
    } else {
      const { type: _t, ...event } = line;
      chain().push(event);
      lastSeq = line.seq;
    }
  }
  function finish(): ChainVerifyResult {
    if (!stopped && seen === 0) malformed('empty export');
    return stopped ?? chain().finish();
  }
  return { push, finish };
}

export function verifyAuditExport(lines: Iterable<string>, keys: KeySet): ChainVerifyResult {
  const v = createExportVerifier(keys);
  for (const l of lines) v.push(l);
  return v.finish();
}

/** The checkpoint lines of an export (or of any JSON-lines file): what an auditor keeps offline. */
export function checkpointsFromExport(lines: Iterable<string>): ChainCheckpoint[] {
  const out: ChainCheckpoint[] = [];
  for (const raw of lines) {
    if (!raw.includes('"checkpoint"')) continue;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      continue;
    }
    const parsed = exportCheckpointLine.safeParse(json);
    if (parsed.success)
      out.push({ id: parsed.data.id, statement: parsed.data.statement, signature: parsed.data.signature });
  }
  return out;
}
