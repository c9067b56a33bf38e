import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';

/** A child process this stack started and must stop. */
export type ManagedProcess = {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  stop(graceMs?: number): Promise<void>;
};

export function startProcess(
  name: string,
  command: string,
  args: string[],
  opts: SpawnOptions & { logFile?: string; onOutput?: (chunk: string) => void } = {},
): ManagedProcess {
  const { logFile, onOutput, ...spawnOpts } = opts;
  const child = spawn(command, args, { ...spawnOpts, stdio: ['ignore', 'pipe', 'pipe'] });
  if (logFile) {
    mkdirSync(path.dirname(logFile), { recursive: true });
    const out = createWriteStream(logFile, { flags: 'a' });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
  }
  if (onOutput) {
    child.stdout?.on('data', (c: Buffer) => onOutput(c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => onOutput(c.toString('utf8')));
  }
  if (!logFile && !onOutput) {
    child.stdout?.resume();
    child.stderr?.resume();
  }
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  return {
    name,
    child,
    exited,
    async stop(graceMs = 10000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
