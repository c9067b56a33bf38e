/**
 * npm run bench:lifecycles [-- --licenses 2000 --expiry-seconds 5 --concurrency 32 --rounds 4
 *                              --burst 10000 --ceiling 1 --license-year 1 --pollers W R]
 *
 * Against the platform's own ceiling, in one run on one Temporal dev server:
 * 1. three kinds of start, `licenses` of each, `concurrency` in flight, interleaved in `rounds`
 *    rounds of licenses/rounds each, the order reversed every other round (C W L, L W C, C W L, …),
 *    so all three see the server fill alike; each kind's starts/s is its starts over the sum of its
 *    own segments' time (a 1 s pause after each segment lets the workers catch up unmeasured):
 *    - C, the ceiling: ceilingLifecycle (one timer, one local activity writing one row;
 *      test/support/workflows/ceiling.ts) started directly, from a worker process of its own,
 *      expiring `expirySeconds` after its start; its rows' lateness is measured;
 *    - W, the workflow only: the license lifecycle started with the license service's own start
 *      options (ensureLifecycle: summary, details, search attributes) for a license that has no row,
 *      expiring in a year (no transition); ids of another length than any real license id;
 *    - L, the lifecycle: licenses through the license service (row + audit + workflow start), each
 *      expiring `expirySeconds` after its own creation with 0 grace days; how late each expiry
 *      landed in PostgreSQL (updated_at − expires_at).
 *    `ratio` = L ÷ C; `workflow_only_ratio` = W ÷ C: what W lacks of 1 is the workflow's cost, what
 *    L lacks of W is the API's (its transaction and audit). `--ceiling 0` runs L alone.
 * 2. the expiry burst: `burst` licenses all expiring at the same instant: how many reached `expired`,
 *    the time from that instant to the last one, lateness p50/p99;
 * 3. the cost of a license-year on the time-skipping server (./license-year.ts).
 * The lifecycle worker runs in its own process with SDK default pollers unless `--pollers W R`
 * are given. The 1-minute load average is reported: lateness is mostly time waiting for a CPU.
 */
import type { ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { Client, Connection } from '@temporalio/client';
import { createPool } from '../../db';
import type { LicenseRow } from '../../db/licenses-repo';
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

type Kind = 'ceiling' | 'workflowOnly' | 'lifecycle';

/** The kinds in round `r`'s order: reversed every other round, so each kind's mean place is the same. */
const roundOrder = (kinds: readonly Kind[], r: number): Kind[] => (r % 2 === 0 ? [...kinds] : [...kinds].reverse());

/** How many starts of each kind round `r` makes: `total` over `rounds`, the remainder to the first rounds. */
const roundSize = (total: number, rounds: number, r: number): number =>
  Math.floor(total / rounds) + (r < total % rounds ? 1 : 0);

/** Unmeasured, after each segment: the workers finish its first workflow tasks before the next kind starts. */
const SETTLE_MS = 1000;

/**
 * A workflow-only start's license: as the service would insert it, but with no row behind it. Its
 * id is of another length than newId's (22 characters after the prefix), so it names no real license.
 */
function workflowOnlyRow(n: number, customerId: string, expiresAt: Date): LicenseRow {
  const now = new Date();
  return {
    id: `lic_workflow-only-bench-${String(n).padStart(8, '0')}`,
    customer_id: customerId,
    plan: 'bench',
    features: {},
    max_agents: 1,
    state: 'active',
    version: 1,
    not_before: now,
    expires_at: expiresAt,
    trial_ends_at: null,
    trial_end_state: 'expired',
    grace_days: 0,
    state_reason: null,
    policy_id: null,
    policy_version: null,
    created_at: now,
    updated_at: now,
  };
}

export async function main(args: string[]): Promise<object> {
  const licenses = option(args, 'licenses', 2000);
  const expirySeconds = option(args, 'expiry-seconds', 5);
  const concurrency = option(args, 'concurrency', 32);
  const rounds = option(args, 'rounds', 4);
  const burst = option(args, 'burst', 10000);
  const withCeiling = option(args, 'ceiling', 1) > 0;
  const withLicenseYear = option(args, 'license-year', 1) > 0;
  const pollersAt = args.indexOf('--pollers');
  const pollers =
    pollersAt >= 0 ? { workflow: Number(args[pollersAt + 1]), nonStickyRatio: Number(args[pollersAt + 2]) } : undefined;
  if (licenses < 1 || concurrency < 1 || rounds < 1 || !(expirySeconds > 0))
    throw new Error('--licenses, --concurrency and --rounds must be ≥ 1, --expiry-seconds > 0');
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
    // Both workers in processes of their own, as deployed; the lifecycle's with the production activities and bundle.
    let ceilingWorker: ChildProcess | undefined;
    if (withCeiling) {
      await adminPool.query(
        'CREATE TABLE bench_ceiling (id text PRIMARY KEY, expires_at timestamptz NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())',
      );
      ceilingWorker = await startWorkerProcess(require.resolve('./ceiling-worker.ts'), {
        address,
        taskQueue: 'bench-ceiling',
        databaseUrl: db.adminUrl,
      });
      workers.push(ceilingWorker);
    }
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

    // 1. The three kinds of start, interleaved in rounds.
    const customerName = 'Bench customer';
    const lifeCustomer = await createTestCustomer(apiPool, customerName);
    const farExpiry = new Date(Date.now() + 365 * 86_400_000);
    const done: Record<Kind, number> = { ceiling: 0, workflowOnly: 0, lifecycle: 0 };
    const seconds: Record<Kind, number> = { ceiling: 0, workflowOnly: 0, lifecycle: 0 };
    const segment: Record<Kind, (n: number) => Promise<number>> = {
      ceiling: (n) =>
        runConcurrently(n, concurrency, async (i) => {
          await client.workflow.start('ceilingLifecycle', {
            taskQueue: 'bench-ceiling',
            workflowId: `ceiling/${done.ceiling + i}`,
            args: [{ expiresAt: Date.now() + expirySeconds * 1000 }],
          });
        }),
      workflowOnly: (n) =>
        runConcurrently(n, concurrency, async (i) => {
          await service.ensureLifecycle(workflowOnlyRow(done.workflowOnly + i, lifeCustomer, farExpiry), customerName);
        }),
      lifecycle: (n) => createMany(lifeCustomer, n, () => new Date(Date.now() + expirySeconds * 1000).toISOString()),
    };
    const kinds: Kind[] = withCeiling ? ['ceiling', 'workflowOnly', 'lifecycle'] : ['lifecycle'];
    log(
      `${licenses} starts of each of ${kinds.join(', ')} in ${rounds} rounds; lifecycles and ceilings expire ${expirySeconds}s after their start`,
    );
    for (let r = 0; r < rounds; r++) {
      const n = roundSize(licenses, rounds, r);
      for (const kind of roundOrder(kinds, r)) {
        const s = await segment[kind](n);
        done[kind] += n;
        seconds[kind] += s;
        log(`round ${r + 1}/${rounds}: ${kind} ${n} starts in ${s.toFixed(1)} s (${Math.round(n / s)}/s)`);
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      }
    }
    const perS = (kind: Kind) => Math.round(licenses / seconds[kind]);
    const ratioOf = (a: number, b: number) => Math.round((a / b) * 100) / 100;
    const startsPerS = perS('lifecycle');

    let ceilingStartsPerS: number | undefined;
    if (withCeiling) {
      ceilingStartsPerS = perS('ceiling');
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
      const workflowOnlyPerS = perS('workflowOnly');
      log(
        `ceiling: ${ceilingStartsPerS} starts/s; ${written}/${licenses} rows; lateness p50 ${late.p50} ms, p99 ${late.p99} ms`,
      );
      log(`workflow only: ${workflowOnlyPerS} starts/s`);
      Object.assign(figures, {
        ceiling_starts_per_s: ceilingStartsPerS,
        ceiling_written: written,
        ceiling_expiry_lateness_p99_ms: late.p99,
        workflow_only_starts_per_s: workflowOnlyPerS,
        workflow_only_ratio: ratioOf(workflowOnlyPerS, ceilingStartsPerS),
      });
      await stopWorkerProcess(ceilingWorker!);
    }

    log(`lifecycle: ${licenses} started in ${seconds.lifecycle.toFixed(1)} s: ${startsPerS} starts/s`);
    const expired = await waitForCount(
      () => expiredOf(lifeCustomer),
      licenses,
      Date.now() + expirySeconds * 1000 + 120_000,
    );
    const late = latenessOf(await latenessRows(lifeCustomer));
    log(`${expired}/${licenses} expired; lateness p50 ${late.p50} ms, p99 ${late.p99} ms, max ${late.max} ms`);
    Object.assign(figures, {
      starts_per_s: startsPerS,
      ...(ceilingStartsPerS ? { ratio: ratioOf(startsPerS, ceilingStartsPerS) } : {}),
      expired,
      expiry_lateness_p50_ms: late.p50,
      expiry_lateness_p99_ms: late.p99,
      expiry_lateness_max_ms: late.max,
      load_avg_1m: Math.round(loadavg()[0]! * 10) / 10,
    });

    // 2. The burst: every license expiring at one instant, far enough ahead for all to be created first.
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

    // 3. The cost of a license-year, on the time-skipping server.
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
