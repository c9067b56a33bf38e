import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Client, type Pool } from 'pg';
import { appUrlFor } from '../../config';
import { appendAudit, createPool, migrate, withTransaction } from '../../db';
import { readChainFrom } from '../../db/audit-read-repo';
import { verifyAuditChain } from '../../protocol/audit-verify';
import { findOrStartPostgres, withDatabase } from '../../scripts/stack/postgres';
import { ROOT } from '../../scripts/stack/tools';

/**
 * `npm run bench:audit`: appends to the hash chain from 8 concurrent writers, each append its own
 * transaction, against two baselines from the same run: one writer appending alone, and 8
 * writers doing plain INSERTs (same columns, no chain, no head lock) into an unchained table.
 * Only PostgreSQL is provisioned (the audit path never touches Temporal).
 */
const WRITERS = 8;

type Phase = { ops: number; seconds: number; perSecond: number; p50Ms: number; p99Ms: number };
type Sample = { ops: number; seconds: number; latencies: number[] };

function parseArgs(args: string[]): { appends: number } {
  const i = args.indexOf('--appends');
  const n = i >= 0 ? Number(args[i + 1]) : 4000;
  if (!Number.isInteger(n) || n < WRITERS) throw new Error('--appends must be an integer ≥ 8');
  return { appends: n };
}

async function runWriters(
  writers: number,
  total: number,
  op: (writer: number, i: number) => Promise<unknown>,
): Promise<Sample> {
  const latencies: number[] = [];
  const perWriter = Math.ceil(total / writers);
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; i < perWriter; i++) {
        const t0 = process.hrtime.bigint();
        await op(w, i);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  return { ops: perWriter * writers, seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies };
}

function summarise(samples: Sample[]): Phase {
  const ops = samples.reduce((n, s) => n + s.ops, 0);
  const seconds = samples.reduce((n, s) => n + s.seconds, 0);
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 100) / 100;
  return {
    ops,
    seconds: Math.round(seconds * 1000) / 1000,
    perSecond: Math.round(ops / seconds),
    p50Ms: at(0.5),
    p99Ms: at(0.99),
  };
}

/** Runs the phases in alternating rounds, so a change in machine load hits them alike. */
async function interleaved(rounds: number, phases: Array<(round: number) => Promise<Sample>>): Promise<Phase[]> {
  const samples: Sample[][] = phases.map(() => []);
  for (let r = 0; r < rounds; r++) for (const [i, phase] of phases.entries()) samples[i]!.push(await phase(r));
  return samples.map(summarise);
}

function appendOp(pool: Pool, tag: string) {
  return (w: number, i: number) =>
    withTransaction(pool, async (tx) => {
      await appendAudit(tx, {
        actor: { kind: 'system', id: `bench-writer-${w}` },
        action: 'license.renewed',
        subject: { kind: 'license', id: `lic_bench${w}` },
        data: { i, tag },
        idempotencyKey: `bench/${tag}/${w}/${i}`,
      });
    }).then(() => undefined);
}

export async function main(args: string[]): Promise<object> {
  const { appends } = parseArgs(args);
  const log = (line: string) => console.log(line);
  const pg = await findOrStartPostgres({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: path.join(ROOT, '.data', 'test'),
    log,
  });
  const name = `agentina_bench_audit_${randomBytes(4).toString('hex')}`;
  const server = new Client({ connectionString: pg.adminUrl });
  await server.connect();
  await server.query(`CREATE DATABASE ${name}`);
  const adminUrl = withDatabase(pg.adminUrl, name);
  let pool: Pool | undefined;
  let adminPool: Pool | undefined;
  try {
    await migrate(adminUrl);
    adminPool = createPool(adminUrl, { applicationName: 'bench-audit-admin', max: 2 });
    await adminPool.query(`
      SET ROLE agentina_owner;
      CREATE TABLE agentina.bench_plain (LIKE agentina.audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
      GRANT SELECT, INSERT ON agentina.bench_plain TO agentina_app;
      RESET ROLE;`);
    const app = createPool(appUrlFor(adminUrl), { applicationName: 'bench-audit', max: WRITERS + 2 });
    pool = app;
    const settings = await adminPool.query<{ name: string; setting: string }>(
      "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'server_version')",
    );
    log(`PostgreSQL (${pg.source}): ${settings.rows.map((r) => `${r.name}=${r.setting}`).join(' ')}`);
    const load = () => os.loadavg()[0]!.toFixed(1);
    log(`warming up (load average ${load()} on ${os.cpus().length} CPUs)`);
    await runWriters(WRITERS, 200, appendOp(app, 'warm'));

    let plainSeq = 0;
    const plainOp = (tag: string) => (w: number, i: number) =>
      withTransaction(app, async (tx) => {
        plainSeq += 1;
        await tx.query(
          `INSERT INTO bench_plain (seq, time, actor_kind, actor_id, action, subject_kind, subject_id, data, idempotency_key, prev_hash, hash)
           VALUES ($1, now(), 'system', $2, 'license.renewed', 'license', $3, $4, $5, $6, $7)`,
          [
            plainSeq,
            `bench-writer-${w}`,
            `lic_bench${w}`,
            { i },
            `${tag}/${w}/${i}`,
            '0'.repeat(64),
            randomBytes(32).toString('hex'),
          ],
        );
      });
    const rounds = 3;
    const singleN = Math.max(150, Math.floor(appends / 4 / rounds));
    // Plain INSERT + COMMIT into a copy of audit_events (same columns and indexes, no chain, no
    // head lock): 8 writers share WAL flushes (group commit); 1 writer pays one flush per commit,
    // the floor a strictly serial chain can approach.
    const [concurrent, plain, single, plainSingle] = (await interleaved(rounds, [
      (r) => runWriters(WRITERS, Math.ceil(appends / rounds), appendOp(app, `concurrent-${r}`)),
      (r) => runWriters(WRITERS, Math.ceil(appends / rounds), plainOp(`plain-${r}`)),
      (r) => runWriters(1, singleN, appendOp(app, `single-${r}`)),
      (r) => runWriters(1, singleN, plainOp(`plain-single-${r}`)),
    ])) as [Phase, Phase, Phase, Phase];
    log(
      `${WRITERS} writers, chained appends: ${concurrent.perSecond}/s (p50 ${concurrent.p50Ms} ms, p99 ${concurrent.p99Ms} ms)`,
    );
    log(
      `${WRITERS} writers, plain INSERTs (no chain): ${plain.perSecond}/s (p50 ${plain.p50Ms} ms, p99 ${plain.p99Ms} ms)`,
    );
    log(`1 writer, chained appends: ${single.perSecond}/s (p50 ${single.p50Ms} ms, p99 ${single.p99Ms} ms)`);
    log(
      `1 writer, plain INSERTs: ${plainSingle.perSecond}/s (p50 ${plainSingle.p50Ms} ms): one commit flush per transaction`,
    );

    const verifyStarted = process.hrtime.bigint();
    const rows = await readChainFrom(adminPool, 1);
    const result = verifyAuditChain({ events: rows, checkpoints: [], keys: new Map() });
    const verifyPerSecond = Math.round(rows.length / (Number(process.hrtime.bigint() - verifyStarted) / 1e9));
    const contiguous = rows.every((r, i) => r.seq === i + 1);
    log(
      `chain after the run: ${rows.length} rows (read and re-hashed at ${verifyPerSecond} rows/s), verify ${result.ok ? 'ok' : `BROKEN at ${result.firstBreak?.seq}`}, seqs ${contiguous ? 'contiguous' : 'NOT contiguous'}`,
    );
    if (!result.ok || !contiguous) throw new Error('the chain forked or broke under load');

    return {
      bench: 'audit',
      writers: WRITERS,
      appends_per_s: concurrent.perSecond,
      append_p50_ms: concurrent.p50Ms,
      append_p99_ms: concurrent.p99Ms,
      single_writer_appends_per_s: single.perSecond,
      plain_inserts_per_s: plain.perSecond,
      single_writer_plain_inserts_per_s: plainSingle.perSecond,
      ratio_vs_single_writer: Math.round((concurrent.perSecond / single.perSecond) * 100) / 100,
      ratio_vs_plain_insert: Math.round((concurrent.perSecond / plain.perSecond) * 100) / 100,
      ratio_vs_single_writer_plain_insert: Math.round((concurrent.perSecond / plainSingle.perSecond) * 100) / 100,
      chain_rows_verified: rows.length,
      load_average: Number(load()),
      verify_rows_per_s: verifyPerSecond,
    };
  } finally {
    await pool?.end();
    await adminPool?.end();
    await server.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await server.end();
    await pg.stop();
  }
}
