import { testServices } from '../support/app';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createAuditActivities } from '../../activities/audit-activities';
import { exportLedger, verifyLedger } from '../../db/audit-ledger';
import { readChainFrom } from '../../db/audit-read-repo';
import {
  auditHash,
  checkpointsFromExport,
  createSigner,
  generateKeyFile,
  systemClock,
  verifyAuditExport,
  type ChainEvent,
  type CheckpointStatement,
  type KeySet,
} from '../../protocol';
import type { TestDatabase } from '../support/db';
import { useLedgerFixture } from '../support/audit-ledger';

/** The superuser as attacker: every kind of tampering is caught and named; exports verify elsewhere. */
const ledger = useLedgerFixture('audittamper');
const { appendOne, asSuperuserWithoutTriggers, cli } = ledger;
let db: TestDatabase;
let keysDir: string;
let keys: KeySet;
beforeAll(() => {
  ({ db, keysDir, keys } = ledger.current());
});

describe('tampering by the superuser is detected', () => {
  let activities: ReturnType<typeof createAuditActivities>;
  let checkpointSeq: number;

  beforeAll(async () => {
    activities = createAuditActivities(testServices({ pool: db.pool, clock: systemClock, keysDir }));
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
    const { rows } = await db.adminPool.query<{ data: unknown }>(
      'SELECT data FROM agentina.audit_events WHERE seq = $1',
      [target],
    );
    await asSuperuserWithoutTriggers('audit_events', (c) =>
      c.query(`UPDATE agentina.audit_events SET data = '{"i": -1}' WHERE seq = $1`, [target]),
    );
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({ seq: target, code: 'HASH_MISMATCH' });
      const run = await cli(['audit', 'verify']);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`BROKEN at sequence ${target}`);
    } finally {
      await asSuperuserWithoutTriggers('audit_events', (c) =>
        c.query('UPDATE agentina.audit_events SET data = $2 WHERE seq = $1', [target, rows[0]!.data]),
      );
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
      await db.adminPool.query(
        `INSERT INTO agentina.audit_events (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
        cols.map((k) => r[k]),
      );
    }
  });

  it('rows cut from the end after a checkpoint (truncation)', async () => {
    const cut = checkpointSeq - 2;
    const { rows } = await db.adminPool.query('SELECT * FROM agentina.audit_events WHERE seq >= $1 ORDER BY seq', [
      cut,
    ]);
    await asSuperuserWithoutTriggers('audit_events', (c) =>
      c.query('DELETE FROM agentina.audit_events WHERE seq >= $1', [cut]),
    );
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({ seq: cut, code: 'TRUNCATED' });
    } finally {
      for (const r of rows as Array<Record<string, unknown>>) {
        const cols = Object.keys(r);
        await db.adminPool.query(
          `INSERT INTO agentina.audit_events (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
          cols.map((k) => r[k]),
        );
      }
    }
  });

  it('rows cut together with the checkpoints stored beside them: caught by checkpoints held elsewhere', async () => {
    const exported: string[] = [];
    await exportLedger(db.pool, { seq: 1 }, (l) => void exported.push(l));
    const heldFile = path.join(keysDir, 'held-export.jsonl');
    writeFileSync(heldFile, `${exported.join('\n')}\n`);
    const cut = checkpointSeq - 2;
    const rows = (await db.adminPool.query('SELECT * FROM agentina.audit_events WHERE seq >= $1 ORDER BY seq', [cut]))
      .rows as Array<Record<string, unknown>>;
    const cps = (await db.adminPool.query('SELECT * FROM agentina.audit_checkpoints ORDER BY id')).rows as Array<
      Record<string, unknown>
    >;
    await asSuperuserWithoutTriggers('audit_events', (c) =>
      c.query('DELETE FROM agentina.audit_events WHERE seq >= $1', [cut]),
    );
    await asSuperuserWithoutTriggers('audit_checkpoints', (c) => c.query('DELETE FROM agentina.audit_checkpoints'));
    try {
      // The database alone now tells a shorter, consistent story: this is the attack exports defend against.
      expect(await verifyLedger(db.pool, keys)).toMatchObject({ ok: true, checkpoints: { total: 0 } });
      expect(
        (await verifyLedger(db.pool, keys, { heldCheckpoints: checkpointsFromExport(exported) })).firstBreak,
      ).toMatchObject({ seq: cut, code: 'TRUNCATED' });
      const run = await cli(['audit', 'verify', '--checkpoints', heldFile]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`BROKEN at sequence ${cut}`);
    } finally {
      for (const r of rows) {
        const cols = Object.keys(r);
        await db.adminPool.query(
          `INSERT INTO agentina.audit_events (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
          cols.map((k) => r[k]),
        );
      }
      for (const r of cps) {
        const cols = Object.keys(r);
        await db.adminPool.query(
          `INSERT INTO agentina.audit_checkpoints (${cols.join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
          cols.map((k) => r[k]),
        );
      }
    }
    expect((await verifyLedger(db.pool, keys, { heldCheckpoints: checkpointsFromExport(exported) })).ok).toBe(true);
  });

  async function insertCheckpointRow(
    statement: CheckpointStatement,
    signature: { kid: string; sig: string },
  ): Promise<void> {
    await db.adminPool.query(
      'INSERT INTO agentina.audit_checkpoints (sequence, hash, time, alg, kid, sig, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [
        statement.sequence,
        statement.hash,
        statement.time,
        'Ed25519',
        signature.kid,
        signature.sig,
        `forged-${Math.random()}`,
      ],
    );
  }

  async function removeCheckpointsAbove(id: number): Promise<void> {
    await asSuperuserWithoutTriggers('audit_checkpoints', (c) =>
      c.query('DELETE FROM agentina.audit_checkpoints WHERE id > $1', [id]),
    );
  }

  it('a forged checkpoint (the real key id, a signature that is not over this statement)', async () => {
    const { rows } = await db.adminPool.query<{ id: string; kid: string; sig: string }>(
      'SELECT id, kid, sig FROM agentina.audit_checkpoints ORDER BY id DESC LIMIT 1',
    );
    const row5 = await db.adminPool.query<{ hash: string }>('SELECT hash FROM agentina.audit_events WHERE seq = 5');
    await insertCheckpointRow({ sequence: 5, hash: row5.rows[0]!.hash, time: new Date().toISOString() }, rows[0]!);
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({
        seq: 5,
        code: 'CHECKPOINT_BAD_SIGNATURE',
      });
    } finally {
      await removeCheckpointsAbove(Number(rows[0]!.id));
    }
  });

  it('a checkpoint signed by a key outside the audit public key set', async () => {
    const { rows } = await db.adminPool.query<{ id: string }>(
      'SELECT id FROM agentina.audit_checkpoints ORDER BY id DESC LIMIT 1',
    );
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
        for (const r of rows)
          await c.query('UPDATE agentina.audit_events SET data = $2, prev_hash = $3, hash = $4 WHERE seq = $1', [
            r.seq,
            r.data,
            r.prevHash,
            r.hash,
          ]);
      });
    await write(forged);
    try {
      expect((await verifyLedger(db.pool, keys)).firstBreak).toMatchObject({
        seq: checkpointSeq,
        code: 'CHECKPOINT_MISMATCH',
      });
      // The export of the rewritten ledger fails the same way on another machine.
      const lines: string[] = [];
      await exportLedger(db.pool, { seq: 1 }, (l) => void lines.push(l));
      expect(verifyAuditExport(lines, keys).firstBreak).toMatchObject({
        seq: checkpointSeq,
        code: 'CHECKPOINT_MISMATCH',
      });
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
