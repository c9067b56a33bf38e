import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createWorker } from '../../worker';
import { runtimeHashOf } from '../../services/releases/releases-service';
import {
  DEFAULT_TASK_FEATURES,
  ensureKeys,
  loadPurposeSigner,
  systemClock,
  type HeartbeatResponse,
  type ReleaseManifest,
} from '../../protocol';
import { startTestStack } from '../support/stack';
import { buildTestApp, testConfig, testServices } from '../support/app';
import {
  asAgent,
  createAgent,
  createCustomer,
  createLicense,
  createStaff,
  heartbeatRequest,
  type AgentFixture,
} from '../support/agent-server-fixtures';
import { createTestDatabase } from '../support/db';
import { connectTestTemporal, runWorkerInBackground, testTemporalDeps } from '../support/temporal';

/**
 * `npm run bench:agent-server`: the control plane's side of the agent, in process (app.inject,
 * real PostgreSQL, real Temporal): heartbeats per second (credential lookup, fingerprint score,
 * manifest check, signed status), full task round trips per second (queue → lease with
 * SKIP LOCKED → result), heartbeats that rotate the agent's credential (promote the generation the
 * previous answer issued, issue the next) against plain ones, and the time from a tampered heartbeat to the agent's quarantine being
 * committed by the agentQuarantine workflow, against GET /livez in the same run. Options: --seconds N (per phase, default 4),
 * --concurrency N (default 32), --agents N (default 200), --quarantines N (default 20).
 */
function arg(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : fallback;
}

async function drive(
  seconds: number,
  concurrency: number,
  one: (n: number) => Promise<boolean>,
): Promise<{ ops: number; errors: number; perS: number }> {
  let ops = 0;
  let errors = 0;
  let n = 0;
  const stopAt = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < stopAt) {
        if (await one(n++)) ops++;
        else errors++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return { ops, errors, perS: Math.round(ops / elapsed) };
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? 0;

export async function main(args: string[]): Promise<object> {
  const seconds = arg(args, 'seconds', 4);
  const concurrency = arg(args, 'concurrency', 32);
  const agentCount = arg(args, 'agents', 200);
  const quarantines = arg(args, 'quarantines', 20);
  const log = (line: string) => console.log(`[bench:agent-server] ${line}`);
  const stack = await startTestStack(log);
  const keysDir = mkdtempSync(path.join(tmpdir(), 'agentina-bench-keys-'));
  const db = await createTestDatabase('benchagentsrv');
  const t = await connectTestTemporal('bench-agentsrv');
  let stopWorker: (() => Promise<void>) | undefined;
  let built: Awaited<ReturnType<typeof buildTestApp>> | undefined;
  try {
    ensureKeys(keysDir);
    const worker = await createWorker({
      connection: t.nativeConnection,
      namespace: t.namespace,
      taskQueue: t.taskQueue,
      services: testServices({ pool: db.pool, clock: systemClock, keysDir }),
      workflowBundle: { codePath: stack.bundlePath },
    });
    stopWorker = runWorkerInBackground(worker);
    const temporal = testTemporalDeps(t.client, t.taskQueue);
    built = await buildTestApp({
      pool: db.pool,
      temporal,
      config: testConfig({ AGENTINA_KEYS_DIR: keysDir, LOG_LEVEL: 'warn' }),
    });
    const admin = await createStaff(db.pool, systemClock).admin();
    const app = built.app;

    const files = [{ path: 'agent/index.js', sha256: 'a'.repeat(64), size: 1 }];
    const manifest: ReleaseManifest = {
      kind: 'agentina.release/v1',
      version: '1.0.0',
      files,
      runtimeHash: runtimeHashOf(files),
      createdAt: new Date().toISOString(),
    };
    await app.inject({
      method: 'POST',
      url: '/v1/admin/releases',
      headers: admin,
      payload: { manifest, signature: loadPurposeSigner(keysDir, 'release').sign(manifest) },
    });

    const customerId = await createCustomer(db.pool);
    const licenseId = await createLicense(db.pool, customerId, { maxAgents: 100000 });
    const agents: AgentFixture[] = [];
    for (let i = 0; i < agentCount; i++) agents.push(await createAgent(db.pool, licenseId, customerId));
    // The same fleet on a license with both task caps set (too high to bind): what counting them costs.
    const cappedLicenseId = await createLicense(db.pool, customerId, {
      maxAgents: 100000,
      features: { ...DEFAULT_TASK_FEATURES, 'tasks.per_day': 1_000_000_000, 'tasks.max_concurrent': 1_000_000 },
    });
    const capped: AgentFixture[] = [];
    for (let i = 0; i < agentCount; i++) capped.push(await createAgent(db.pool, cappedLicenseId, customerId));
    // A third fleet whose credentials rotate at every heartbeat (the others keep theirs for the task phases).
    const rotating: AgentFixture[] = [];
    for (let i = 0; i < agentCount; i++) rotating.push(await createAgent(db.pool, licenseId, customerId));
    log(`${agentCount} agents ready on each of two licenses, and ${agentCount} that rotate their credential`);

    // Each agent from its own address, as a fleet on its own machines is: one address for all of
    // them would be one address's failed-authentication budget (30 places) for 32 lookups at once.
    const addressOf = (a: AgentFixture) => {
      const n = [...a.agentId].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
      return `127.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255 || 1}`;
    };
    const beat = (a: AgentFixture, runtimeHash = manifest.runtimeHash) =>
      app.inject({ ...heartbeatRequest(a, runtimeHash), remoteAddress: addressOf(a) });

    // Baseline in the same run and process: the cheapest route (no database), so figures taken on a busy machine can be compared.
    const baseline = await drive(
      seconds,
      concurrency,
      async () => (await app.inject({ method: 'GET', url: '/livez' })).statusCode === 200,
    );
    log(`baseline GET /livez: ${baseline.perS}/s`);

    const heartbeats = await drive(
      seconds,
      concurrency,
      async (n) => (await beat(agents[n % agents.length]!)).statusCode === 200,
    );
    log(`heartbeats: ${heartbeats.perS}/s (${heartbeats.errors} errors)`);

    // As a real agent does: each heartbeat made with the generation the previous answer handed out,
    // so every one promotes that generation and issues the next. One agent is never in two heartbeats at once.
    const held = new Map(rotating.map((a) => [a.agentId, a.credential]));
    const busy = new Set<number>();
    const rotated = await drive(seconds, concurrency, async (n) => {
      let i = n % rotating.length;
      while (busy.has(i)) i = (i + 1) % rotating.length;
      busy.add(i);
      try {
        const a = rotating[i]!;
        const res = await app.inject({
          ...heartbeatRequest({ ...a, credential: held.get(a.agentId)! }, manifest.runtimeHash, {
            credentialGeneration: 0,
          }),
          remoteAddress: addressOf(a),
        });
        const next = res.statusCode === 200 ? res.json<HeartbeatResponse>().nextCredential : undefined;
        if (next) held.set(a.agentId, next.credential);
        return next !== undefined;
      } finally {
        busy.delete(i);
      }
    });
    log(`heartbeats that rotate the credential: ${rotated.perS}/s (${rotated.errors} errors)`);

    const roundTrip = async (fleet: AgentFixture[], n: number) => {
      const a = fleet[n % fleet.length]!;
      const q = await app.inject({
        method: 'POST',
        url: '/v1/admin/tasks',
        headers: admin,
        payload: { agentId: a.agentId, kind: 'echo', payload: { n } },
      });
      if (q.statusCode !== 201) return false;
      const leased = await app.inject({ method: 'GET', url: '/v1/agent/tasks/next', headers: asAgent(a) });
      const task = leased.json().task as { id: string } | null;
      if (!task) return false;
      const r = await app.inject({
        method: 'POST',
        url: `/v1/agent/tasks/${task.id}/result`,
        headers: asAgent(a),
        payload: { outcome: 'succeeded', result: { n } },
      });
      return r.statusCode === 200;
    };
    const roundTrips = await drive(seconds, concurrency, (n) => roundTrip(agents, n));
    log(`task round trips: ${roundTrips.perS}/s (${roundTrips.errors} errors)`);
    const cappedTrips = await drive(seconds, concurrency, (n) => roundTrip(capped, n));
    log(`task round trips, license with tasks.per_day and tasks.max_concurrent: ${cappedTrips.perS}/s`);

    const latencies: number[] = [];
    for (const a of agents.slice(0, quarantines)) {
      const t0 = performance.now();
      await beat(a, 'f'.repeat(64));
      for (;;) {
        const { rows } = await db.pool.query(
          `SELECT 1 FROM status_feed WHERE agent_id = $1 AND state = 'quarantined'`,
          [a.agentId],
        );
        if (rows.length) break;
        await new Promise((r) => setTimeout(r, 2));
      }
      latencies.push(performance.now() - t0);
    }
    log(
      `tampered heartbeat → quarantine committed: p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms`,
    );

    return {
      bench: 'agent-server',
      agents: agentCount,
      concurrency,
      livez_per_s: baseline.perS,
      heartbeats_per_s: heartbeats.perS,
      heartbeat_vs_livez: Number((heartbeats.perS / Math.max(1, baseline.perS)).toFixed(3)),
      rotating_heartbeats_per_s: rotated.perS,
      rotating_vs_plain_heartbeat: Number((rotated.perS / Math.max(1, heartbeats.perS)).toFixed(3)),
      task_round_trips_per_s: roundTrips.perS,
      task_round_trip_vs_livez: Number((roundTrips.perS / Math.max(1, baseline.perS)).toFixed(3)),
      capped_task_round_trips_per_s: cappedTrips.perS,
      capped_vs_uncapped_round_trip: Number((cappedTrips.perS / Math.max(1, roundTrips.perS)).toFixed(3)),
      quarantine_p50_ms: Math.round(pct(latencies, 50)),
      quarantine_p99_ms: Math.round(pct(latencies, 99)),
      errors: heartbeats.errors + rotated.errors + roundTrips.errors + cappedTrips.errors,
    };
  } finally {
    await built?.close();
    await stopWorker?.();
    await t.close();
    await db.drop();
    rmSync(keysDir, { recursive: true, force: true });
    await stack.stop();
  }
}
