import { execFileSync, spawn } from 'node:child_process';
import type { Io } from './cli-options';

/**
 * The commands a system install or uninstall runs on the host (useradd, systemctl, userdel; printed
 * instead when staging under --root), the service user's lookup, and running the agent as that user.
 */
export type Sys = { staging: boolean; run(cmd: string, args: string[], opts?: { tolerate?: boolean }): void };
export function systemActions(staging: boolean, io: Io): Sys {
  return {
    staging,
    run(cmd, args, opts = {}) {
      const line = [cmd, ...args].join(' ');
      if (staging) {
        io.out(`would run: ${line}`);
        return;
      }
      try {
        execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        io.out(`ran: ${line}`);
      } catch (err) {
        const detail = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
        if (!opts.tolerate) throw new Error(`${line} failed: ${detail}`);
        io.err(`agentina-agent: ${line} failed (${detail}); continuing`);
      }
    },
  };
}

export function lookupUser(name: string): { uid: number; gid: number } | null {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: 'pipe' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return null;
  }
}

export function runAs(
  user: { uid: number; gid: number },
  argv: string[],
  stdin: string,
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      uid: user.uid,
      gid: user.gid,
      cwd,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('exit', (code) =>
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
    child.stdin.end(stdin);
  });
}
