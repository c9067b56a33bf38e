import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Pool } from 'pg';
import { testEnv } from './env';
import { quietTemporalRuntime } from './temporal';
import { SEARCH_ATTRIBUTES } from '../../scripts/stack/temporal';
import {
  createLicenseService,
  type LicenseService,
  type LicenseServiceDeps,
} from '../../services/licenses/license-service';
import { createKeyStore } from '../../services/keys';
import { createUpdateOrigin } from '../../services/licenses/update-origin';
import { ensureKeys, newId, systemClock, type Actor, type Clock } from '../../protocol';

/** A customer of the test's own, inserted as the application role. */
export async function createTestCustomer(pool: Pool, name = 'Test customer'): Promise<string> {
  const id = newId('cus');
  await pool.query('INSERT INTO customers (id, name) VALUES ($1, $2)', [id, name]);
  return id;
}

/** A fresh keys directory with every purpose's key, removed by the returned function. */
export function createTestKeysDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentina-keys-'));
  ensureKeys(dir);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The license service as tests build it: the system clock unless given, and a fixed Temporal Web link. */
export function testLicenseService(
  deps: Omit<LicenseServiceDeps, 'clock' | 'temporalUi' | 'signer' | 'origin'> & { clock?: Clock; keysDir: string },
): LicenseService {
  const { keysDir, ...rest } = deps;
  const keys = createKeyStore(keysDir);
  const clock = rest.clock ?? systemClock;
  return createLicenseService({
    clock,
    temporalUi: { url: 'http://127.0.0.1:8233', namespace: 'default' },
    signer: keys.license,
    origin: createUpdateOrigin({ secrets: () => keys.secrets('update-origin') }),
    // No expiry notices unless a test asks (webhooks-time.test.ts does).
    expiryNoticeDays: [],
    ...rest,
  });
}

/** Polls `read` until `done` holds (or fails after `timeoutMs` with the last value seen). */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 20000,
  what = 'condition',
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await read();
      if (done(last)) return last;
    } catch {
      // not there yet (e.g. the workflow task has not run)
    }
    if (Date.now() > until) throw new Error(`${what} did not happen; last seen: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export type LicenseAuditRow = {
  seq: number;
  action: string;
  actor_kind: string;
  actor_id: string;
  idempotency_key: string;
  data: Record<string, unknown>;
};

export async function licenseAudit(pool: Pool, licenseId: string): Promise<LicenseAuditRow[]> {
  const { rows } = await pool.query<LicenseAuditRow & { seq: string }>(
    "SELECT seq, action, actor_kind, actor_id, idempotency_key, data FROM audit_events WHERE subject_kind = 'license' AND subject_id = $1 ORDER BY seq",
    [licenseId],
  );
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

export async function licenseFeed(pool: Pool, licenseId: string): Promise<Array<{ state: string; version: number }>> {
  const { rows } = await pool.query<{ state: string; version: string }>(
    'SELECT state, version FROM status_feed WHERE license_id = $1 AND agent_id IS NULL ORDER BY id',
    [licenseId],
  );
  return rows.map((r) => ({ state: r.state, version: Number(r.version) }));
}

/** A time-skipping server of this test file's own, with Agentina's search attributes. */
export async function startTimeSkippingServer(): Promise<TestWorkflowEnvironment> {
  quietTemporalRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: testEnv('AGENTINA_TEST_TIME_SKIPPING_SERVER') } },
  });
  await registerSearchAttributes(env.connection);
  return env;
}

/** The time-skipping server starts without Agentina's search attributes; register them. */
export async function registerSearchAttributes(connection: Connection, namespace = 'default'): Promise<void> {
  const keyword = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(SEARCH_ATTRIBUTES.map((a) => [a, keyword])),
  });
}

/** A paid license of `customerId` ending at `expiresAt`, no grace, one seat unless told: what fault tests start from. */
export async function createTermLicense(
  licenses: Pick<LicenseService, 'createLicense'>,
  actor: Actor,
  customerId: string,
  expiresAt: string,
  opts: { maxAgents?: number; graceDays?: number } = {},
): Promise<string> {
  const { license } = await licenses.createLicense(actor, {
    customerId,
    plan: 'pro',
    features: {},
    maxAgents: opts.maxAgents ?? 1,
    graceDays: opts.graceDays ?? 0,
    trialEndState: 'expired',
    term: { expiresAt },
  });
  return license.id;
}
