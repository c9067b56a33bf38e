import { spawn, type ChildProcess } from 'node:child_process';
import { request, Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../services/identity/passwords';
import { adminsRepo } from '../../db';
import { newId } from '../../protocol';
import { freePort } from '../../scripts/stack/ports';
import { createTestDatabase } from '../support/db';
import { startTestStack } from '../support/stack';

/**
 * `npm run bench:login`: the API in its own process (`agentina serve`, as in production), 50
 * concurrent logins (each from its own loopback address, so the per-IP login limit does not
 * interfere) while another client calls GET /livez in a loop; then unknown-email, wrong-password
 * and locked-account timing (goal: each ratio 0.8–1.25). Options: --logins N (50), --threadpool N (UV_THREADPOOL_SIZE for the
 * server; default: the server's own default), --samples N (timing triples, 30).
 */
function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? 0;
const round = (x: number) => Math.round(x * 10) / 10;

type Answer = { status: number; ms: number };

function call(
  port: number,
  method: 'GET' | 'POST',
  url: string,
  body?: object,
  opts: { localAddress?: string; agent?: Agent } = {},
): Promise<Answer> {
  const payload = body ? JSON.stringify(body) : undefined;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: url,
        agent: opts.agent ?? false,
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function livezLoop(port: number, stop: () => boolean): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  try {
    while (!stop()) {
      const r = await call(port, 'GET', '/livez', undefined, { agent });
      if (r.status !== 200) throw new Error(`/livez answered ${r.status}`);
      times.push(r.ms);
    }
  } finally {
    agent.destroy();
  }
  return times;
}

async function waitForServer(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`the API exited with ${child.exitCode}`);
    try {
      if ((await call(port, 'GET', '/livez')).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the API did not start within 30 s');
}

export async function main(args: string[]): Promise<object> {
  const logins = Number(arg(args, 'logins') ?? 50);
  const samples = Number(arg(args, 'samples') ?? 30);
  const threadpool = arg(args, 'threadpool');
  const log = (line: string) => console.log(`[bench:login] ${line}`);
  const stack = await startTestStack(log);
  const db = await createTestDatabase('benchlogin');
  const keysDir = mkdtempSync(path.join(tmpdir(), 'agentina-bench-keys-'));
  let server: ChildProcess | undefined;
  try {
    const password = 'bench password that is long enough';
    const hash = await hashPassword(password);
    const emails: string[] = [];
    for (let i = 0; i < logins + 2 * samples; i++) {
      const email = `bench-${i}@example.test`;
      await adminsRepo.insertAdmin(db.pool, { id: newId('adm'), email, passwordHash: hash, role: 'owner' });
      emails.push(email);
    }
    // The last `samples` accounts are locked, as five failed guesses would leave them.
    const lockedEmails = emails.slice(logins + samples);
    await db.pool.query(
      `UPDATE admins SET failed_logins = 5, locked_until = now() + interval '1 hour' WHERE email = ANY($1)`,
      [lockedEmails],
    );
    log(`seeded ${emails.length} admins (${lockedEmails.length} locked)`);

    const port = await freePort();
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      DATABASE_URL: db.adminUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      TEMPORAL_ADDRESS: process.env.AGENTINA_TEST_TEMPORAL_ADDRESS,
      AGENTINA_KEYS_DIR: keysDir,
      LOG_LEVEL: 'warn',
      ...(threadpool ? { UV_THREADPOOL_SIZE: threadpool } : {}),
    };
    server = spawn(process.execPath, [path.resolve(__dirname, '../../bin/agentina.js'), 'serve'], {
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    await waitForServer(port, server);
    log(`API listening on :${port} (UV_THREADPOOL_SIZE=${threadpool ?? 'server default'})`);

    // Idle baseline.
    const idleUntil = performance.now() + 2000;
    const idle = await livezLoop(port, () => performance.now() > idleUntil);
    log(`idle: ${idle.length} /livez calls, p99 ${round(pct(idle, 99))} ms`);

    // 50 concurrent logins against a /livez loop.
    let done = false;
    const livez = livezLoop(port, () => done);
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    const answers = await Promise.all(
      emails
        .slice(0, logins)
        .map((email, i) =>
          call(
            port,
            'POST',
            '/v1/admin/login',
            { email, password },
            { localAddress: `127.0.${1 + Math.floor(i / 250)}.${2 + (i % 250)}` },
          ),
        ),
    );
    const wall = performance.now() - started;
    done = true;
    const busy = await livez;
    const failed = answers.filter((a) => a.status !== 200).length;
    if (failed) throw new Error(`${failed} of ${logins} logins failed`);
    const loginMs = answers.map((a) => a.ms);
    log(
      `${logins} logins in ${Math.round(wall)} ms: p50 ${Math.round(pct(loginMs, 50))} ms, max ${Math.round(Math.max(...loginMs))} ms; /livez meanwhile: ${busy.length} calls, p99 ${round(pct(busy, 99))} ms`,
    );

    // Unknown email, wrong password and locked account (the right password), interleaved in a
    // rotating order, one at a time; each wrong guess and each locked try on its own account.
    const unknown: number[] = [];
    const wrong: number[] = [];
    const locked: number[] = [];
    for (let i = 0; i < samples; i++) {
      const ip = `127.0.9.${2 + i}`;
      const tries: Array<[number[], object]> = [
        [unknown, { email: `nobody-${i}@example.test`, password: 'not the password at all' }],
        [wrong, { email: emails[logins + i]!, password: 'not the password at all' }],
        [locked, { email: lockedEmails[i]!, password }],
      ];
      for (let k = 0; k < tries.length; k++) {
        const [into, body] = tries[(i + k) % tries.length]!;
        const r = await call(port, 'POST', '/v1/admin/login', body, { localAddress: ip });
        if (r.status !== 401) throw new Error(`expected 401, got ${r.status}`);
        into.push(r.ms);
      }
    }
    const median = (xs: number[]) => pct(xs, 50);
    const ratio = (a: number[], b: number[]) => Math.round((median(a) / median(b)) * 100) / 100;
    log(
      `p50: unknown email ${round(median(unknown))} ms, wrong password ${round(median(wrong))} ms, locked account ${round(median(locked))} ms`,
    );

    return {
      bench: 'login',
      logins,
      login_p50_ms: Math.round(pct(loginMs, 50)),
      livez_p99_ms: round(pct(busy, 99)),
      livez_p99_idle_ms: round(pct(idle, 99)),
      unknown_p50_ms: round(median(unknown)),
      wrong_p50_ms: round(median(wrong)),
      locked_p50_ms: round(median(locked)),
      unknown_vs_wrong_ratio: ratio(unknown, wrong),
      locked_vs_wrong_ratio: ratio(locked, wrong),
      locked_vs_unknown_ratio: ratio(locked, unknown),
      threadpool: threadpool ? Number(threadpool) : 'default',
      cores: (await import('node:os')).availableParallelism(),
    };
  } finally {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    await db.drop();
    await stack.stop();
    rmSync(keysDir, { recursive: true, force: true });
  }
}
