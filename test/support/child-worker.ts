import { spawn, type ChildProcess } from 'node:child_process';
import { testEnv } from './env';

/**
 * The production worker in a child process (test/support/license-worker.ts), for tests that
 * SIGKILL it; resolves once it polls.
 */
export function startChildWorker(args: {
  address: string;
  taskQueue: string;
  appDatabaseUrl: string;
  keysDir: string;
  killAfterAction?: string;
  env?: Record<string, string>;
}): Promise<ChildProcess> {
  const proc = spawn(
    process.execPath,
    [
      '-r',
      'tsx/cjs',
      require.resolve('./license-worker.ts'),
      JSON.stringify({ ...args, bundlePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') }),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('worker ready')) resolve(proc);
    });
    proc.stderr.on('data', (c: Buffer) => void (out += c.toString()));
    proc.on('exit', (code, signal) => reject(new Error(`child worker exited early (${code ?? signal}): ${out}`)));
  });
}
