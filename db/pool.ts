import { Pool, type PoolClient, type PoolConfig } from 'pg';

/** Anything that can run a query: the pool itself or a client inside a transaction. */
export type Queryable = Pick<Pool, 'query'> | PoolClient;
export type Tx = PoolClient;

export const SCHEMA = 'agentina';

export type PoolOptions = {
  applicationName?: string;
  max?: number;
  statementTimeoutMs?: number;
};

export function createPool(url: string, opts: PoolOptions = {}): Pool {
  const config: PoolConfig = {
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'agentina',
    options: `-c search_path=${SCHEMA}`,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 10000,
  };
  if (opts.statementTimeoutMs !== undefined) config.statement_timeout = opts.statementTimeoutMs;
  const pool = new Pool(config);
  // An idle client that loses its server must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  // Nor may a checked-out one between two queries (the pool listens only while a client is idle):
  // its next query fails, the caller answers 503, and the pool drops it on release.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Clients inside withTransaction, and the statement to run after COMMIT for those that need one. */
const managed = new WeakSet<PoolClient>();
const afterCommit = new WeakMap<PoolClient, string>();

/**
 * For a transaction run by withTransaction: lets its COMMIT be asynchronous (the audit chain
 * releases its lock before the WAL flush, see db/migrations/0053) because withTransaction runs
 * `flushSql` -- a statement that writes WAL and commits synchronously, so its flush covers the
 * earlier commit (WAL is flushed in order) -- before it returns. Returns false, and changes
 * nothing, for a client withTransaction did not start.
 */
export function deferCommitFlush(tx: Tx, flushSql: string): boolean {
  if (!managed.has(tx)) return false;
  afterCommit.set(tx, flushSql);
  return true;
}

/** Runs `fn` in one transaction on a dedicated client; commits on success, rolls back on throw. */
export async function withTransaction<T>(pool: Pool, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  managed.add(client);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    const flushSql = afterCommit.get(client);
    if (flushSql !== undefined) await client.query(flushSql);
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    managed.delete(client);
    afterCommit.delete(client);
    client.release();
  }
}

/** Resolves when the server answers `SELECT 1`; rejects with the driver's error otherwise. */
export async function pingDatabase(db: Queryable): Promise<void> {
  await db.query('SELECT 1');
}

/** Notice channels this schema NOTIFYs on (status_feed and tasks). */
export type NoticeChannel = 'agentina_status' | 'agentina_tasks' | 'agentina_webhooks';

/** Subscribes a dedicated connection to a notice channel. */
export async function listen(client: PoolClient, channel: NoticeChannel): Promise<void> {
  await client.query(`LISTEN ${channel}`);
}

/** Unsubscribes before the connection goes back or away; a failure here changes nothing. */
export async function unlisten(client: PoolClient, channel: NoticeChannel): Promise<void> {
  await client.query(`UNLISTEN ${channel}`).catch(() => undefined);
}
