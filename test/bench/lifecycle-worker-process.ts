import { spawn, type ChildProcess } from 'node:child_process';

/** Starts `script` (a worker taking one JSON argument) in its own Node process; resolves once it prints "worker ready". */
export function startWorkerProcess(script: string, args: object): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['-r', 'tsx/cjs', script, JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    proc.stdout.on('data', (c: Buffer) => c.toString().includes('worker ready') && resolve(proc));
    proc.on('exit', (code, signal) => reject(new Error(`worker process exited (${code ?? signal})`)));
  });
}

/** SIGTERM (the worker drains), SIGKILL after 15 s. */
export async function stopWorkerProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15000);
  await exited;
  clearTimeout(timer);
}

export const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;

/** Runs `one(i)` for i = 1..n with `concurrency` in flight; returns the elapsed seconds. */
export async function runConcurrently(
  n: number,
  concurrency: number,
  one: (i: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await one(++next);
    }),
  );
  return (performance.now() - started) / 1000;
}
