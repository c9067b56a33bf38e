import { spawnSync } from 'node:child_process';
import { startEmbeddedChild } from '../support/embedded-postgres';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';

async function query<T>(url: string, sql: string): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

/**
 * `npm start` falls back to embedded PostgreSQL when no server answers. PostgreSQL will not run
 * as root, so as root it must run as the `postgres` OS user; its data must survive a restart;
 * and the path may contain spaces.
 */
describe('embedded PostgreSQL fallback', () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'agentina emb '));
  const dataDir = path.join(base, 'data dir');
  beforeAll(() => chmodSync(base, 0o755));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('starts real PostgreSQL (not as root), keeps its data across restarts, from a path with spaces', async () => {
    const first = await startEmbeddedChild(dataDir);
    try {
      const [v] = await query<{ v: number; pid: number }>(
        first.url,
        "SELECT current_setting('server_version_num')::int AS v, pg_backend_pid() AS pid",
      );
      expect(v!.v).toBeGreaterThanOrEqual(160000);
      const owner = spawnSync('ps', ['-o', 'user=', '-p', String(v!.pid)], { encoding: 'utf8' }).stdout.trim();
      expect(owner).not.toBe('root');
      await query(first.url, 'CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)');
    } finally {
      await first.stop();
    }
    const second = await startEmbeddedChild(dataDir);
    try {
      expect(second.url).toBe(first.url);
      expect(await query(second.url, 'SELECT x FROM kept')).toEqual([{ x: 42 }]);
    } finally {
      await second.stop();
    }
  });
});
