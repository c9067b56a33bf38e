import type { Worker } from '@temporalio/worker';

/**
 * The main of a worker run as a child process: builds it with `start`, prints "worker ready" (what
 * the parent waits for), runs it until SIGTERM/SIGINT drain it (Temporal's runtime traps them),
 * then closes what `start` opened and exits; any error exits 1.
 */
export function serveWorkerProcess(start: () => Promise<{ worker: Worker; close(): Promise<void> }>): void {
  start()
    .then(async (started) => {
      process.stdout.write('worker ready\n');
      await started.worker.run();
      await started.close();
    })
    .catch((err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    });
}
