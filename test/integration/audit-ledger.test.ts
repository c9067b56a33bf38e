import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PoolClient } from 'pg';
import { createAuditActivities } from '../../activities/audit-activities';
import { exportLedger, verifyLedger } from '../../db/audit-ledger';
import { readChainFrom } from '../../db/audit-read-repo';
import { appendAudit, AUDIT_COMMIT_FLUSH_SQL } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { auditHash, checkpointsFromExport, createSigner, ensureKeys, generateKeyFile, loadPurposeKeySet, systemClock, verifyAuditExport, type ChainEvent, type CheckpointStatement, type KeySet } from '../../protocol';
import { ROOT } from '../../scripts/stack/tools';
import { createTestDatabase, type TestDatabase } from '../support/db';

/** The ledger against a real PostgreSQL: privileges, triggers, transactions, concurrency, tampering. */
let db: TestDatabase;
let keysDir: string;
let keys: KeySet;

const appendOne = (i: number, key?: string) =>
  withTransaction(db.pool, (tx) =>
    appendAudit(tx, { actor: { kind: 'system', id: 'svc_test' }, action: 'license.renewed', subject: { kind: 'license', id: `lic_${i}` }, data: { i }, ...(key ? { idempotencyKey: key } : {}) }),
  );

async function seqs(): Promise<number[]> {
  const { rows } = await db.adminPool.query<{ seq: string }>('SELECT seq FROM agentina.audit_events ORDER BY seq');
  return rows.map((r) => Number(r.seq));
}

/** The attacker: the superuser, turning the append-only triggers off around `fn`. */
async function asSuperuserWithoutTriggers(table: 'audit_events' | 'audit_checkpoints', fn: (c: PoolClient) => Promise<unknown>): Promise<void> {
  const c = await db.adminPool.connect();
  try {
    await c.query(`ALTER TABLE agentina.${table} DISABLE TRIGGER USER`);
    try {
      await fn(c);
    } finally {
      await c.query(`ALTER TABLE agentina.${table} ENABLE ALWAYS TRIGGER ${table}_no_update, ENABLE ALWAYS TRIGGER ${table}_no_delete, ENABLE ALWAYS TRIGGER ${table}_no_truncate`);
    }
  } finally {
    c.release();
  }
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin', 'agentina.js'), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: db.adminUrl, AGENTINA_KEYS_DIR: keysDir, LOG_LEVEL: 'silent' } },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  db = await createTestDatabase('auditledger');
  keysDir = mkdtempSync(path.join(os.tmpdir(), 'agentina-audit-keys-'));
  ensureKeys(keysDir, ['audit']);
  keys = loadPurposeKeySet(keysDir, 'audit');
});

afterAll(async () => {
  await db?.drop();
  if (keysDir) rmSync(keysDir, { recursive: true, force: true });
});

describe('append-only, enforced by privileges and triggers', () => {
  beforeAll(async () => {
    await appendOne(0);
  });

  it.each(['UPDATE agentina.audit_events SET actor_id = $$x$$', 'DELETE FROM agentina.audit_events', 'TRUNCATE agentina.audit_events', 'UPDATE agentina.audit_checkpoints SET kid = $$x$$', 'DELETE FROM agentina.audit_checkpoints', 'TRUNCATE agentina.audit_checkpoints'])(
    'the application role is refused: %s',
    async (sql) => {
      await expect(db.pool.query(sql)).rejects.toMatchObject({ code: '42501' });
    },
  );

  it('the application role cannot write rows into the chain around appendAudit', async () => {
    await expect(
      db.pool.query(
        `INSERT INTO audit_events (seq, time, actor_kind, actor_id, action, subject_kind, subject_id, idempotency_key, prev_hash, hash)
         VALUES (1000, now(), 'system', 'x', 'license.renewed', 'license', 'x', 'rogue', repeat('0', 64), repeat('1', 64))`,
      ),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(db.pool.query("UPDATE audit_head SET seq = 5")).rejects.toMatchObject({ code: '42501' });
  });

  it.each(['UPDATE agentina.audit_events SET actor_id = $$x$$', 'DELETE FROM agentina.audit_events', 'TRUNCATE agentina.audit_events'])(
    'even the superuser hits the ALWAYS triggers, also as a replica: %s',
    async (sql) => {
      const c = await db.adminPool.connect();
      try {
        await c.query('SET session_replication_role = replica');
        await expect(c.query(sql)).rejects.toThrow(/append-only/);
      } finally {
        await c.query('RESET session_replication_role');
        c.release();
      }
    },
  );

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
    const members = await db.adminPool.query("SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = 'pg_write_all_data'");
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
        await appendAudit(tx, { actor: { kind: 'admin', id: 'adm_x' }, action: 'license.revoked', subject: { kind: 'license', id: 'lic_rollback' }, idempotencyKey: 'rolled-back' });
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(await seqs()).toEqual(before);
    const { rows } = await db.adminPool.query("SELECT (SELECT count(*) FROM agentina.audit_events WHERE idempotency_key = 'rolled-back')::int AS chained, (SELECT count(*) FROM agentina.audit_staging)::int AS staged");
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
    const { rows } = await db.adminPool.query("SELECT idempotency_key FROM agentina.audit_events WHERE idempotency_key IN ('once-only', 'raced')");
    expect(rows).toHaveLength(2);
  });

  it('refuses a bad event at append time, before the caller commits anything', async () => {
    const bad = [
      { actor: { kind: 'system' as const, id: 'x'.repeat(201) }, action: 'task.created' as const, subject: { kind: 'task', id: 't' } },
      { actor: { kind: 'root' as unknown as 'system', id: 'x' }, action: 'task.created' as const, subject: { kind: 'task', id: 't' } },
      { actor: { kind: 'system' as const, id: 'x' }, action: 'task.exploded' as unknown as 'task.created', subject: { kind: 'task', id: 't' } },
      { actor: { kind: 'system' as const, id: 'x' }, action: 'task.created' as const, subject: { kind: '', id: 't' } },
      { actor: { kind: 'system' as const, id: 'lone \ud800 surrogate' }, action: 'task.created' as const, subject: { kind: 'task', id: 't' } },
    ];
    for (const event of bad) await expect(withTransaction(db.pool, (tx) => appendAudit(tx, event))).rejects.toThrow(/audit/);
  });

  it('releases the chain lock before the flush only where withTransaction waits for the flush', async () => {
    const settingAfterChaining = async (tx: PoolClient, key: string) => {
      await appendAudit(tx, { actor: { kind: 'system', id: 's' }, action: 'task.created', subject: { kind: 'task', id: key }, idempotencyKey: key });
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
      expect((await c.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit).toBe('on');
    } finally {
      c.release();
    }
    const { rows } = await db.adminPool.query("SELECT idempotency_key FROM agentina.audit_events WHERE idempotency_key IN ('async-managed', 'sync-unmanaged') ORDER BY seq");
    expect(rows.map((r: { idempotency_key: string }) => r.idempotency_key)).toEqual(['async-managed', 'sync-unmanaged']);
  });

  it('the statement run after an asynchronous COMMIT flushes all WAL written before it', async () => {
    const c = await db.pool.connect();
    try {
      for (let i = 0; i < 5; i++) {
        await c.query('BEGIN');
        await c.query("SET LOCAL synchronous_commit = off");
        await c.query("INSERT INTO audit_commit_flush (pid, n) VALUES (-1, 0) ON CONFLICT (pid) DO UPDATE SET n = audit_commit_flush.n + 1");
        await c.query('COMMIT');
        const before = (await c.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0]!.lsn;
        await c.query(AUDIT_COMMIT_FLUSH_SQL);
        const { rows } = await c.query<{ flushed: boolean }>('SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn AS flushed', [before]);
        expect(rows[0]!.flushed).toBe(true);
      }
    } finally {
      c.release();
    }
  });

  it('chains several appends of one transaction in order', async () => {
    await withTransaction(db.pool, async (tx) => {
      for (const k of ['multi-a', 'multi-b', 'multi-c']) await appendAudit(tx, { actor: { kind: 'system', id: 's' }, action: 'task.created', subject: { kind: 'task', id: k }, idempotencyKey: k });
    });
    const { rows } = await db.adminPool.query<{ idempotency_key: string; seq: string }>("SELECT idempotency_key, seq FROM agentina.audit_events WHERE idempotency_key LIKE 'multi-%' ORDER BY seq");
    expect(rows.map((r) => r.idempotency_key)).toEqual(['multi-a', 'multi-b', 'multi-c']);
  });

  it('8 concurrent writers × 50 appends never fork the chain', async () => {
    const start = (await seqs()).length;
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 50; i++) await appendOne(w * 1000 + i, `writer-${w}-${i}`);
    }));
    const all = await seqs();
    expect(all).toHaveLength(start + 400);
    expect(all).toEqual(all.map((_, i) => i + 1));
    const result = await verifyLedger(db.pool, keys);
    expect(result).toMatchObject({ ok: true, checkedThrough: all.length });
  });
});

describe('tampering by the superuser is detected', () => {
  let activities: ReturnType<typeof createAuditActivities>;
  let checkpointSeq: number;

  beforeAll(async () => {
    activities = createAuditActivities({ pool: db.pool, clock: systemClock, keysDir });
    for (let i = 0; i < 10; i++) await appendOne(5000 + i);
    const cp = await activities.signAuditCheckpoint({ workflowId: 'test-checkpoint-1' });
    if (cp.outcome !== 'signed') throw new Error(`expected a checkpoint, got ${cp.outcome}`);
    checkpointSeq = cp.sequence;
    for (let i = 0; i < 5; i++) await appendOne(6000 + i);
  });

  afterEach(async () => {
    // Every case restores what it broke; the chain must hold again, or the next case proves nothing.
    expect(await verifyLedger(db.pool, keys)).toMatchObject({ ok: true });
  });

  it('holds before any tampering, and a second checkpoint run with nothing new signs nothing', async () => {
    const r = await verifyLedger(db.pool, keys);
    expect(r).toMatchObject({ ok: true, checkpoints: { total: 1, valid: 1 } });
    expect(r.unsignedTail).toBeGreaterThan(0);
    const again = await activities.signAuditCheckpoint({ workflowId: 'test-checkpoint-2' });
    expect(again.outcome).toBe('signed');
    expect((await activities.signAuditCheckpoint({ workflowId: 'test-checkpoint-3' })).outcome).toBe('unchanged');
  });

  it('an edited row in the middle: verify and the CLI name its sequence number', async () => {
    const target = 7;
    const { rows } = await db.adminPool.query<{ data: unknown }>('SELECT data FROM agentina.audit_events WHERE seq = $1', [target]);
    await asSuperuserWithoutTriggers('audit_events', (c) => c.query(`UPDATE agentina.audit_events SET data = '{"i": -1}' WHERE seq = $1`, [target]));
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({ seq: target, code: 'HASH_MISMATCH' });
      const run = await cli(['audit', 'verify']);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`BROKEN at sequence ${target}`);
    } finally {
      await asSuperuserWithoutTriggers('audit_events', (c) => c.query('UPDATE agentina.audit_events SET data = $2 WHERE seq = $1', [target, rows[0]!.data]));
    }
    const ok = await cli(['audit', 'verify']);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toContain('audit chain OK');
  });

  it('a deleted row', async () => {
    const { rows } = await db.adminPool.query('SELECT * FROM agentina.audit_events WHERE seq = 4');
    await asSuperuserWithoutTriggers('audit_events', (c) => c.query('DELETE FROM agentina.audit_events WHERE seq = 4'));
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({ seq: 4, code: 'SEQUENCE_GAP' });
    } finally {
      const r = rows[0] as Record<string, unknown>;
      const cols = Object.keys(r);
      await db.adminPool.query(`INSERT INTO agentina.audit_events (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, cols.map((k) => r[k]));
    }
  });

  it('rows cut from the end after a checkpoint (truncation)', async () => {
    const cut = checkpointSeq - 2;
    const { rows } = await db.adminPool.query('SELECT * FROM agentina.audit_events WHERE seq >= $1 ORDER BY seq', [cut]);
    await asSuperuserWithoutTriggers('audit_events', (c) => c.query('DELETE FROM agentina.audit_events WHERE seq >= $1', [cut]));
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({ seq: cut, code: 'TRUNCATED' });
    } finally {
      for (const r of rows as Array<Record<string, unknown>>) {
        const cols = Object.keys(r);
        await db.adminPool.query(`INSERT INTO agentina.audit_events (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, cols.map((k) => r[k]));
      }
    }
  });

  it('rows cut together with the checkpoints stored beside them: caught by checkpoints held elsewhere', async () => {
    const exported: string[] = [];
    await exportLedger(db.pool, { seq: 1 }, (l) => void exported.push(l));
    const heldFile = path.join(keysDir, 'held-export.jsonl');
    writeFileSync(heldFile, `${exported.join('\n')}\n`);
    const cut = checkpointSeq - 2;
    const rows = (await db.adminPool.query('SELECT * FROM agentina.audit_events WHERE seq >= $1 ORDER BY seq', [cut])).rows as Array<Record<string, unknown>>;
    const cps = (await db.adminPool.query('SELECT * FROM agentina.audit_checkpoints ORDER BY id')).rows as Array<Record<string, unknown>>;
    await asSuperuserWithoutTriggers('audit_events', (c) => c.query('DELETE FROM agentina.audit_events WHERE seq >= $1', [cut]));
    await asSuperuserWithoutTriggers('audit_checkpoints', (c) => c.query('DELETE FROM agentina.audit_checkpoints'));
    try {
      // The database alone now tells a shorter, consistent story: this is the attack exports defend against.
      expect(await verifyLedger(db.pool, keys)).toMatchObject({ ok: true, checkpoints: { total: 0 } });
      expect((await verifyLedger(db.pool, keys, { heldCheckpoints: checkpointsFromExport(exported) })).firstBreak).toMatchObject({ seq: cut, code: 'TRUNCATED' });
      const run = await cli(['audit', 'verify', '--checkpoints', heldFile]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`BROKEN at sequence ${cut}`);
    } finally {
      for (const r of rows) {
        const cols = Object.keys(r);
        await db.adminPool.query(`INSERT INTO agentina.audit_events (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, cols.map((k) => r[k]));
      }
      for (const r of cps) {
        const cols = Object.keys(r);
        await db.adminPool.query(`INSERT INTO agentina.audit_checkpoints (${cols.join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, cols.map((k) => r[k]));
      }
    }
    expect((await verifyLedger(db.pool, keys, { heldCheckpoints: checkpointsFromExport(exported) })).ok).toBe(true);
  });

  async function insertCheckpointRow(statement: CheckpointStatement, signature: { kid: string; sig: string }): Promise<void> {
    await db.adminPool.query('INSERT INTO agentina.audit_checkpoints (sequence, hash, time, alg, kid, sig, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      statement.sequence, statement.hash, statement.time, 'Ed25519', signature.kid, signature.sig, `forged-${Math.random()}`,
    ]);
  }

  async function removeCheckpointsAbove(id: number): Promise<void> {
    await asSuperuserWithoutTriggers('audit_checkpoints', (c) => c.query('DELETE FROM agentina.audit_checkpoints WHERE id > $1', [id]));
  }

  it('a forged checkpoint (the real key id, a signature that is not over this statement)', async () => {
    const { rows } = await db.adminPool.query<{ id: string; kid: string; sig: string }>('SELECT id, kid, sig FROM agentina.audit_checkpoints ORDER BY id DESC LIMIT 1');
    const row5 = await db.adminPool.query<{ hash: string }>('SELECT hash FROM agentina.audit_events WHERE seq = 5');
    await insertCheckpointRow({ sequence: 5, hash: row5.rows[0]!.hash, time: new Date().toISOString() }, rows[0]!);
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({ seq: 5, code: 'CHECKPOINT_BAD_SIGNATURE' });
    } finally {
      await removeCheckpointsAbove(Number(rows[0]!.id));
    }
  });

  it('a checkpoint signed by a key outside the audit public key set', async () => {
    const { rows } = await db.adminPool.query<{ id: string }>('SELECT id FROM agentina.audit_checkpoints ORDER BY id DESC LIMIT 1');
    const row6 = await db.adminPool.query<{ hash: string }>('SELECT hash FROM agentina.audit_events WHERE seq = 6');
    const statement = { sequence: 6, hash: row6.rows[0]!.hash, time: new Date().toISOString() };
    await insertCheckpointRow(statement, createSigner(generateKeyFile('audit-attacker')).sign(statement));
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({ seq: 6, code: 'CHECKPOINT_UNKNOWN_KEY' });
    } finally {
      await removeCheckpointsAbove(Number(rows[0]!.id));
    }
  });

  it('a rewritten chain, re-hashed end to end, contradicts the signed checkpoint', async () => {
    // Knowing the hashing rule is not enough without the audit key: the checkpoint pins the head.
    const original = await readChainFrom(db.adminPool, 3);
    let prev = original[0]!.prevHash;
    const forged = original.map((e, i) => {
      const { prevHash: _p, hash: _h, ...content } = e;
      const c = i === 0 ? { ...content, data: { i: 'rewritten' } } : content;
      const row = { ...c, prevHash: prev, hash: auditHash(prev, c) };
      prev = row.hash;
      return row;
    });
    const write = (rows: ChainEvent[]) =>
      asSuperuserWithoutTriggers('audit_events', async (c) => {
        for (const r of rows) await c.query('UPDATE agentina.audit_events SET data = $2, prev_hash = $3, hash = $4 WHERE seq = $1', [r.seq, r.data, r.prevHash, r.hash]);
      });
    await write(forged);
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({ seq: checkpointSeq, code: 'CHECKPOINT_MISMATCH' });
      // The export of the rewritten ledger fails the same way on another machine.
      const lines: string[] = [];
      await exportLedger(db.pool, { seq: 1 }, (l) => void lines.push(l));
      expect(verifyAuditExport(lines, keys).firstBreak).toMatchObject({ seq: checkpointSeq, code: 'CHECKPOINT_MISMATCH' });
    } finally {
      await write(original);
    }
  });
});

describe('export and verify elsewhere', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'agentina-audit-export-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('agentina audit export writes JSON lines that audit verify --file accepts', async () => {
    const out = path.join(dir, 'export.jsonl');
    const exp = await cli(['audit', 'export', '--since', '1', '--out', out]);
    expect(exp.code).toBe(0);
    expect(exp.stdout).toMatch(/exported \d+ row\(s\)/);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(JSON.parse(lines[0]!)).toMatchObject({ type: 'header', from: 1 });
    expect(lines.some((l) => l.includes('"type":"checkpoint"'))).toBe(true);
    expect(statSync(out).mode & 0o777).toBe(0o640);
    const pub = path.join(keysDir, 'audit.pub.json');
    const v = await cli(['audit', 'verify', '--file', out, '--keys', pub]);
    expect(v).toMatchObject({ code: 0 });
    expect(v.stdout).toContain('audit chain OK');
    // Refuses to overwrite an existing export.
    expect((await cli(['audit', 'export', '--out', out])).code).toBe(1);
  });

  it('a tampered export line is caught with its sequence number', async () => {
    const lines: string[] = [];
    await exportLedger(db.pool, { seq: 1 }, (l) => void lines.push(l));
    const i = lines.findIndex((l) => l.includes('"seq":9,'));
    const tampered = [...lines];
    tampered[i] = tampered[i]!.replace('"license.renewed"', '"license.revoked"');
    expect(verifyAuditExport(lines, keys).ok).toBe(true);
    expect(verifyAuditExport(tampered, keys).firstBreak).toMatchObject({ seq: 9, code: 'HASH_MISMATCH' });
    const file = path.join(dir, 'tampered.jsonl');
    writeFileSync(file, `${tampered.join('\n')}\n`);
    const v = await cli(['audit', 'verify', '--file', file, '--keys', path.join(keysDir, 'audit.pub.json')]);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain('BROKEN at sequence 9');
  });

  it('exports from a time or a later sequence, and that partial copy verifies too', async () => {
    const lines: string[] = [];
    const summary = await exportLedger(db.pool, { seq: 10 }, (l) => void lines.push(l));
    expect(summary.from).toBe(10);
    expect(verifyAuditExport(lines, keys)).toMatchObject({ ok: true, checkedFrom: 10 });
    const byTime: string[] = [];
    const s2 = await exportLedger(db.pool, { time: new Date(Date.now() + 60_000) }, (l) => void byTime.push(l));
    expect(s2.events).toBe(0);
    expect((await cli(['audit', 'export', '--since', 'yesterday'])).code).toBe(2);
    // To standard output (the summary goes to stderr, so the stream stays pure JSON lines).
    const piped = await cli(['audit', 'export', '--since', '5']);
    expect(piped.code).toBe(0);
    expect(piped.stderr).toMatch(/exported \d+ row\(s\) \(sequence 5 through/);
    expect(verifyAuditExport(piped.stdout.split('\n'), keys)).toMatchObject({ ok: true, checkedFrom: 5 });
  });
});
