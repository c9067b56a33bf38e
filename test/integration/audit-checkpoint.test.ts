import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import {
  createAuditActivities,
  HELD_CHECKPOINTS_FILE,
  type AuditCheckpointInput,
} from '../../activities/audit-activities';
import { createActivities } from '../../activities/create-activities';
import { ensureSchedules, SCHEDULES } from '../../worker/schedules';
import { verifyLedger } from '../../db/audit-ledger';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { checkpointsFromExport, ensureKeys, loadPurposeKeySet, systemClock } from '../../protocol';
import { testConfig, testServices } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { connectTestTemporal, runWorkerInBackground, type TestTemporal } from '../support/temporal';

/** The checkpoint workflow on a real worker and the real dev server, and its Temporal Schedule. */
let db: TestDatabase;
let t: TestTemporal;
let keysDir: string;
let stopWorker: () => Promise<void>;
const attempts: Array<{ workflowId: string; attempt: number }> = [];
const scheduleIds: string[] = [];

async function appendSome(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await withTransaction(db.pool, (tx) =>
      appendAudit(tx, {
        actor: { kind: 'system', id: 'svc_cp' },
        action: 'license.renewed',
        subject: { kind: 'license', id: `lic_cp_${i}` },
        data: { i },
      }),
    );
  }
}

async function until<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

beforeAll(async () => {
  db = await createTestDatabase('auditcp');
  t = await connectTestTemporal('auditcp');
  keysDir = mkdtempSync(path.join(os.tmpdir(), 'agentina-cp-keys-'));
  ensureKeys(keysDir, ['audit']);
  const deps = { pool: db.pool, clock: systemClock, keysDir, auditCheckpointDir: path.join(keysDir, 'held') };
  const real = createAuditActivities(testServices(deps));
  const worker = await Worker.create({
    connection: t.nativeConnection,
    taskQueue: t.taskQueue,
    workflowBundle: t.workflowBundle,
    activities: {
      ...createActivities(testServices(deps)),
      // The production activity, made to crash right after its transaction committed, once per
      // workflow whose id asks for it: Temporal retries it, and it must not sign twice.
      async signAuditCheckpoint(input: AuditCheckpointInput) {
        const { attempt } = Context.current().info;
        attempts.push({ workflowId: input.workflowId, attempt });
        // A run whose signing cannot succeed (as with the audit key gone): it gives up at once.
        if (input.workflowId.includes('fails-for-good'))
          throw ApplicationFailure.nonRetryable('the audit signing key is unavailable', 'UNAVAILABLE');
        const result = await real.signAuditCheckpoint(input);
        if (input.workflowId.includes('crash-after-commit') && attempt === 1)
          throw new Error('worker lost after commit');
        return result;
      },
    },
  });
  stopWorker = runWorkerInBackground(worker);
});

afterAll(async () => {
  for (const id of scheduleIds)
    await t.client.schedule
      .getHandle(id)
      .delete()
      .catch(() => undefined);
  await stopWorker?.();
  await t?.close();
  await db?.drop();
  if (keysDir) rmSync(keysDir, { recursive: true, force: true });
});

it('an activity retried after its commit stores one checkpoint and one audit row', async () => {
  await appendSome(3);
  const workflowId = `audit-checkpoint-crash-after-commit-${randomBytes(4).toString('hex')}`;
  const result = await t.client.workflow.execute('auditCheckpoint', { taskQueue: t.taskQueue, workflowId, args: [] });
  expect(result).toMatchObject({ outcome: 'signed', sequence: 3 });
  expect(attempts.filter((a) => a.workflowId === workflowId).map((a) => a.attempt)).toEqual([1, 2]);
  const key = `${workflowId}#checkpoint`;
  const cps = await db.adminPool.query('SELECT id FROM agentina.audit_checkpoints WHERE idempotency_key = $1', [key]);
  const events = await db.adminPool.query<{ actor_kind: string; actor_id: string; action: string }>(
    'SELECT actor_kind, actor_id, action FROM agentina.audit_events WHERE idempotency_key = $1',
    [key],
  );
  expect(cps.rowCount).toBe(1);
  expect(events.rows).toEqual([{ actor_kind: 'workflow', actor_id: workflowId, action: 'audit.checkpoint_signed' }]);
  // The signature is over the chain head as stored, and checks out against the public key file.
  expect(await verifyLedger(db.pool, loadPurposeKeySet(keysDir, 'audit'))).toMatchObject({
    ok: true,
    checkpoints: { total: 1, valid: 1 },
    unsignedTail: 1,
  });
  // The signed checkpoint also went to the file outside the database, once per commit.
  const held = checkpointsFromExport(
    readFileSync(path.join(keysDir, 'held', HELD_CHECKPOINTS_FILE), 'utf8').split('\n'),
  );
  const stored = await db.adminPool.query<{ id: string }>('SELECT id FROM agentina.audit_checkpoints');
  expect(held.map((c) => c.id)).toContain(Number(stored.rows[0]!.id));
  expect(held.every((c) => c.statement.sequence === 3)).toBe(true);
  // The workflow history carries ids only: no key material, no signature in the payloads.
  const history = JSON.stringify(await t.client.workflow.getHandle(workflowId).fetchHistory());
  expect(history).not.toMatch(/PRIVATE KEY|privateKeyPem/);
});

it('a checkpoint run that gives up is audited as audit.checkpoint_failed (a webhook event), once', async () => {
  const workflowId = `audit-checkpoint-fails-for-good-${randomBytes(4).toString('hex')}`;
  await expect(
    t.client.workflow.execute('auditCheckpoint', { taskQueue: t.taskQueue, workflowId, args: [] }),
  ).rejects.toThrow();
  const events = await db.adminPool.query<{ actor_id: string; data: unknown; action: string }>(
    "SELECT actor_id, data, action FROM agentina.audit_events WHERE action = 'audit.checkpoint_failed'",
  );
  expect(events.rows).toEqual([
    { actor_id: workflowId, action: 'audit.checkpoint_failed', data: { cause: 'UNAVAILABLE' } },
  ]);
});

it('ensureSchedules creates the checkpoint schedule, updates it in place, and it runs the workflow', async () => {
  await appendSome(2);
  const suffix = randomBytes(4).toString('hex');
  const entriesFor = (interval: string) => {
    const config = testConfig({
      TEMPORAL_TASK_QUEUE: t.taskQueue,
      AUDIT_CHECKPOINT_INTERVAL: interval,
      AGENTINA_KEYS_DIR: keysDir,
    });
    // Under a test-only id: the dev server is shared with other test files.
    const entries = SCHEDULES.map((make) => make(config))
      .filter((e) => e.workflowType === 'auditCheckpoint')
      .map((e) => ({ ...e, id: `${e.id}-test-${suffix}` }));
    return { config, entries };
  };
  const first = entriesFor('10m');
  expect(first.entries).toHaveLength(1);
  scheduleIds.push(first.entries[0]!.id);
  expect(await ensureSchedules(t.client, first.config, first.entries)).toEqual([
    { id: first.entries[0]!.id, outcome: 'created' },
  ]);
  const handle = t.client.schedule.getHandle(first.entries[0]!.id);
  let described = await handle.describe();
  expect(described.spec.intervals?.[0]?.every).toBe(600_000);
  expect(described.action).toMatchObject({
    type: 'startWorkflow',
    workflowType: 'auditCheckpoint',
    taskQueue: t.taskQueue,
  });

  const second = entriesFor('5m');
  expect(await ensureSchedules(t.client, second.config, second.entries)).toEqual([
    { id: first.entries[0]!.id, outcome: 'updated' },
  ]);
  described = await handle.describe();
  expect(described.spec.intervals?.[0]?.every).toBe(300_000);

  await handle.trigger();
  const row = await until(async () => {
    const { rows } = await db.adminPool.query<{ idempotency_key: string; sequence: string }>(
      'SELECT idempotency_key, sequence FROM agentina.audit_checkpoints WHERE idempotency_key LIKE $1',
      [`${first.entries[0]!.id}%`],
    );
    return rows[0];
  }, 'the scheduled checkpoint');
  expect(row.idempotency_key).toMatch(/#checkpoint$/);
  expect(await verifyLedger(db.pool, loadPurposeKeySet(keysDir, 'audit'))).toMatchObject({
    ok: true,
    checkpoints: { total: 2, valid: 2 },
  });
});
