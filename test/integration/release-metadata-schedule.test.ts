import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Updater } from 'tuf-js';
import { createFixedClock } from '../../protocol';
import { ensureSchedules, SCHEDULES } from '../../worker/schedules';
import { testConfig, testServices } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestKeysDir } from '../support/license-helpers';
import { startTestServer } from '../support/server';
import { connectTestTemporal, runTestWorker, type TestTemporal } from '../support/temporal';

/**
 * The timestamp re-signing Schedule on the real dev server and the real worker, judged by tuf-js
 * (an independent TUF client) against the served repository: while the schedule runs, clients
 * accept the repository; when an operator pauses it, the timestamp runs out and every client
 * refuses the repository as expired (a freeze is loud, never silently accepted).
 */
const DAY = 86_400_000;
let db: TestDatabase;
let t: TestTemporal;
let keys: ReturnType<typeof createTestKeysDir>;
let server: Awaited<ReturnType<typeof startTestServer>>;
let stopWorker: () => Promise<void>;
const work = mkdtempSync(path.join(tmpdir(), 'agentina-tuf-schedule-'));
// The worker signs with this clock: the repository is made 25 h ago, so its 24 h timestamp is stale now.
const clock = createFixedClock(new Date(Date.now() - 25 * 3_600_000));
const scheduleId = `agentina-tuf-timestamp-test-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  db = await createTestDatabase('tuf_schedule');
  t = await connectTestTemporal('tufschedule');
  keys = createTestKeysDir();
  server = await startTestServer({ pool: db.pool, env: { AGENTINA_KEYS_DIR: keys.dir } });
  stopWorker = await runTestWorker(t, { pool: db.pool, clock, keysDir: keys.dir });
  await testServices({ pool: db.pool, clock, keysDir: keys.dir }).releases.repository.init();
});

afterAll(async () => {
  await t?.client.schedule
    .getHandle(scheduleId)
    .delete()
    .catch(() => undefined);
  await stopWorker?.();
  await server?.close();
  await t?.close();
  await db?.drop();
  keys?.remove();
  rmSync(work, { recursive: true, force: true });
});

/** A fresh tuf-js client that trusts version 1 of root, as an agent does. */
async function tufClient(label: string): Promise<Updater> {
  const dir = path.join(work, label);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'root.json'),
    await (await fetch(`${server.baseUrl}/v1/dist/metadata/1.root.json`)).text(),
  );
  return new Updater({
    metadataBaseUrl: `${server.baseUrl}/v1/dist/metadata`,
    targetBaseUrl: `${server.baseUrl}/v1/dist/targets`,
    metadataDir: dir,
    targetDir: dir,
  });
}

async function timestampVersion(): Promise<number> {
  const ts = (await (await fetch(`${server.baseUrl}/v1/dist/metadata/timestamp.json`)).json()) as {
    signed: { version: number; expires: string };
  };
  return ts.signed.version;
}

async function refreshAudits(): Promise<
  Array<{ actor_kind: string; actor_id: string; data: { timestampVersion: number } }>
> {
  const r = await db.adminPool.query(
    "SELECT actor_kind, actor_id, data FROM agentina.audit_events WHERE action = 'release.metadata_refreshed' ORDER BY seq",
  );
  return r.rows as never;
}

it('is one of the worker schedules, running every quarter of the timestamp lifetime', () => {
  const config = testConfig({ RELEASE_TIMESTAMP_EXPIRY: '8h' });
  const entry = SCHEDULES.map((make) => make(config)).find((e) => e.id === 'agentina-tuf-timestamp');
  expect(entry).toMatchObject({ workflowType: 'releaseMetadataRefresh', everyMs: 2 * 3_600_000 });
});

it('paused, it lets the timestamp expire and a TUF client refuses the frozen repository; resumed, it re-signs', async () => {
  const config = testConfig({ TEMPORAL_TASK_QUEUE: t.taskQueue, AGENTINA_KEYS_DIR: keys.dir });
  const entry = SCHEDULES.map((make) => make(config)).find((e) => e.id === 'agentina-tuf-timestamp')!;
  await ensureSchedules(t.client, config, [{ ...entry, id: scheduleId }]);
  const handle = t.client.schedule.getHandle(scheduleId);
  // The operator stops re-signing (Temporal Web's "pause" does the same).
  await handle.pause('stopped by an operator');
  const described = await handle.describe();
  expect(described.state.paused).toBe(true);
  expect(described.action).toMatchObject({ workflowType: 'releaseMetadataRefresh', taskQueue: t.taskQueue });

  const before = await timestampVersion();
  await expect((await tufClient('frozen')).refresh()).rejects.toThrow(/expired/i);

  // Re-signing resumes: the worker's clock is now, the schedule runs (triggered rather than awaited).
  clock.set(new Date());
  await handle.unpause('resumed');
  await handle.trigger();
  for (let i = 0; i < 300 && (await timestampVersion()) === before; i++) await new Promise((r) => setTimeout(r, 100));
  expect(await timestampVersion()).toBe(before + 1);
  const client = await tufClient('resumed');
  await client.refresh();
  const audits = await refreshAudits();
  expect(audits).toHaveLength(1);
  expect(audits[0]).toMatchObject({ actor_kind: 'workflow', data: { timestampVersion: before + 1 } });
  expect(audits[0]!.actor_id.startsWith(scheduleId)).toBe(true);
});

it('a run while the timestamp has more than half its life left signs nothing and audits nothing', async () => {
  const before = await timestampVersion();
  const result = await t.client.workflow.execute('releaseMetadataRefresh', {
    taskQueue: t.taskQueue,
    workflowId: `release-metadata-refresh-${randomBytes(4).toString('hex')}`,
    args: [],
  });
  expect(result).toMatchObject({ outcome: 'fresh', timestampVersion: before });
  expect(await timestampVersion()).toBe(before);
  expect(await refreshAudits()).toHaveLength(1);
  // Half a day on (the timestamp's half-life passed), the next run re-signs, and snapshot stays.
  clock.set(new Date(Date.now() + DAY / 2 + 60_000));
  const later = await t.client.workflow.execute('releaseMetadataRefresh', {
    taskQueue: t.taskQueue,
    workflowId: `release-metadata-refresh-${randomBytes(4).toString('hex')}`,
    args: [],
  });
  expect(later).toMatchObject({ outcome: 'signed', timestampVersion: before + 1 });
  expect(await refreshAudits()).toHaveLength(2);
});
