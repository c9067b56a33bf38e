import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { appUrlFor } from '../../config';
import { createPool } from '../../db';
import { getLicense, type LicenseRow } from '../../db/licenses-repo';
import { loadPurposeKeySet, PROOF_HEADER, verifySignature, type Actor } from '../../protocol';
import type { LicenseService } from '../../services/licenses/license-service';
import { quarantinePhaseQuery, agentWorkflowId } from '../../workflows/agent-quarantine';
import { licenseStateQuery, licenseWorkflowId } from '../../workflows/license-contract';
import { nextDeadline } from '../../workflows/license-rules';
import { withDatabase } from '../../scripts/stack/postgres';
import { ROOT } from '../../scripts/stack/tools';
import { activateBody, quarantineAgentByHand } from '../support/activation-fixtures';
import { agentProofFor, rememberAgentCredential } from '../support/agent-keys';
import { testServices } from '../support/app';
import { testEnv } from '../support/env';
import { createTestCustomer, eventually, licenseAudit } from '../support/license-helpers';
import { startLicenseBed, type LicenseBed } from '../support/license-bed';
import { startOwnTemporal, type OwnTemporal } from '../support/own-temporal';
import { startTestServer } from '../support/server';

type Run = { code: number; stdout: string; stderr: string };

/** The real CLI entry point in a child process; `stdin` is written and closed. */
function cli(args: string[], env: Record<string, string>, stdin = ''): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentina.js'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => void (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => void (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const PASSPHRASE = 'a long backup passphrase, kept apart from the archive';
const admin: Actor = { kind: 'admin', id: 'adm_backupdrilladmin0001' };

/**
 * The restore drill: a backup of a running stack restored into an empty database, an empty keys
 * directory and a Temporal server that has never seen these licenses; the worker's reconcile
 * brings every lifecycle back from the rows.
 */
describe('agentina backup, restore and reconcile', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'agentina-backup-'));
  const archive = path.join(tmp, 'backup.agb');
  const passFile = path.join(tmp, 'passphrase');
  let bed: LicenseBed;
  let fresh: OwnTemporal | undefined;
  let worker: ChildProcess | undefined;
  const newDbName = `agentina_t_restored_${process.pid}`;
  const newDbUrl = withDatabase(testEnv('AGENTINA_TEST_PG_ADMIN_URL'), newDbName);
  const newKeys = path.join(tmp, 'restored-keys');
  const newCheckpoints = path.join(tmp, 'restored-checkpoints');
  const oldCheckpoints = path.join(tmp, 'checkpoints');
  const ids: Record<string, string> = {};
  let credential = '';
  let quarantinedAgent = '';

  const adminQuery = async <T extends object>(url: string, sql: string, params: unknown[] = []): Promise<T[]> => {
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query<T>(sql, params)).rows;
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    writeFileSync(passFile, `${PASSPHRASE}\n`, { mode: 0o600 });
    bed = await startLicenseBed('bkold');
    await adminQuery(testEnv('AGENTINA_TEST_PG_ADMIN_URL'), `CREATE DATABASE ${newDbName}`);
  });

  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await new Promise((r) => worker!.once('exit', r));
    }
    await fresh?.stop();
    await bed?.close();
    await adminQuery(testEnv('AGENTINA_TEST_PG_ADMIN_URL'), `DROP DATABASE IF EXISTS ${newDbName} WITH (FORCE)`);
    rmSync(tmp, { recursive: true, force: true });
  });

  const create = async (customerId: string, terms: Record<string, unknown>, graceDays = 7) =>
    (
      await bed.licenses.createLicense(admin, {
        customerId,
        plan: 'pro',
        features: { seats: 3 },
        maxAgents: 3,
        graceDays,
        trialEndState: 'expired',
        ...terms,
      } as unknown as Parameters<LicenseService['createLicense']>[1])
    ).license.id;

  it('backs up a running stack into one encrypted archive (passphrase from stdin, never argv)', async () => {
    const customerId = await createTestCustomer(bed.db.pool);
    ids.active = await create(customerId, { term: { days: 30 } });
    ids.trial = await create(customerId, { trial: { days: 10 } });
    ids.suspended = await create(customerId, { term: { days: 60 } });
    await bed.licenses.suspendLicense(ids.suspended, admin, 'unpaid invoice');
    ids.revoked = await create(customerId, { term: { days: 60 } });
    await bed.licenses.revokeLicense(ids.revoked, admin, 'contract ended');
    ids.renewed = await create(customerId, { term: { days: 5 } });
    await bed.licenses.renewLicense(ids.renewed, admin, new Date(Date.now() + 400 * 86_400_000).toISOString());
    // Expires after the restore: its timer must fire in the restored lifecycle, once.
    ids.expiring = await create(customerId, { term: { expiresAt: new Date(Date.now() + 45_000).toISOString() } }, 0);

    const services = testServices({ pool: bed.db.pool, keysDir: bed.keys.dir, auditCheckpointDir: oldCheckpoints });
    const { token } = await services.activation.issueToken({ actor: admin, licenseId: ids.active });
    const body = activateBody(token);
    const activated = await services.activation.activate(body, '127.0.0.1');
    credential = activated.credential;
    rememberAgentCredential(credential, body.publicKey);
    const { token: t2 } = await services.activation.issueToken({ actor: admin, licenseId: ids.active });
    quarantinedAgent = (await services.activation.activate(activateBody(t2), '127.0.0.1')).agentId;
    await quarantineAgentByHand(bed.db.pool, quarantinedAgent, 'integrity_mismatch');
    expect(await services.checkpoints.signCheckpoint({ workflowId: 'backup-drill-checkpoint' })).toMatchObject({
      outcome: 'signed',
    });

    const env = {
      DATABASE_URL: bed.db.adminUrl,
      AGENTINA_KEYS_DIR: bed.keys.dir,
      AUDIT_CHECKPOINT_DIR: oldCheckpoints,
    };
    // A passphrase on the command line is refused: it would be in the process list and shell history.
    const argv = await cli(['backup', '--out', archive, '--passphrase', PASSPHRASE], env);
    expect(argv.code).not.toBe(0);
    expect(existsSync(archive)).toBe(false);

    const made = await cli(['backup', '--out', archive, '--passphrase-file', '-'], env, `${PASSPHRASE}\n`);
    expect(made.stderr).toBe('');
    expect(made).toMatchObject({ code: 0 });
    expect(made.stdout).toMatch(/backup written to .*: \d+ row\(s\), \d+ file\(s\)/);
    // Encrypted through and through: no id, key material or checkpoint reads in the clear.
    const bytes = readFileSync(archive);
    const licenseKey = readFileSync(path.join(bed.keys.dir, 'license.key'), 'utf8');
    for (const clear of [ids.active, credential, licenseKey.slice(40, 80), PASSPHRASE, 'audit_events'])
      expect(bytes.includes(Buffer.from(clear))).toBe(false);
    // The archive is never overwritten.
    const again = await cli(['backup', '--out', archive, '--passphrase-file', passFile], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/EEXIST/);
    expect(readFileSync(archive)).toEqual(bytes);

    // What happens after the backup is not in it.
    await bed.licenses.suspendLicense(ids.trial, admin, 'after the backup');
    await bed.stopWorker();
  }, 90_000);

  const restoreEnv = () => ({
    DATABASE_URL: newDbUrl,
    AGENTINA_KEYS_DIR: newKeys,
    AUDIT_CHECKPOINT_DIR: newCheckpoints,
  });

  it('refuses a wrong passphrase, an altered or cut archive, and a non-empty target, changing nothing', async () => {
    const wrong = await cli(
      ['restore', archive, '--passphrase-file', '-'],
      restoreEnv(),
      'not the passphrase at all\n',
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('does not open with this passphrase');

    const bytes = readFileSync(archive);
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(path.join(tmp, 'flipped.agb'), flipped);
    const altered = await cli(['restore', path.join(tmp, 'flipped.agb'), '--passphrase-file', passFile], restoreEnv());
    expect(altered.code).toBe(1);
    expect(altered.stderr).toMatch(/restore refused: .*(altered|damaged|passphrase)/);

    writeFileSync(path.join(tmp, 'cut.agb'), bytes.subarray(0, bytes.length - 40));
    const cut = await cli(['restore', path.join(tmp, 'cut.agb'), '--passphrase-file', passFile], restoreEnv());
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/restore refused: .*(incomplete|altered)/);

    // A forged header asking for a huge scrypt cost is refused before any work.
    const text = bytes.toString('latin1');
    const nl = text.indexOf('\n', text.indexOf('\n') + 1);
    const header = JSON.parse(text.slice(text.indexOf('\n') + 1, nl)) as { kdf: { N: number } };
    header.kdf.N = 2 ** 30;
    const forged = Buffer.concat([
      Buffer.from(`AGENTINA-BACKUP/1\n${JSON.stringify(header)}\n`, 'latin1'),
      bytes.subarray(nl + 1),
    ]);
    writeFileSync(path.join(tmp, 'forged.agb'), forged);
    const costly = await cli(['restore', path.join(tmp, 'forged.agb'), '--passphrase-file', passFile], restoreEnv());
    expect(costly.code).toBe(1);
    expect(costly.stderr).toContain('unknown header');

    // Into the live database: refused without --force.
    const busy = await cli(['restore', archive, '--passphrase-file', passFile], {
      ...restoreEnv(),
      DATABASE_URL: bed.db.adminUrl,
    });
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/restore refused: the database's agentina schema holds data/);

    // Nothing was written by any refused restore.
    expect(existsSync(newKeys)).toBe(false);
    expect(await adminQuery(newDbUrl, "SELECT 1 FROM pg_namespace WHERE nspname = 'agentina'")).toHaveLength(0);
  }, 90_000);

  it('restores into an empty database and keys directory; the worker reconciles every lifecycle from the rows', async () => {
    const restored = await cli(['restore', archive, '--passphrase-file', passFile], restoreEnv());
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    expect(readFileSync(path.join(newKeys, 'license.key'))).toEqual(
      readFileSync(path.join(bed.keys.dir, 'license.key')),
    );
    expect(readFileSync(path.join(newCheckpoints, 'audit-checkpoints.jsonl'))).toEqual(
      readFileSync(path.join(oldCheckpoints, 'audit-checkpoints.jsonl')),
    );
    const pool = createPool(appUrlFor(newDbUrl), { max: 4 });
    try {
      // The change made after the backup is not there.
      expect(await getLicense(pool, ids.trial!)).toMatchObject({ state: 'trial', version: 1 });

      fresh = await startOwnTemporal();
      const env = { ...restoreEnv(), TEMPORAL_ADDRESS: fresh.address, TEMPORAL_TASK_QUEUE: 'restored' };
      const dry = await cli(['reconcile', '--dry-run', '--json'], env);
      expect(dry.code).toBe(0);
      const plan = JSON.parse(dry.stdout) as { findings: Array<{ id: string; problem: string; repaired: boolean }> };
      expect(
        plan.findings
          .filter((f) => f.problem === 'missing')
          .map((f) => f.id)
          .sort(),
      ).toEqual([...Object.values(ids), quarantinedAgent].sort());
      expect(plan.findings.every((f) => !f.repaired)).toBe(true);
      // The dry run started nothing.
      await expect(fresh.client.workflow.getHandle(licenseWorkflowId(ids.active!)).describe()).rejects.toThrow();

      // The worker process as deployed: it reconciles at start.
      let log = '';
      worker = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentina.js'), 'worker'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info', ...env },
      });
      worker.stdout!.on('data', (c: Buffer) => void (log += c.toString()));
      worker.stderr!.on('data', (c: Buffer) => void (log += c.toString()));
      await eventually(
        async () => log,
        (l) => l.includes('reconcile at worker start'),
        90_000,
        'reconcile at worker start',
      );
      expect(log).toMatch(/"repaired":7\b/);

      for (const id of Object.values(ids)) {
        const row = (await getLicense(pool, id)) as LicenseRow;
        const snap = await fresh.client.workflow.getHandle(licenseWorkflowId(id)).query(licenseStateQuery);
        expect(snap).toMatchObject({ state: row.state, version: row.version, expiresAt: row.expires_at.toISOString() });
        const due = nextDeadline(row.state, {
          expiresAt: row.expires_at.toISOString(),
          trialEndsAt: row.trial_ends_at?.toISOString() ?? null,
          graceDays: row.grace_days,
          trialEndState: row.trial_end_state,
        });
        expect(snap.nextTransitionAt).toBe(due === null ? null : new Date(due).toISOString());
        const audit = await licenseAudit(pool, id);
        expect(audit.filter((a) => a.action === 'license.lifecycle_repaired')).toHaveLength(1);
      }
      expect(await fresh.client.workflow.getHandle(agentWorkflowId(quarantinedAgent)).query(quarantinePhaseQuery)).toBe(
        'quarantined',
      );
      // The Schedule is there for Temporal Web, and a second pass finds nothing to do.
      expect((await fresh.client.schedule.getHandle('agentina-reconcile').describe()).action).toMatchObject({
        workflowType: 'reconcileLifecycles',
      });
      const again = await cli(['reconcile'], env);
      expect(again.stdout).toMatch(/6 license\(s\) and 2 agent\(s\) checked .*; 0 out of step, 0 repaired, 0 failed/);

      // Timers fire in the restored lifecycles, once.
      await eventually(
        () => getLicense(pool, ids.expiring!),
        (r) => r?.state === 'expired',
        60_000,
        'expiry after restore',
      );
      const expiring = await licenseAudit(pool, ids.expiring!);
      expect(expiring.filter((a) => a.action === 'license.expired')).toHaveLength(1);

      // The ledger verifies, checkpoints included (those held off-host too).
      const verified = await cli(
        ['audit', 'verify', '--checkpoints', path.join(newCheckpoints, 'audit-checkpoints.jsonl')],
        env,
      );
      expect(verified.stderr).toBe('');
      expect(verified).toMatchObject({ code: 0 });
      const restoredRows = await adminQuery<{ action: string }>(
        newDbUrl,
        "SELECT action FROM agentina.audit_events WHERE action = 'backup.restored'",
      );
      expect(restoredRows).toHaveLength(1);

      // The agent activated before the backup reconnects with its credential and gets a signed, good status.
      const api = await startTestServer({
        pool,
        env: { AGENTINA_KEYS_DIR: newKeys, TEMPORAL_ADDRESS: fresh.address, TEMPORAL_TASK_QUEUE: 'restored' },
      });
      try {
        // As the real agent: the credential with a proof of possession of its key.
        const res = await fetch(`${api.baseUrl}/v1/agent/status`, {
          headers: {
            authorization: `Bearer ${credential}`,
            [PROOF_HEADER]: agentProofFor(credential, { method: 'GET', url: '/v1/agent/status' }),
          },
        });
        expect(res.status).toBe(200);
        // Parsed here, so canonical JSON sees this realm's plain objects.
        const body = JSON.parse(await res.text()) as {
          status: { payload: { good: boolean; licenseState: string }; signature: never };
        };
        expect(body.status.payload).toMatchObject({ good: true, licenseState: 'active' });
        const verdict = verifySignature(
          body.status.payload,
          body.status.signature,
          loadPurposeKeySet(bed.keys.dir, 'license'),
        );
        expect(verdict).toEqual({ ok: true });
      } finally {
        await api.close();
      }
    } finally {
      await pool.end();
    }
  }, 240_000);
});
