import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Runs scripts/stack/postgres.ts startEmbedded in a child process, as `npm start` does (the
 * package is ESM-only, which Jest's sandbox cannot load), and returns its URL and a stop function.
 */
export async function startEmbeddedChild(dataDir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const script = `
    const { startEmbedded } = require('./scripts/stack/postgres.ts');
    startEmbedded(process.argv[1], () => undefined).then((pg) => {
      process.stdout.write(JSON.stringify({ url: pg.adminUrl }) + '\\n');
      process.stdin.on('end', () => pg.stop().then(() => process.exit(0)));
      process.stdin.resume();
    }, (err) => { console.error(err); process.exit(1); });`;
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', '-e', script, dataDir], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    void exited.then((code) => reject(new Error(`embedded PostgreSQL exited (${code}): ${err}`)));
  });
  return {
    url,
    async stop() {
      child.stdin.end();
      await exited;
    },
  };
}
