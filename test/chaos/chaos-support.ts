import { loadPurposeKeySet, type Actor } from '../../protocol';
import { verifyLedger } from '../../db/audit-ledger';
import { AppError } from '../../services/errors';
import type { TestDatabase } from '../support/db';

/**
 * What every chaos scenario shares. `npm run chaos` runs them at full scale (CHAOS_SCALE=full);
 * `npm test` (and CI) at a tenth or less.
 */
export const FULL = process.env.CHAOS_SCALE === 'full';
export const scale = (full: number, small: number) => (FULL ? full : small);
export const admin: Actor = { kind: 'admin', id: 'adm_chaosmonkey000000001' };
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Retries a change the way a client holding an Idempotency-Key does, while the API answers 503. */
export async function untilLanded<T>(fn: () => Promise<T>, seen: { unavailable: number; other: string[] }): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AppError && err.code === 'UNAVAILABLE') {
        seen.unavailable++;
        await sleep(300);
        continue;
      }
      // Anything else would reach the caller as a 500 (or a wrong 4xx): the scenario fails.
      seen.other.push(err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err));
      throw err;
    }
  }
}

/** Every license's audited transitions: one row per version, none twice, none missing. */
export async function transitionsOf(db: Pick<TestDatabase, 'pool'>, ids: string[]): Promise<Map<string, string[]>> {
  const { rows } = await db.pool.query<{ subject_id: string; action: string; idempotency_key: string }>(
    `SELECT subject_id, action, idempotency_key FROM audit_events
      WHERE subject_kind = 'license' AND subject_id = ANY($1) AND action LIKE 'license.%' ORDER BY seq`,
    [ids],
  );
  const out = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const r of rows) out.get(r.subject_id)!.push(r.action);
  const keys = rows.map((r) => r.idempotency_key);
  expect(new Set(keys).size).toBe(keys.length);
  return out;
}

export async function expectLedgerVerifies(db: Pick<TestDatabase, 'adminPool'>, keysDir: string): Promise<void> {
  const result = await verifyLedger(db.adminPool, loadPurposeKeySet(keysDir, 'audit'));
  expect(result.ok).toBe(true);
}
