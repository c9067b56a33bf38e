import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { App } from '../../api/app';
import { registeredRoutes, type AccessKind } from '../../api/auth/access';
import { ERROR_STATUS } from '../../api/errors';
import { newId } from '../../protocol';
import { buildTestApp } from '../support/app';
import { createAgent, createAgentWithLicense, createLicense } from '../support/agent-server-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/db';
import {
  buildRequest,
  mutationsArb,
  operationsOf,
  HOSTILE_STRINGS,
  skeletonArb,
  targetsOf,
  type IdFixtures,
  type HostileRequest,
  type Operation,
} from '../support/hostile-input';
import {
  mintSession,
  nextIp,
  seedAdmin,
  seedCustomer,
  seedCustomerUser,
  seedServiceAccount,
} from '../support/identity';

/**
 * Every operation in the app's own OpenAPI document (so a new route is covered without editing
 * this file) × anonymous, admin, customer, service account and agent × generated hostile requests
 * (test/support/hostile-input.ts): NUL and other control characters, unpaired surrogates, 1 MB
 * strings, 10,000-deep nesting, huge, infinite and negative numbers, wrong types, unknown,
 * duplicate, `__proto__` and `constructor` keys, in bodies, queries, paths and headers.
 *
 * Each answer must be below 500, every 4xx in the one error shape with its code's status, and
 * nothing may be written: the row count of every table in the agentina schema, the audit head and
 * the license and agent versions are the same after each request as before it. No refusal here
 * legitimately writes: hostile input is refused at parsing or validation, before any handler (a
 * login attempt, a CSRF refusal or a reused token, which do write, never happen: every case
 * carries a refused change and same-origin JSON headers).
 *
 * Seeded: AGENTINA_FUZZ_SEED=<n> replays a run; the seed is printed with any failure.
 */
const PRINCIPALS = ['anonymous', 'admin', 'customer', 'service', 'agent'] as const;
type PrincipalName = (typeof PRINCIPALS)[number];
/** Cases per operation for a principal its access rule lets in, and for one it refuses. */
const RUNS_ALLOWED = 8;
const RUNS_REFUSED = 2;

describe('hostile input, generated, against every documented route', () => {
  let db: TestDatabase;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  let app: App;
  let ops: Operation[];
  let access: Map<string, readonly AccessKind[]>;
  let ids: IdFixtures;
  let credentials: Record<PrincipalName, () => Promise<Record<string, string>>>;
  let snapshotSql: string;
  const seed = Number(process.env.AGENTINA_FUZZ_SEED ?? Date.now() % 2 ** 31);

  beforeAll(async () => {
    db = await createTestDatabase('hostile');
    t = await buildTestApp({ pool: db.pool });
    app = t.app;
    ops = operationsOf(app.swagger());
    access = new Map(registeredRoutes(app).map((r) => [`${r.method} ${r.url}`, r.access]));

    const admin = await seedAdmin(db.pool, { cheap: true });
    const spareAdmin = await seedAdmin(db.pool, { cheap: true });
    const customer = await seedCustomer(db.pool, 'Customer A');
    const user = await seedCustomerUser(db.pool, customer.id, { cheap: true });
    const spareUser = await seedCustomerUser(db.pool, customer.id, { cheap: true });
    const service = await seedServiceAccount(db.pool);
    const spareService = await seedServiceAccount(db.pool);
    // Rows of customer A for the skeletons' ids: a license, an agent on it, a queued task, a token.
    const licenseId = await createLicense(db.pool, customer.id);
    const { agentId } = await createAgent(db.pool, licenseId, customer.id);
    const taskId = newId('tsk');
    await db.pool.query(
      `INSERT INTO tasks (id, agent_id, license_id, customer_id, kind, payload, created_by_kind, created_by_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, 'echo', '{}', 'admin', $5, now(), now())`,
      [taskId, agentId, licenseId, customer.id, admin.id],
    );
    const tokenId = newId('tok');
    await db.pool.query(
      `INSERT INTO activation_tokens (id, license_id, customer_id, token_hash, created_by_kind, created_by_id, expires_at)
       VALUES ($1, $2, $3, $4, 'admin', $5, now() + interval '1 day')`,
      [tokenId, licenseId, customer.id, createHash('sha256').update(tokenId).digest('hex'), admin.id],
    );
    ids = {
      adm: spareAdmin.id,
      cus: customer.id,
      usr: spareUser.id,
      svcacct: spareService.id,
      lic: licenseId,
      agt: agentId,
      tsk: taskId,
      tok: tokenId,
    };
    credentials = {
      anonymous: async () => ({}),
      admin: async () => ({
        cookie: (await mintSession(db.pool, 'admin', admin)).cookie,
        'sec-fetch-site': 'same-origin',
      }),
      customer: async () => ({
        cookie: (await mintSession(db.pool, 'customer', user)).cookie,
        'sec-fetch-site': 'same-origin',
      }),
      service: async () => ({ authorization: `Bearer ${service.token}` }),
      agent: async () => ({ authorization: `Bearer ${(await createAgentWithLicense(db.pool)).credential}` }),
    };

    const { rows } = await db.adminPool.query<{ tablename: string }>(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'agentina' ORDER BY tablename",
    );
    snapshotSql = `SELECT ${[
      ...rows.map((r) => `(SELECT count(*) FROM agentina.${r.tablename}) AS "${r.tablename}"`),
      `(SELECT coalesce(max(seq), 0) || ':' || coalesce(max(hash), '') FROM agentina.audit_events
         WHERE seq = (SELECT max(seq) FROM agentina.audit_events)) AS "audit head"`,
      `(SELECT coalesce(sum(version), 0) FROM agentina.licenses) AS "license versions"`,
      `(SELECT coalesce(sum(status_version), 0) FROM agentina.agents) AS "agent status versions"`,
    ].join(', ')}`;
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const snapshot = async () =>
    (await db.adminPool.query<Record<string, string>>({ name: 'hostile-snapshot', text: snapshotSql })).rows[0]!;
  const differences = (a: Record<string, string>, b: Record<string, string>) =>
    Object.keys(a)
      .filter((k) => a[k] !== b[k])
      .map((k) => `${k}: ${a[k]} → ${b[k]}`);

  const ERROR_KEYS = ['code', 'details', 'message', 'requestId'];
  /** Why `body` is not the one error shape for `status`, or null. */
  function shapeProblem(status: number, body: string): string | null {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return `not JSON: ${body.slice(0, 200)}`;
    }
    const p = parsed as { error?: Record<string, unknown> };
    if (!p || typeof p !== 'object' || Object.keys(p).join() !== 'error' || !p.error) return 'not { error }';
    const e = p.error;
    if (Object.keys(e).some((k) => !ERROR_KEYS.includes(k))) return `unexpected keys ${Object.keys(e).join()}`;
    if (typeof e.message !== 'string' || typeof e.requestId !== 'string') return 'message/requestId missing';
    const code = e.code as keyof typeof ERROR_STATUS;
    if (ERROR_STATUS[code] !== status) return `code ${String(e.code)} with status ${status}`;
    if (e.details !== undefined) {
      const ok =
        Array.isArray(e.details) &&
        e.details.every(
          (d: unknown) =>
            typeof (d as { path?: unknown }).path === 'string' &&
            typeof (d as { message?: unknown }).message === 'string',
        );
      if (!ok) return 'details not [{ path, message }]';
    }
    return null;
  }

  const stats = { cases: 0, refused: 0, answered: 0, byStatus: new Map<number, number>() };

  /** Sends one request; what is wrong with its answer and with the database afterwards. */
  async function runCase(
    op: Operation,
    principal: PrincipalName,
    creds: Record<string, string>,
    req: HostileRequest,
    before: Record<string, string>,
  ): Promise<{ list: string[]; after: Record<string, string> }> {
    const headers: Record<string, string> = { ...req.headers, ...creds };
    if (req.payload !== undefined) headers['content-type'] = 'application/json';
    const res = await app.inject({
      method: req.method as 'GET',
      url: req.url,
      headers,
      remoteAddress: nextIp(),
      ...(req.payload !== undefined ? { payload: req.payload } : {}),
    });
    const after = await snapshot();
    stats.cases++;
    stats.byStatus.set(res.statusCode, (stats.byStatus.get(res.statusCode) ?? 0) + 1);
    if (res.statusCode >= 400) stats.refused++;
    else stats.answered++;
    const what = `${op.method} ${req.url.slice(0, 160)} as ${principal} [${req.applied.join('; ')}] body ${String(req.payload).slice(0, 200)}`;
    const unsafe = req.payload !== undefined;
    const list = [
      // A state-changing request with a hostile change is refused; a read may ignore what it does not read.
      ...(unsafe && res.statusCode < 400 ? [`a state-changing request was not refused (${res.statusCode})`] : []),
      ...(res.statusCode >= 500 ? [`answered ${res.statusCode}: ${res.body.slice(0, 300)}`] : []),
      ...(res.statusCode >= 400 ? [shapeProblem(res.statusCode, res.body)].filter((p) => p !== null) : []),
      ...differences(before, after).map((d) => `wrote: ${d}`),
    ];
    return { list: list.length ? [`${what}: ${list.join('; ')}`] : [], after };
  }

  const routeKey = (op: Operation) => `${op.method} ${op.path.replace(/\{(\w+)\}/g, ':$1')}`;
  const mayCall = (op: Operation, principal: PrincipalName) => {
    const kinds = access.get(routeKey(op)) ?? [];
    return kinds.includes('anonymous') || (kinds as readonly string[]).includes(principal);
  };

  it('documents the routes it walks', () => {
    // Every documented operation is a registered route (so the access rules below are the app's own).
    const missing = ops.map(routeKey).filter((k) => !access.has(k));
    expect(missing).toEqual([]);
    expect(ops.length).toBeGreaterThan(70);
  });

  it('answers every hostile request below 500, refusals in the one error shape, and writes nothing', async () => {
    const started = performance.now();
    const failures: string[] = [];
    for (const op of ops) {
      for (const principal of PRINCIPALS) {
        const allowed = mayCall(op, principal);
        const creds = await credentials[principal]();
        let before = await snapshot();
        const property = fc.asyncProperty(skeletonArb(op, ids), mutationsArb, async (skeleton, mutations) => {
          const problems = await runCase(op, principal, creds, buildRequest(op, skeleton, mutations), before);
          before = problems.after;
          if (problems.list.length) throw new Error(problems.list.join('; '));
        });
        try {
          await fc.assert(property, {
            seed: seed + stats.cases,
            numRuns: allowed ? RUNS_ALLOWED : RUNS_REFUSED,
            endOnFailure: true,
          });
        } catch (err) {
          const cause = (err as Error & { cause?: unknown }).cause;
          failures.push(
            `[seed ${seed}] ${cause instanceof Error ? cause.message.slice(0, 1500) : ''}\n${(err as Error).message.slice(0, 600)}`,
          );
        }
      }
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    process.stderr.write(
      `hostile input: ${ops.length} operations × ${PRINCIPALS.length} principals, ${stats.cases} cases in ${seconds} s ` +
        `(seed ${seed}; ${stats.refused} refused, ${stats.answered} answered; by status ${JSON.stringify(
          Object.fromEntries([...stats.byStatus].sort(([a], [b]) => a - b)),
        )})\n`,
    );
    expect(failures).toEqual([]);
  }, 600_000);
  it('refuses a NUL and an unpaired surrogate in every input field of every route, from a caller it lets in', async () => {
    const failures: string[] = [];
    let fields = 0;
    for (const op of ops) {
      const principal = PRINCIPALS.find((p) => p !== 'anonymous' && mayCall(op, p)) ?? 'anonymous';
      const creds = await credentials[principal]();
      const [skeleton] = fc.sample(skeletonArb(op, ids), { seed, numRuns: 1 });
      let before = await snapshot();
      const targets = targetsOf(op, skeleton!);
      for (let target = 0; target < targets.length; target++) {
        fields++;
        for (const hostile of ['a\u0000b', 'lone \ud800 high']) {
          const pick = HOSTILE_STRINGS.indexOf(hostile as (typeof HOSTILE_STRINGS)[number]);
          const req = buildRequest(op, skeleton!, [{ kind: 'control', target, pick }]);
          const result = await runCase(op, principal, creds, req, before);
          before = result.after;
          failures.push(...result.list);
        }
      }
    }
    process.stderr.write(`hostile input: NUL and unpaired surrogate in ${fields} fields of ${ops.length} operations\n`);
    expect(failures).toEqual([]);
  }, 600_000);
});
