import type { Pool } from 'pg';
import {
  checkpointToExportLine,
  createChainVerifier,
  eventToExportLine,
  EXPORT_FORMAT,
  systemClock,
  type ChainCheckpoint,
  type ChainVerifyResult,
  type Clock,
  type KeySet,
} from '../protocol';
import { listCheckpoints } from './audit-checkpoints-repo';
import { firstSeqAtOrAfter, readChainHead, walkChain } from './audit-read-repo';
import type { Tx } from './pool';

/**
 * Whole-ledger operations over one consistent snapshot (REPEATABLE READ, read only): a chain
 * walk sees the rows and checkpoints as of one instant, however long it takes.
 */
async function inSnapshot<T>(pool: Pool, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Re-walks the stored chain from `from` (default 1) and checks every checkpoint against `keys`.
 * `heldCheckpoints` are checkpoints kept outside the database (e.g. from an earlier export): a
 * superuser who cut rows and deleted the checkpoints stored with them is still caught by these.
 */
export async function verifyLedger(
  pool: Pool,
  keys: KeySet,
  opts: { from?: number; heldCheckpoints?: readonly ChainCheckpoint[] } = {},
): Promise<ChainVerifyResult> {
  return inSnapshot(pool, async (tx) => {
    const from = Math.max(1, opts.from ?? 1);
    const stored = await listCheckpoints(tx);
    const seen = new Set(stored.map((c) => JSON.stringify(c)));
    const held = (opts.heldCheckpoints ?? []).filter((c) => !seen.has(JSON.stringify(c)));
    const verifier = createChainVerifier({ checkpoints: [...stored, ...held], keys, from });
    for await (const batch of walkChain(tx, from)) for (const e of batch) verifier.push(e);
    return verifier.finish();
  });
}

export type ExportSince = { seq: number } | { time: Date };
export type ExportSummary = { from: number; events: number; checkpoints: number; through: number };

/**
 * Writes the ledger as JSON lines: a header, every checkpoint, then the rows from `since` with
 * their hashes. `write` receives one line at a time (without the newline) and may be async.
 */
export async function exportLedger(
  pool: Pool,
  since: ExportSince,
  write: (line: string) => Promise<void> | void,
  clock: Clock = systemClock,
): Promise<ExportSummary> {
  return inSnapshot(pool, async (tx) => {
    let from: number;
    if ('seq' in since) from = Math.max(1, since.seq);
    else from = (await firstSeqAtOrAfter(tx, since.time)) ?? ((await readChainHead(tx))?.seq ?? 0) + 1;
    await write(
      JSON.stringify({
        type: 'header',
        format: EXPORT_FORMAT,
        version: 1,
        from,
        exportedAt: clock.now().toISOString(),
      }),
    );
    const checkpoints = await listCheckpoints(tx);
    for (const c of checkpoints) await write(checkpointToExportLine(c));
    let events = 0;
    let through = from - 1;
    for await (const batch of walkChain(tx, from)) {
      for (const e of batch) {
        await write(eventToExportLine(e));
        events += 1;
        through = e.seq;
      }
    }
    return { from, events, checkpoints: checkpoints.length, through };
  });
}
