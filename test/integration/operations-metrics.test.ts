import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../scripts/stack/ports';
import { ROOT } from '../../scripts/stack/tools';
import { TEST_METRICS_TOKEN } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestKeysDir, eventually } from '../support/license-helpers';
import { startOwnTemporal, type OwnTemporal } from '../support/own-temporal';

/**
 * The alerts docs/operations.md tells an operator to set up name metrics; this scrapes the real
 * processes (`agentina serve` and `agentina worker`, each on its metrics listener) and fails when
 * any metric the alerts table names is not exposed, so the table and the code cannot drift apart.
 */
jest.setTimeout(240_000);

/** Metric names in the "Alerts that matter" table of docs/operations.md. */
function alertMetricNames(): string[] {
  const doc = readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
  const section = doc.split(/^## Alerts that matter$/m)[1]?.split(/^## /m)[0];
  if (!section) throw new Error('docs/operations.md has no "Alerts that matter" section');
  const rows = section.split('\n').filter((l) => l.startsWith('|'));
  const names = new Set<string>();
  for (const row of rows)
    for (const m of row.matchAll(/\b((?:agentina|temporal|process|nodejs)_[a-z0-9_]+)\b/g)) names.add(m[1]!);
  return [...names].sort();
}

/** The metric families a scrape declares (`# TYPE name kind`). */
function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** Whether `name` is exposed: a family itself, or a histogram's `_bucket`/`_sum`/`_count` series. */
function exposes(declared: Map<string, string>, name: string): boolean {
  if (declared.has(name)) return true;
  const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
  return base !== undefined && declared.get(base) === 'histogram';
}

describe('the metrics the alerts in docs/operations.md name', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let temporal: OwnTemporal;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('opsmetrics');
    keys = createTestKeysDir();
    temporal = await startOwnTemporal();
  });

  afterAll(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGTERM');
        await new Promise((r) => c.once('exit', r));
      }
    }
    await temporal?.stop();
    await db?.drop();
    keys?.remove();
  });

  const run = (command: 'serve' | 'worker', env: Record<string, string>): void => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentina.js'), command], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: db.adminUrl,
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_TASK_QUEUE: 'ops-metrics',
        AGENTINA_KEYS_DIR: keys.dir,
        METRICS_TOKEN: TEST_METRICS_TOKEN,
        LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(child);
  };

  const scrape = async (port: number, token = TEST_METRICS_TOKEN) =>
    fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${token}` } });

  it('every one is exposed by the API or the worker; the worker carries the Temporal SDK metrics', async () => {
    const names = alertMetricNames();
    expect(names.length).toBeGreaterThan(10);
    const [apiPort, apiMetricsPort, workerMetricsPort] = [await freePort(), await freePort(), await freePort()];
    run('serve', { PORT: String(apiPort), METRICS_PORT: String(apiMetricsPort) });
    run('worker', { WORKER_METRICS_PORT: String(workerMetricsPort) });

    // One answered request, so the HTTP series exist.
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${apiPort}/livez`).catch(() => null))?.status,
      (s) => s === 200,
      60_000,
      'API up',
    );
    const api = await eventually(
      async () => (await scrape(apiMetricsPort)).text(),
      (t) => /agentina_http_requests_total\{/.test(t),
      30_000,
      'API metrics',
    );
    // The SDK's workflow task series appear once the worker has run a workflow: a Schedule's, now.
    await eventually(
      async () => (await scrape(workerMetricsPort).catch(() => null))?.status,
      (s) => s === 200,
      120_000,
      'worker metrics listening',
    );
    await eventually(
      () =>
        temporal.client.schedule
          .getHandle('agentina-audit-checkpoint')
          .trigger()
          .then(() => true),
      (ok) => ok,
      30_000,
      'schedule triggered',
    );
    const worker = await eventually(
      async () => (await scrape(workerMetricsPort).catch(() => null))?.text() ?? '',
      (t) => /^agentina_audit_verify_ok /m.test(t) && /^temporal_workflow_task_schedule_to_start_latency/m.test(t),
      120_000,
      'worker metrics',
    );

    const declared = new Map([...families(api), ...families(worker)]);
    expect(names.filter((n) => !exposes(declared, n))).toEqual([]);
    // Conventional process metrics on both.
    for (const text of [api, worker]) expect(families(text).get('process_cpu_seconds_total')).toBe('counter');
    // The worker's own: a fresh ledger verifies; every Schedule reports its age.
    expect(worker).toMatch(/^agentina_audit_verify_ok 1$/m);
    expect(worker).toMatch(/^agentina_schedule_last_action_age_seconds\{schedule="agentina-audit-checkpoint"\} /m);
    // METRICS_TOKEN guards the worker's listener as it does the API's.
    expect((await scrape(workerMetricsPort, 'wrong-token-wrong-token-wrong-token')).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${workerMetricsPort}/other`)).status).toBe(404);
  });
});
