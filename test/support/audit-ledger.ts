import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PoolClient } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { ensureKeys, loadPurposeKeySet, type KeySet } from '../../protocol';
import { ROOT } from '../../scripts/stack/tools';
import { createTestDatabase, type TestDatabase } from './db';

export type LedgerFixture = { db: TestDatabase; keysDir: string; keys: KeySet };

/**
 * A migrated database and an audit key for one ledger test file, made in beforeAll and removed in
 * afterAll (registered here), with the helpers those files share: appending, reading the
 * sequence numbers, tampering as the superuser, and running the CLI against it.
 */
export function useLedgerFixture(label: string) {
  let f: LedgerFixture | undefined;
  const current = (): LedgerFixture => {
    if (!f) throw new Error('the ledger fixture is made in beforeAll');
    return f;
  };

  beforeAll(async () => {
    const db = await createTestDatabase(label);
    const keysDir = mkdtempSync(path.join(os.tmpdir(), 'agentina-audit-keys-'));
    ensureKeys(keysDir, ['audit']);
    f = { db, keysDir, keys: loadPurposeKeySet(keysDir, 'audit') };
  });

  afterAll(async () => {
    await f?.db.drop();
    if (f) rmSync(f.keysDir, { recursive: true, force: true });
  });

  return {
    current,
    appendOne: (i: number, key?: string) =>
      withTransaction(current().db.pool, (tx) =>
        appendAudit(tx, {
          actor: { kind: 'system', id: 'svc_test' },
          action: 'license.renewed',
          subject: { kind: 'license', id: `lic_${i}` },
          data: { i },
          ...(key ? { idempotencyKey: key } : {}),
        }),
      ),

    seqs: async (): Promise<number[]> => {
      const { rows } = await current().db.adminPool.query<{ seq: string }>(
        'SELECT seq FROM agentina.audit_events ORDER BY seq',
      );
      return rows.map((r) => Number(r.seq));
    },

    /** The attacker: the superuser, turning the append-only triggers off around `fn`. */
    asSuperuserWithoutTriggers: async (
      table: 'audit_events' | 'audit_checkpoints',
      fn: (c: PoolClient) => Promise<unknown>,
    ): Promise<void> => {
      const c = await current().db.adminPool.connect();
      try {
        await c.query(`ALTER TABLE agentina.${table} DISABLE TRIGGER USER`);
        try {
          await fn(c);
        } finally {
          await c.query(
            `ALTER TABLE agentina.${table} ENABLE ALWAYS TRIGGER ${table}_no_update, ENABLE ALWAYS TRIGGER ${table}_no_delete, ENABLE ALWAYS TRIGGER ${table}_no_truncate`,
          );
        }
      } finally {
        c.release();
      }
    },

    cli: (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      const { db, keysDir } = current();
      return new Promise((resolve) => {
        execFile(
          process.execPath,
          [path.join(ROOT, 'bin', 'agentina.js'), ...args],
          {
            cwd: ROOT,
            env: {
              PATH: process.env.PATH,
              HOME: process.env.HOME,
              DATABASE_URL: db.adminUrl,
              AGENTINA_KEYS_DIR: keysDir,
              LOG_LEVEL: 'silent',
            },
          },
          (err, stdout, stderr) =>
            resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    },
  };
}
