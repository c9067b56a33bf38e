import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort, portAnswers } from '../../scripts/stack/ports';
import { createTestDatabase, type TestDatabase } from '../support/db';

const ROOT = path.resolve(__dirname, '..', '..');

function descendants(pid: number): number[] {
  const rows = spawnSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).stdout.trim().split('\n');
  const children = new Map<number, number[]>();
  for (const row of rows) {
    const [p, pp] = row.trim().split(/\s+/).map(Number) as [number, number];
    children.set(pp, [...(children.get(pp) ?? []), p]);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Processes among `pids` still running (zombies and exited ones are not), with their command line. */
async function survivors(pids: number[]): Promise<string[]> {
  // A child may take a moment to be reaped after its parent exits.
  const deadline = Date.now() + 5000;
  let left: string[] = [];
  do {
    left = pids
      .map((pid) => ({
        pid,
        ps: spawnSync('ps', ['-o', 'stat=,args=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim(),
      }))
      .filter((p) => p.ps && !p.ps.startsWith('Z'))
      .map((p) => `${p.pid} ${p.ps}`);
    if (left.length === 0) return left;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < deadline);
  return left;
}

/** GET over HTTPS trusting only `ca` (fetch cannot take a CA); resolves with the status code. */
function httpsStatus(url: string, ca: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca: ca ?? [] }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .once('error', reject);
  });
}

type Started = { child: ChildProcess; output: () => string; pids: number[] };

async function startStack(env: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'dev.js')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm start did not come up:\n${out}`)), 120000);
    const check = setInterval(() => {
      if (out.includes('Press Ctrl-C to stop.')) {
        clearInterval(check);
        clearTimeout(timer);
        resolve();
      }
    }, 100);
    child.once('exit', (code) => {
      clearInterval(check);
      clearTimeout(timer);
      reject(new Error(`npm start exited with ${code}:\n${out}`));
    });
  });
  return { child, output: () => out, pids: descendants(child.pid!) };
}

async function interrupt(s: Started): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code) => resolve(code)));
  s.child.kill('SIGINT');
  return exited;
}

/**
 * `npm start` as a new user would run it, on its own ports and data directory (with spaces):
 * it prints where to go (HTTPS with a local development CA, and the agent's activation command),
 * everything answers, Ctrl-C leaves no child behind, and a second start reuses .data (no second
 * first-admin password); AGENTINA_DEV_HTTP=1 serves plain HTTP.
 */
describe('npm start (the dev stack)', () => {
  jest.setTimeout(240000);
  let db: TestDatabase;
  const dataDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'agentina dev ')), 'data dir');

  beforeAll(async () => {
    chmodSync(path.dirname(dataDir), 0o755);
    db = await createTestDatabase('devstack');
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(path.dirname(dataDir), { recursive: true, force: true });
  });

  it('starts everything, prints the URLs and a one-time admin password once, and Ctrl-C stops every child', async () => {
    const [port, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
    const env = {
      ...process.env,
      DATABASE_URL: db.adminUrl,
      PORT: String(port),
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      TEMPORAL_UI_PORT: String(uiPort),
      AGENTINA_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
    };

    const first = await startStack(env);
    const out = first.output();
    // HTTPS by default, with a development CA the agent can pin, and the command that activates one.
    expect(out).toContain(`https://127.0.0.1:${port}/`);
    expect(out).toContain(`http://127.0.0.1:${uiPort}`);
    expect(out).toMatch(/First admin\s+admin@agentina\.local/);
    const password = /One-time password\s+(\S+)/.exec(out)?.[1];
    expect(password).toMatch(/^[A-Za-z0-9]{20}$/);
    const caFile = path.join(dataDir, 'tls', 'ca.pem');
    expect(out).toContain(
      `node bin/agentina-agent.js install --user --server https://127.0.0.1:${port} --ca '${caFile}' --token -`,
    );
    expect(statSync(path.join(dataDir, 'tls', 'ca-key.pem')).mode & 0o077).toBe(0);
    const ca = readFileSync(caFile, 'utf8');
    expect(await httpsStatus(`https://127.0.0.1:${port}/readyz`, ca)).toBe(200);
    expect(await httpsStatus(`https://localhost:${port}/`, ca)).toBe(200);
    // Without the CA the certificate is not trusted: nothing quietly falls back to trusting anything.
    await expect(httpsStatus(`https://127.0.0.1:${port}/readyz`, undefined)).rejects.toThrow(/certificate/);
    expect((await fetch(`http://127.0.0.1:${uiPort}/`)).status).toBe(200);
    const { rows } = await db.adminPool.query<{ password_hash: string }>('SELECT password_hash FROM agentina.admins');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.password_hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(rows[0]!.password_hash).not.toContain(password!);
    expect(existsSync(path.join(dataDir, 'temporal.db'))).toBe(true);
    expect(first.pids.length).toBeGreaterThanOrEqual(3);

    expect(await interrupt(first)).toBe(0);
    expect(await survivors(first.pids)).toEqual([]);
    expect(await portAnswers('127.0.0.1', port)).toBe(false);
    expect(await portAnswers('127.0.0.1', temporalPort)).toBe(false);

    // Plain HTTP only when asked for; the second start reuses .data.
    const second = await startStack({ ...env, AGENTINA_DEV_HTTP: '1' });
    expect(second.output()).not.toMatch(/One-time password/);
    expect(second.output()).toContain(`http://127.0.0.1:${port}/`);
    expect(second.output()).toMatch(/Agent\s+needs HTTPS/);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    expect(await interrupt(second)).toBe(0);
    expect(await survivors(second.pids)).toEqual([]);
  });
});
