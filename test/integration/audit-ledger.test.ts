import type { PoolClient } from 'pg';
import { verifyLedger } from '../../db/audit-ledger';
import { appendAudit, AUDIT_COMMIT_FLUSH_SQL } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { type KeySet } from '../../protocol';
import type { TestDatabase } from '../support/db';
import { useLedgerFixture } from '../support/audit-ledger';

/** The ledger against a real PostgreSQL: privileges, triggers, transactions, concurrency. */
const ledger = useLedgerFixture('auditledger');
const { appendOne, seqs } = ledger;
let db: TestDatabase;
let keys: KeySet;
beforeAll(() => {
  ({ db, keys } = ledger.current());
});

describe('append-only, enforced by privileges and triggers', () => {
  beforeAll(async () => {
    await appendOne(0);
  });

  it.each([
    'UPDATE agentina.audit_events SET actor_id = $$x$$',
    'DELETE FROM agentina.audit_events',
    'TRUNCATE agentina.audit_events',
    'UPDATE agentina.audit_checkpoints SET kid = $$x$$',
    'DELETE FROM agentina.audit_checkpoints',
    'TRUNCATE agentina.audit_checkpoints',
  ])('the application role is refused: %s', async (sql) => {
    await expect(db.pool.query(sql)).rejects.toMatchObject({ code: '42501' });
  });

  it('the application role cannot write rows into the chain around appendAudit', async () => {
    await expect(
      db.pool.query(
        `INSERT INTO audit_events (seq, time, actor_kind, actor_id, action, subject_kind, subject_id, idempotency_key, prev_hash, hash)
         VALUES (1000, now(), 'system', 'x', 'license.renewed', 'license', 'x', 'rogue', repeat('0', 64), repeat('1', 64))`,
      ),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(db.pool.query('UPDATE audit_head SET seq = 5')).rejects.toMatchObject({ code: '42501' });
  });

  it.each([
    'UPDATE agentina.audit_events SET actor_id = $$x$$',
    'DELETE FROM agentina.audit_events',
    'TRUNCATE agentina.audit_events',
  ])('even the superuser hits the ALWAYS triggers, also as a replica: %s', async (sql) => {
    const c = await db.adminPool.connect();
    try {
      await c.query('SET session_replication_role = replica');
      await expect(c.query(sql)).rejects.toThrow(/append-only/);
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
  });

  it('no role short of a superuser holds UPDATE, DELETE or TRUNCATE on the ledger tables', async () => {
    const { rows } = await db.adminPool.query<{ role: string; tbl: string; priv: string }>(`
      SELECT r.rolname AS role, t.tbl, p.priv
        FROM pg_roles r
        CROSS JOIN (VALUES ('agentina.audit_events'), ('agentina.audit_checkpoints')) AS t(tbl)
        CROSS JOIN (VALUES ('UPDATE'), ('DELETE'), ('TRUNCATE')) AS p(priv)
       WHERE NOT r.rolsuper
         AND r.rolname <> 'pg_write_all_data'
         AND has_table_privilege(r.oid, t.tbl, p.priv)`);
    expect(rows).toEqual([]);
    // pg_write_all_data (PostgreSQL 14+) may write every table by definition: nobody may hold it
    // (a member would have shown up above, as has_table_privilege follows memberships).
    const members = await db.adminPool.query(
      "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = 'pg_write_all_data'",
    );
    expect(members.rowCount).toBe(0);
    const owner = await db.adminPool.query<{ owner: string; login: boolean }>(
      "SELECT pg_get_userbyid(c.relowner) AS owner, r.rolcanlogin AS login FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = 'agentina.audit_events'::regclass",
    );
    expect(owner.rows[0]).toEqual({ owner: 'agentina_owner', login: false });
  });
});

describe('appendAudit inside the caller’s transaction', () => {
  it('leaves nothing behind when the caller rolls back', async () => {
    const before = await seqs();
    await expect(
      withTransaction(db.pool, async (tx) => {
        await appendAudit(tx, {
          actor: { kind: 'admin', id: 'adm_x' },
          action: 'license.revoked',
          subject: { kind: 'license', id: 'lic_rollback' },
          idempotencyKey: 'rolled-back',
        });
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(await seqs()).toEqual(before);
    const { rows } = await db.adminPool.query(
      "SELECT (SELECT count(*) FROM agentina.audit_events WHERE idempotency_key = 'rolled-back')::int AS chained, (SELECT count(*) FROM agentina.audit_staging)::int AS staged",
    );
    expect(rows[0]).toEqual({ chained: 0, staged: 0 });
    const head = await db.adminPool.query<{ seq: string }>('SELECT seq FROM agentina.audit_head');
    expect(Number(head.rows[0]!.seq)).toBe(before[before.length - 1]);
  });

  it('writes a row once per idempotency key, even when appended twice', async () => {
    await appendOne(1, 'once-only');
    const again = await appendOne(1, 'once-only');
    expect(again).toEqual({ idempotencyKey: 'once-only', staged: false });
    // Two transactions racing with the same key: both stage, the commit-time trigger keeps one.
    await Promise.all([appendOne(2, 'raced'), appendOne(2, 'raced'), appendOne(2, 'raced')]);
    const { rows } = await db.adminPool.query(
      "SELECT idempotency_key FROM agentina.audit_events WHERE idempotency_key IN ('once-only', 'raced')",
    );
    expect(rows).toHaveLength(2);
  });

  it('refuses a bad event at append time, before the caller commits anything', async () => {
    const bad = [
      {
        actor: { kind: 'system' as const, id: 'x'.repeat(201) },
        action: 'task.created' as const,
        subject: { kind: 'task', id: 't' },
      },
      {
        actor: { kind: 'root' as unknown as 'system', id: 'x' },
        action: 'task.created' as const,
        subject: { kind: 'task', id: 't' },
      },
      {
        actor: { kind: 'system' as const, id: 'x' },
        action: 'task.exploded' as unknown as 'task.created',
        subject: { kind: 'task', id: 't' },
      },
      { actor: { kind: 'system' as const, id: 'x' }, action: 'task.created' as const, subject: { kind: '', id: 't' } },
      {
        actor: { kind: 'system' as const, id: 'lone \ud800 surrogate' },
        action: 'task.created' as const,
        subject: { kind: 'task', id: 't' },
      },
    ];
    for (const event of bad)
      await expect(withTransaction(db.pool, (tx) => appendAudit(tx, event))).rejects.toThrow(/audit/);
  });

  it('releases the chain lock before the flush only where withTransaction waits for the flush', async () => {
    const settingAfterChaining = async (tx: PoolClient, key: string) => {
      await appendAudit(tx, {
        actor: { kind: 'system', id: 's' },
        action: 'task.created',
        subject: { kind: 'task', id: key },
        idempotencyKey: key,
      });
      await tx.query('SET CONSTRAINTS ALL IMMEDIATE'); // fires the commit-time trigger now
      return (await tx.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit;
    };
    expect(await withTransaction(db.pool, (tx) => settingAfterChaining(tx, 'async-managed'))).toBe('off');
    // A transaction appendAudit did not see start (its own BEGIN/COMMIT) keeps a synchronous COMMIT.
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      expect(await settingAfterChaining(c, 'sync-unmanaged')).toBe('on');
      await c.query('COMMIT');
      expect(
        (await c.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit,
      ).toBe('on');
    } finally {
      c.release();
    }
    const { rows } = await db.adminPool.query(
      "SELECT idempotency_key FROM agentina.audit_events WHERE idempotency_key IN ('async-managed', 'sync-unmanaged') ORDER BY seq",
    );
    expect(rows.map((r: { idempotency_key: string }) => r.idempotency_key)).toEqual([
      'async-managed',
      'sync-unmanaged',
    ]);
  });

  it('the statement run after an asynchronous COMMIT flushes all WAL written before it', async () => {
    const c = await db.pool.connect();
    try {
      for (let i = 0; i < 5; i++) {
        await c.query('BEGIN');
        await c.query('SET LOCAL synchronous_commit = off');
        await c.query(
          'INSERT INTO audit_commit_flush (pid, n) VALUES (-1, 0) ON CONFLICT (pid) DO UPDATE SET n = audit_commit_flush.n + 1',
        );
        await c.query('COMMIT');
        const before = (await c.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0]!.lsn;
        await c.query(AUDIT_COMMIT_FLUSH_SQL);
        const { rows } = await c.query<{ flushed: boolean }>(
          'SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn AS flushed',
          [before],
        );
        expect(rows[0]!.flushed).toBe(true);
      }
    } finally {
      c.release();
    }
  });

  it('chains several appends of one transaction in order', async () => {
    await withTransaction(db.pool, async (tx) => {
      for (const k of ['multi-a', 'multi-b', 'multi-c'])
        await appendAudit(tx, {
          actor: { kind: 'system', id: 's' },
          action: 'task.created',
          subject: { kind: 'task', id: k },
          idempotencyKey: k,
        });
    });
    const { rows } = await db.adminPool.query<{ idempotency_key: string; seq: string }>(
      "SELECT idempotency_key, seq FROM agentina.audit_events WHERE idempotency_key LIKE 'multi-%' ORDER BY seq",
    );
    expect(rows.map((r) => r.idempotency_key)).toEqual(['multi-a', 'multi-b', 'multi-c']);
  });

  it('8 concurrent writers × 50 appends never fork the chain', async () => {
    const start = (await seqs()).length;
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 50; i++) await appendOne(w * 1000 + i, `writer-${w}-${i}`);
      }),
    );
    const all = await seqs();
    expect(all).toHaveLength(start + 400);
    expect(all).toEqual(all.map((_, i) => i + 1));
    const result = await verifyLedger(db.pool, keys);
    expect(result).toMatchObject({ ok: true, checkedThrough: all.length });
  });
});
