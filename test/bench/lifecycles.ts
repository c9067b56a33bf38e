/**
 * npm run bench:lifecycles [-- --licenses 2000 --expiry-seconds 5 --concurrency 32 --burst 10000
 *                              --ceiling 1 --license-year 1 --pollers W R]
 *
 * Against the platform's own ceiling, in one run on one Temporal dev server:
 * 1. the ceiling: `licenses` starts of ceilingLifecycle (one timer, one local activity writing one
 *    row; test/support/workflows/ceiling.ts) from a worker process of its own;
 * 2. the lifecycle: `licenses` licenses through the license service (row + audit + workflow start),
 *    each expiring `expirySeconds` after its own creation with 0 grace days; starts/s, and how late
 *    each expiry landed in PostgreSQL (updated_at − expires_at); `ratio` = lifecycle starts/s ÷ ceiling;
 * 3. the expiry burst: `burst` licenses all expiring at the same instant: how many reached `expired`,
 *    the time from that instant to the last one, lateness p50/p99;
 * 4. the cost of a license-year on the time-skipping server (./license-year.ts).
 * The lifecycle worker runs in its own process with SDK default pollers unless `--pollers W R`
 * are given. The 1-minute load average is reported: lateness is mostly time waiting for a CPU.
 */
import type { ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { Client, Connection } from '@temporalio/client';
import { createPool } from '../../db';
import type { Actor } from '../../protocol';
import { createTestDatabase } from '../support/db';
import { createTestCustomer, createTestKeysDir, testLicenseService } from '../support/license-helpers';
import { startTestStack } from '../support/stack';
import { quietTemporalRuntime } from '../support/temporal';
import { measureLicenseYear } from './license-year';
import { percentile, runConcurrently, startWorkerProcess, stopWorkerProcess } from './lifecycle-worker-process';

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!(v >= 0)) throw new Error(`--${name} must be a number ≥ 0`);
  return v;
}

type Lateness = { p50: number; p99: number; max: number };
function latenessOf(ms: number[]): Lateness {
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    p50: Math.round(percentile(sorted, 50)),
    p99: Math.round(percentile(sorted, 99)),
    max: Math.round(sorted.at(-1) ?? 0),
  };
}

/** Polls `count` every 500 ms until it reaches `n` or `deadline` passes; returns the last count. */
async function waitForCount(count: () => Promise<number>, n: number, deadline: number): Promise<number> {
  let seen = 0;
  while (Date.now() < deadline) {
    seen = await count();
    if (seen >= n) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return seen;
}

export async function main(args: string[]): Promise<object> {
  const licenses = option(args, 'licenses', 2000);
  const expirySeconds = option(args, 'expiry-seconds', 5);
  const concurrency = option(args, 'concurrency', 32);
  const burst = option(args, 'burst', 10000);
  const withCeiling = option(args, 'ceiling', 1) > 0;
  const withLicenseYear = option(args, 'license-year', 1) > 0;
  const pollersAt = args.indexOf('--pollers');
  const pollers =
    pollersAt >= 0 ? { workflow: Number(args[pollersAt + 1]), nonStickyRatio: Number(args[pollersAt + 2]) } : undefined;
  if (licenses < 1 || concurrency < 1 || !(expirySeconds > 0))
    throw new Error('--licenses and --concurrency must be ≥ 1, --expiry-seconds > 0');
  const log = (line: string) => console.log(`[lifecycles] ${line}`);
  quietTemporalRuntime();

  const stack = await startTestStack(log);
  const db = await createTestDatabase('benchlife');
  const keys = createTestKeysDir();
  const apiPool = createPool(db.appUrl, { applicationName: 'bench-api', max: 32 });
  const adminPool = createPool(db.adminUrl, { applicationName: 'bench-admin', max: 4 });
  const address = process.env.AGENTINA_TEST_TEMPORAL_ADDRESS!;
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace: 'default' });
  const workers: ChildProcess[] = [];
  const figures: Record<string, number> = { licenses };
  try {
    // 1. The ceiling, first, on an idle server.
    let ceilingStartsPerS: number | undefined;
    if (withCeiling) {
      await adminPool.query(
        'CREATE TABLE bench_ceiling (id text PRIMARY KEY, expires_at timestamptz NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())',
      );
      const ceilingWorker = await startWorkerProcess(require.resolve('./ceiling-worker.ts'), {
        address,
        taskQueue: 'bench-ceiling',
        databaseUrl: db.adminUrl,
      });
      workers.push(ceilingWorker);
      const seconds = await runConcurrently(licenses, concurrency, async (i) => {
        await client.workflow.start('ceilingLifecycle', {
          taskQueue: 'bench-ceiling',
          workflowId: `ceiling/${i}`,
          args: [{ expiresAt: Date.now() + expirySeconds * 1000 }],
        });
      });
      ceilingStartsPerS = Math.round(licenses / seconds);
      const written = await waitForCount(
        async () =>
          Number((await adminPool.query<{ n: string }>('SELECT count(*) AS n FROM bench_ceiling')).rows[0]!.n),
        licenses,
        Date.now() + expirySeconds * 1000 + 120_000,
      );
      const { rows } = await adminPool.query<{ ms: number }>(
        'SELECT (extract(epoch FROM (written_at - expires_at)) * 1000)::float8 AS ms FROM bench_ceiling',
      );
      const late = latenessOf(rows.map((r) => r.ms));
      log(
        `ceiling: ${ceilingStartsPerS} starts/s; ${written}/${licenses} rows; lateness p50 ${late.p50} ms, p99 ${late.p99} ms`,
      );
      Object.assign(figures, {
        ceiling_starts_per_s: ceilingStartsPerS,
        ceiling_written: written,
        ceiling_expiry_lateness_p99_ms: late.p99,
      });
      await stopWorkerProcess(ceilingWorker);
    }

    // 2. The lifecycle: the worker in its own process, as deployed, with the production activities and bundle.
    workers.push(
      await startWorkerProcess(require.resolve('../support/license-worker.ts'), {
        address,
        taskQueue: 'bench-lifecycles',
        appDatabaseUrl: db.appUrl,
        keysDir: keys.dir,
        bundlePath: stack.bundlePath,
        ...(pollers ? { pollers } : {}),
      }),
    );
    const service = testLicenseService({
      pool: apiPool,
      temporal: { client, taskQueue: 'bench-lifecycles' },
      keysDir: keys.dir,
    });
    const actor: Actor = { kind: 'system', id: 'svcacct_benchlifecycles01' };
    const createMany = async (customerId: string, n: number, expiresAt: (i: number) => string) =>
      runConcurrently(n, concurrency, async (i) => {
        await service.createLicense(actor, {
          customerId,
          plan: 'bench',
          features: {},
          maxAgents: 1,
          graceDays: 0,
          trialEndState: 'expired',
          term: { expiresAt: expiresAt(i) },
        });
        if (i % 1000 === 0) log(`${i} started`);
      });
    const expiredOf = async (customerId: string) =>
      Number(
        (
          await apiPool.query<{ n: string }>(
            "SELECT count(*) AS n FROM licenses WHERE customer_id = $1 AND state = 'expired'",
            [customerId],
          )
        ).rows[0]!.n,
      );
    const latenessRows = async (customerId: string) =>
      (
        await apiPool.query<{ ms: number }>(
          "SELECT (extract(epoch FROM (updated_at - expires_at)) * 1000)::float8 AS ms FROM licenses WHERE customer_id = $1 AND state = 'expired'",
          [customerId],
        )
      ).rows.map((r) => r.ms);

    log(`starting ${licenses} license workflows, each expiring ${expirySeconds}s after its creation`);
    const lifeCustomer = await createTestCustomer(apiPool, 'Bench customer');
    const startSeconds = await createMany(lifeCustomer, licenses, () =>
      new Date(Date.now() + expirySeconds * 1000).toISOString(),
    );
    const startsPerS = Math.round(licenses / startSeconds);
    log(`${licenses} started in ${startSeconds.toFixed(1)} s: ${startsPerS} starts/s`);
    const expired = await waitForCount(
      () => expiredOf(lifeCustomer),
      licenses,
      Date.now() + expirySeconds * 1000 + 120_000,
    );
    const late = latenessOf(await latenessRows(lifeCustomer));
    log(`${expired}/${licenses} expired; lateness p50 ${late.p50} ms, p99 ${late.p99} ms, max ${late.max} ms`);
    Object.assign(figures, {
      starts_per_s: startsPerS,
      ...(ceilingStartsPerS ? { ratio: Math.round((startsPerS / ceilingStartsPerS) * 100) / 100 } : {}),
      expired,
      expiry_lateness_p50_ms: late.p50,
      expiry_lateness_p99_ms: late.p99,
      expiry_lateness_max_ms: late.max,
      load_avg_1m: Math.round(loadavg()[0]! * 10) / 10,
    });

    // 3. The burst: every license expiring at one instant, far enough ahead for all to be created first.
    if (burst > 0) {
      const burstCustomer = await createTestCustomer(apiPool, 'Bench burst customer');
      // Creation slows as the server fills, so twice the measured rate's estimate, plus 30 s.
      const at = Date.now() + Math.ceil((2 * burst) / Math.max(1, startsPerS)) * 1000 + 30_000;
      log(`burst: ${burst} licenses expiring at ${new Date(at).toISOString()}`);
      await createMany(burstCustomer, burst, () => new Date(at).toISOString());
      const createdLate = Number(
        (
          await apiPool.query<{ n: string }>(
            'SELECT count(*) AS n FROM licenses WHERE customer_id = $1 AND created_at > expires_at',
            [burstCustomer],
          )
        ).rows[0]!.n,
      );
      const burstExpired = await waitForCount(() => expiredOf(burstCustomer), burst, at + 15 * 60_000);
      const { rows } = await apiPool.query<{ last: Date | null }>(
        "SELECT max(updated_at) AS last FROM licenses WHERE customer_id = $1 AND state = 'expired'",
        [burstCustomer],
      );
      const burstLate = latenessOf(await latenessRows(burstCustomer));
      const drainS = Math.round(((rows[0]!.last?.getTime() ?? at) - at) / 100) / 10;
      log(
        `burst: ${burstExpired}/${burst} expired, drained ${drainS} s after the instant; lateness p50 ${burstLate.p50} ms, p99 ${burstLate.p99} ms; ${createdLate} created after the instant`,
      );
      Object.assign(figures, {
        burst_licenses: burst,
        burst_expired: burstExpired,
        burst_drain_s: drainS,
        burst_lateness_p50_ms: burstLate.p50,
        burst_lateness_p99_ms: burstLate.p99,
        burst_created_after_instant: createdLate,
        burst_load_avg_1m: Math.round(loadavg()[0]! * 10) / 10,
      });
    }
    for (const w of workers.splice(0)) await stopWorkerProcess(w);

    // 4. The cost of a license-year, on the time-skipping server.
    if (withLicenseYear) Object.assign(figures, await measureLicenseYear(log));
    return { bench: 'lifecycles', ...figures };
  } finally {
    for (const w of workers) await stopWorkerProcess(w);
    await connection.close();
    await apiPool.end();
    await adminPool.end();
    await db.drop();
    keys.remove();
    await stack.stop();
  }
}
