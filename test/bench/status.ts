import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { buildApp } from '../../api/app';
import { createLogger } from '../../api/logger';
import { createTemporal } from '../../services/temporal';
import { PROOF_HEADER, SESSION_HEADER, systemClock } from '../../protocol';
import { agentKeyPemOf, agentProofFor } from '../support/agent-keys';
import { findOrStartPostgres } from '../../scripts/stack/postgres';
import { ROOT } from '../../scripts/stack/tools';
import { createTestKeys, insertAgents, insertCustomer, insertLicense } from '../support/activation-fixtures';
import { createTestServices, testConfig } from '../support/app';
import { createTestDatabase } from '../support/db';

/**
 * `npm run bench:status`: GET /v1/agent/status answering at once (real agent credentials looked up
 * in PostgreSQL, the status read from PostgreSQL, an Ed25519-signed answer) against a bare Fastify
 * hello-world route, both served from this process and driven by the same keep-alive load
 * generator in a child process, alternating over several rounds. Options: --seconds N (per phase,
 * default 4), --rounds N (default 3), --connections N (default 64), --agents N (default 1000),
 * --proof session|ed25519 (how requests prove possession of the agent key; default session, as the agent).
 */

/** How the load generator proves possession of the agents' key (see protocol/agent-proof.ts). */
type Proof = 'session' | 'ed25519';
type Phase = { requests: number; errors: number; seconds: number; rps: number; p50Ms: number; p99Ms: number };

/** The load generator: plain node:http with keep-alive, `connections` requests in flight. */
const LOADGEN = String.raw`
const http = require('node:http');
const fs = require('node:fs');
const [port, pathsFile, seconds, connections] = process.argv.slice(1);
const crypto = require('node:crypto');
const { paths, auth, keyPems, keyOf, proof, sessionOf } = JSON.parse(fs.readFileSync(pathsFile, 'utf8'));
const keys = (keyPems || []).map((pem) => crypto.createPrivateKey(pem));
const EMPTY = crypto.createHash('sha256').update('').digest('hex');
const sessions = new Map();
for (const [credential, header] of Object.entries(sessionOf || {})) keepSession(credential, header);
function keepSession(credential, header) {
  const m = /^s=(\d{13}),key=([A-Za-z0-9_-]{43})$/.exec(header || '');
  if (m) sessions.set(credential, { expiresAt: Number(m[1]), secret: Buffer.from(m[2], 'base64url') });
}
// As the agent does (agent/http-client.ts): signed with its key, or with an HMAC under the session
// the control plane handed out for a signed request (proof=session); proof=ed25519 signs every request.
function proofFor(n, credential, path) {
  const t = Date.now();
  const message = 'agentina-proof/v1\nGET\n' + path + '\n' + EMPTY + '\n' + t;
  const s = proof === 'session' ? sessions.get(credential) : undefined;
  if (s && s.expiresAt - t > 30000)
    return 'hmac t=' + t + ',s=' + s.expiresAt + ',mac=' + crypto.createHmac('sha256', s.secret).update(message).digest('base64url');
  return 'ed25519 t=' + t + ',sig=' + crypto.sign(null, Buffer.from(message), keys[keyOf[n % auth.length]]).toString('base64url');
}
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(connections) });
const lat = [];
let ok = 0, errors = 0, i = 0, stopAt = 0, measuring = false;
function one(done) {
  const n = i++;
  const path = paths[n % paths.length];
  const credential = auth.length ? auth[n % auth.length] : null;
  const headers = credential ? { authorization: 'Bearer ' + credential, 'agentina-proof': proofFor(n, credential, path) } : {};
  const t0 = process.hrtime.bigint();
  const req = http.request({ host: '127.0.0.1', port: Number(port), path, agent, headers }, (res) => {
    if (credential) keepSession(credential, res.headers['agentina-session']);
    res.resume();
    res.on('end', () => {
      if (measuring) {
        if (res.statusCode === 200) { ok++; lat.push(Number(process.hrtime.bigint() - t0) / 1e6); } else errors++;
      }
      done();
    });
  });
  req.on('error', () => { if (measuring) errors++; done(); });
  req.end();
}
function loop(resolve) { if (Date.now() >= stopAt) return resolve(); one(() => loop(resolve)); }
async function phase(ms, measure) {
  measuring = measure; stopAt = Date.now() + ms;
  const t = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Number(connections) }, () => new Promise(loop)));
  return Number(process.hrtime.bigint() - t) / 1e9;
}
(async () => {
  await phase(1000, false);
  const s = await phase(Number(seconds) * 1000, true);
  lat.sort((a, b) => a - b);
  const at = (q) => lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] * 100) / 100 : 0;
  process.stdout.write(JSON.stringify({ requests: ok, errors, seconds: Math.round(s * 1000) / 1000, rps: Math.round(ok / s), p50Ms: at(0.5), p99Ms: at(0.99) }));
  agent.destroy();
})();
`;

/** Server-side CPU per answered request in one phase (warm-up included, so an upper bound). */
function cpuPerRequest(used: NodeJS.CpuUsage, phase: Phase): number {
  return Math.round((used.user + used.system) / Math.max(1, phase.requests + phase.errors));
}

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
  return v;
}

export async function drive(
  port: number,
  work: {
    paths: string[];
    auth: string[];
    keyPems?: string[];
    keyOf?: number[];
    proof?: Proof;
    sessionOf?: Record<string, string>;
  },
  seconds: number,
  connections: number,
  dir: string,
): Promise<Phase> {
  const file = path.join(dir, `work-${port}.json`);
  writeFileSync(file, JSON.stringify(work), { mode: 0o600 });
  const child = spawn(process.execPath, ['-e', LOADGEN, String(port), file, String(seconds), String(connections)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`load generator exited with ${code}`);
  return JSON.parse(out) as Phase;
}

export async function main(args: string[]): Promise<object> {
  const seconds = option(args, 'seconds', 4);
  const rounds = option(args, 'rounds', 3);
  const connections = option(args, 'connections', 64);
  const agentCount = option(args, 'agents', 1000);
  const proofArg = args.includes('--proof') ? args[args.indexOf('--proof') + 1] : 'session';
  if (proofArg !== 'session' && proofArg !== 'ed25519') throw new Error('--proof must be session or ed25519');
  const proof: Proof = proofArg;
  const log = (line: string) => console.log(`[bench:status] ${line}`);
  const work = mkdtempSync(path.join(tmpdir(), 'agentina-bench-status-'));
  const pg = await findOrStartPostgres({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: path.join(ROOT, '.data', 'test'),
    log,
  });
  process.env.AGENTINA_TEST_PG_ADMIN_URL = pg.adminUrl;
  const db = await createTestDatabase('benchstatus');
  const keys = createTestKeys();
  const hello = Fastify();
  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  const config = testConfig({ AGENTINA_KEYS_DIR: keys.dir, LOG_LEVEL: 'warn' });
  const temporal = createTemporal(config);
  try {
    // Agents on licenses of several sizes, as in production: one big fleet, many small ones.
    const credentials: string[] = [];
    const big = await insertCustomer(db.pool);
    const bigLicense = await insertLicense(db.pool, big, { maxAgents: 100000 });
    credentials.push(
      ...(await insertAgents(db.pool, bigLicense, big, Math.ceil(agentCount / 2))).map((a) => a.credential),
    );
    while (credentials.length < agentCount) {
      const cus = await insertCustomer(db.pool);
      const lic = await insertLicense(db.pool, cus, { maxAgents: 10 });
      credentials.push(
        ...(await insertAgents(db.pool, lic, cus, Math.min(5, agentCount - credentials.length))).map(
          (a) => a.credential,
        ),
      );
    }
    log(
      `${credentials.length} agents provisioned; ${connections} keep-alive connections; ${rounds} rounds of ${seconds} s per target after 1 s warm-up each`,
    );

    // The agents' private keys for the load generator: a few distinct PEMs, and which is whose.
    const pems = credentials.map((c) => agentKeyPemOf(c));
    const keyPems = [...new Set(pems)];
    const agentKeys = { keyPems, keyOf: pems.map((p) => keyPems.indexOf(p)) };

    hello.get('/hello', async () => ({ hello: 'world' }));
    await hello.listen({ port: 0, host: '127.0.0.1' });
    const services = createTestServices({ config, pool: db.pool, temporal, clock: systemClock });
    app = await buildApp({
      config,
      pool: db.pool,
      temporal,
      clock: systemClock,
      services,
      logger: createLogger('warn'),
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const portOf = (f: { server: { address(): unknown } }) => (f.server.address() as { port: number }).port;

    // A real answer first: signed, 200, for an authenticated agent.
    const probe = await app.inject({
      method: 'GET',
      url: '/v1/agent/status',
      headers: {
        authorization: `Bearer ${credentials[0]}`,
        [PROOF_HEADER]: agentProofFor(credentials[0]!, { method: 'GET', url: '/v1/agent/status' }),
      },
    });
    if (probe.statusCode !== 200 || !probe.json().status?.signature?.sig)
      throw new Error(`status probe failed: ${probe.statusCode} ${probe.body}`);

    // A running agent holds a session for 15 minutes and long-polls every few seconds: it signs with
    // its key a few times an hour. So with --proof session each agent first buys its session with
    // one signed request, as the agent does at start, and the measured requests carry HMAC proofs.
    const sessionOf: Record<string, string> = {};
    if (proof === 'session') {
      for (const c of credentials) {
        const r = await app.inject({
          method: 'GET',
          url: '/v1/agent/status',
          headers: {
            authorization: `Bearer ${c}`,
            [PROOF_HEADER]: agentProofFor(c, { method: 'GET', url: '/v1/agent/status' }),
          },
        });
        const header = r.headers[SESSION_HEADER];
        if (typeof header === 'string') sessionOf[c] = header;
      }
      log(`${Object.keys(sessionOf).length} sessions established with one signed request each`);
    }

    // Alternate the two targets, so a neighbour's load on this shared machine falls on both alike;
    // the figures are the medians over the rounds.
    const hellos: Phase[] = [];
    const statuses: Phase[] = [];
    // The same app's /livez (no auth, no database, no signature): what any route of this app costs.
    const livez: Phase[] = [];
    const ratios: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      let cpu = process.cpuUsage();
      const h = await drive(portOf(hello), { paths: ['/hello'], auth: [] }, seconds, connections, work);
      const helloCpu = cpuPerRequest(process.cpuUsage(cpu), h);
      cpu = process.cpuUsage();
      const lz = await drive(portOf(app), { paths: ['/livez'], auth: [] }, seconds, connections, work);
      const livezCpu = cpuPerRequest(process.cpuUsage(cpu), lz);
      livez.push(lz);
      cpu = process.cpuUsage();
      const st = await drive(
        portOf(app),
        { paths: ['/v1/agent/status'], auth: credentials, ...agentKeys, proof, sessionOf },
        seconds,
        connections,
        work,
      );
      const statusCpu = cpuPerRequest(process.cpuUsage(cpu), st);
      hellos.push(h);
      statuses.push(st);
      ratios.push(st.rps / h.rps);
      log(
        `round ${round}: hello-world ${h.rps} req/s (p99 ${h.p99Ms} ms, ${helloCpu} µs server CPU/req), status ${st.rps} req/s (p50 ${st.p50Ms} ms, p99 ${st.p99Ms} ms, ${statusCpu} µs server CPU/req, non-200 ${st.errors}), ratio ${(st.rps / h.rps).toFixed(3)}; app baseline /livez ${lz.rps} req/s (${livezCpu} µs/req)`,
      );
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const statusErrors = statuses.reduce((n, p) => n + p.errors, 0);
    if (statusErrors > 0) log(`WARNING: ${statusErrors} status requests did not answer 200`);
    const ratio = Math.round(median(ratios) * 1000) / 1000;
    log(`median ratio ${ratio} (goal ≥ 0.5)`);
    const statusRps = median(statuses.map((p) => p.rps));
    const helloRps = median(hellos.map((p) => p.rps));
    const livezRps = median(livez.map((p) => p.rps));
    return {
      bench: 'status',
      status_rps: statusRps,
      hello_rps: helloRps,
      ratio,
      agents: credentials.length,
      proof,
      connections,
      rounds,
      status_errors: statusErrors,
      livez_rps: livezRps,
      livez_ratio: Math.round(median(livez.map((p, i) => p.rps / hellos[i]!.rps)) * 1000) / 1000,
    };
  } finally {
    await app?.close();
    await hello.close();
    await temporal.close();
    await db.drop();
    await pg.stop();
    keys.remove();
    rmSync(work, { recursive: true, force: true });
  }
}
