import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { AGENT_NODE_FLAGS, AGENT_PROCESS_ENV } from '../../agent/process-tuning';

/**
 * The agent refuses to run as root, and the test machines run tests as root: process-level agent
 * tests start it as an unprivileged system user (created here, idempotently) with a prefix that
 * user owns. The code tree and node_modules are world-readable, so the user can load them.
 */
export const AGENT_BIN = path.resolve(__dirname, '..', '..', 'bin', 'agentina-agent.js');
export const TEST_USER = 'agentina-test';
export type AgentUser = { uid: number; gid: number; name: string };

export function ensureAgentUser(): AgentUser {
  const me = userInfo();
  if (me.uid !== 0) return { uid: me.uid, gid: me.gid, name: me.username };
  const lookup = () => {
    try {
      return {
        uid: Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).trim()),
        gid: Number(execFileSync('id', ['-g', TEST_USER], { encoding: 'utf8' }).trim()),
      };
    } catch {
      return null;
    }
  };
  let ids = lookup();
  if (!ids) {
    try {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER], {
        stdio: 'ignore',
      });
    } catch {
      // another test file created it at the same moment
    }
    ids = lookup();
  }
  if (!ids) throw new Error(`could not create the unprivileged test user ${TEST_USER}`);
  return { ...ids, name: TEST_USER };
}

/** A fresh directory owned by the user, mode 0700 (their "home" for one test file). */
export const USER_HOME_PREFIX = 'agentina-userhome-';
/** Staged system installations (`install --root`) under the temp directory: their state directories are the user's. */
export const STAGING_ROOT_PREFIX = 'agentina-staging-';
export function makeUserDir(user: AgentUser, label: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `${USER_HOME_PREFIX}${label}-`));
  chownSync(dir, user.uid, user.gid);
  chmodSync(dir, 0o700);
  return dir;
}

/** A directory anyone may read (public keys, manifest, CA certificate). */
export function makePublicDir(label: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `agentina-${label}-`));
  chmodSync(dir, 0o755);
  return dir;
}

export type AgentProcess = {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

/** Starts the agent as `user`: the release bundle at `entry`, or by default the source launcher (tsx). */
export function spawnAgent(
  user: AgentUser,
  home: string,
  args: string[],
  opts: { stdin?: string; entry?: string; node?: string } = {},
): AgentProcess {
  const stdin = opts.stdin;
  // `run` starts the way the systemd unit starts it (node flags and environment for its footprint).
  const running = args[0] === 'run';
  const child = spawn(
    opts.node ?? process.execPath,
    [...(running ? AGENT_NODE_FLAGS : []), opts.entry ?? AGENT_BIN, ...args],
    {
      uid: user.uid,
      gid: user.gid,
      cwd: home,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', ...(running ? AGENT_PROCESS_ENV : {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout.on('data', (c: Buffer) => stdout.push(c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => stderr.push(c.toString('utf8')));
  if (stdin !== undefined) child.stdin.end(stdin);
  else child.stdin.end();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout, stderr, output: () => `${stdout.join('')}${stderr.join('')}`, exited };
}

export async function runAgentCommand(
  user: AgentUser,
  home: string,
  args: string[],
  opts: { stdin?: string; entry?: string; node?: string } = {},
) {
  const p = spawnAgent(user, home, args, opts);
  const { code } = await p.exited;
  return { code, stdout: p.stdout.join(''), stderr: p.stderr.join(''), output: p.output() };
}

/** Sockets a process holds, from /proc: which are listening (TCP LISTEN or bound UDP) and which are connected. */
export function socketsOf(pid: number): { listening: string[]; established: number; total: number } {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // fd closed meanwhile
    }
  }
  const listening: string[] = [];
  let established = 0;
  for (const table of ['tcp', 'tcp6', 'udp', 'udp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]!)) continue;
      const state = f[3];
      if (table.startsWith('tcp') && state === '0A') listening.push(`${table} ${f[1]}`);
      else if (table.startsWith('udp') && state === '07') listening.push(`${table} ${f[1]}`);
      else if (table.startsWith('tcp') && state === '01') established++;
    }
  }
  return { listening, established, total: inodes.size };
}

/** Runs the agent command line as the test process's own user (root on the test machines): install, uninstall. */
export async function runAgentAsRoot(args: string[], opts: { stdin?: string; entry?: string } = {}) {
  const child = spawn(process.execPath, [opts.entry ?? AGENT_BIN, ...args], {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout.on('data', (c: Buffer) => stdout.push(c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => stderr.push(c.toString('utf8')));
  child.stdin.end(opts.stdin ?? '');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, stdout: stdout.join(''), stderr: stderr.join(''), output: `${stdout.join('')}${stderr.join('')}` };
}

/** Runs a small script as `user` (the attacker's moves: write, rename, replace) and returns what it printed. */
export function runScriptAs(user: AgentUser, script: string): { code: number | null; output: string } {
  const r = spawnSync(process.execPath, ['-e', script], {
    uid: user.uid,
    gid: user.gid,
    cwd: '/',
    env: { PATH: '/usr/bin:/bin' },
    encoding: 'utf8',
  });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Activates an agent in development mode (`activate --user`) as `user`; returns its id, or throws with its output. */
export async function activateUserAgent(
  user: AgentUser,
  home: string,
  input: { server: string; token: string; prefix: string; keysFile: string; caFile: string; entry: string },
): Promise<string> {
  const flags = { '--server': input.server, '--token': input.token, '--prefix': input.prefix };
  const files = { '--keys': input.keysFile, '--ca': input.caFile };
  const args = ['activate', '--user', ...Object.entries({ ...flags, ...files }).flat()];
  const r = await runAgentCommand(user, home, args, { entry: input.entry });
  const id = /activated agent (agt_[A-Za-z0-9_-]+)/.exec(r.stdout)?.[1];
  if (r.code !== 0 || !id) throw new Error(`activation failed (${r.code}): ${r.output}`);
  return id;
}
