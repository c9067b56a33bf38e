import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { APP_ROLE, OWNER_ROLE } from '../config';
import { SCHEMA } from './pool';

export const MIGRATIONS_DIR = path.join(__dirname, 'migrations');

export type Migration = { version: number; name: string; sql: string; checksum: string };
export type MigrateResult = { applied: string[]; current: number };

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const seen = new Set<number>();
  return files.map((file) => {
    const m = FILE_PATTERN.exec(file);
    if (!m) throw new Error(`Migration file name must look like 0001_name.sql: ${file}`);
    const version = Number(m[1]);
    if (seen.has(version)) throw new Error(`Two migrations share number ${m[1]}`);
    seen.add(version);
    const sql = readFileSync(path.join(dir, file), 'utf8');
    return { version, name: file, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

/**
 * Roles are cluster-wide, so two databases migrated at once may race to create them;
 * the exception handlers make that harmless.
 */
const BOOTSTRAP_SQL = `
DO $$ BEGIN
  CREATE ROLE ${OWNER_ROLE} NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE ${APP_ROLE} LOGIN NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN
  EXECUTE format('GRANT ${OWNER_ROLE} TO %I', current_user);
EXCEPTION WHEN duplicate_object OR unique_violation OR invalid_grant_operation THEN NULL; END $$;
CREATE SCHEMA IF NOT EXISTS ${SCHEMA} AUTHORIZATION ${OWNER_ROLE};
GRANT USAGE ON SCHEMA ${SCHEMA} TO ${APP_ROLE};
REVOKE CREATE ON SCHEMA ${SCHEMA} FROM PUBLIC;
CREATE TABLE IF NOT EXISTS ${SCHEMA}.schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE ${SCHEMA}.schema_migrations OWNER TO ${OWNER_ROLE};
`;

/**
 * Applies every pending migration, in order, in one transaction, as the schema owner role.
 * `url` must be a role that may create roles (or they must exist) and may act as the owner.
 * Refuses to run if an applied migration's file has changed since.
 */
export async function migrate(
  url: string,
  opts: { dir?: string; log?: (line: string) => void; appPassword?: string; upTo?: number } = {},
): Promise<MigrateResult> {
  // `upTo`: stop after that version (restore loads an archive into the schema it was taken from).
  const migrations = loadMigrations(opts.dir).filter((m) => opts.upTo === undefined || m.version <= opts.upTo);
  const client = new Client({ connectionString: url, application_name: 'agentina-migrate' });
  await client.connect();
  try {
    await client.query('BEGIN');
    // One migrator per database at a time.
    await client.query('SELECT pg_advisory_xact_lock(7310001)');
    await client.query(BOOTSTRAP_SQL);
    if (opts.appPassword) {
      // Parameters cannot be bound in utility statements; quote the literal safely instead.
      const literal = `'${opts.appPassword.replace(/'/g, "''")}'`;
      await client.query(`ALTER ROLE ${APP_ROLE} PASSWORD ${literal}`);
    }
    await client.query(`SET LOCAL ROLE ${OWNER_ROLE}`);
    await client.query(`SET LOCAL search_path = ${SCHEMA}`);
    const { rows } = await client.query<{ version: number; checksum: string; name: string }>(
      'SELECT version, checksum, name FROM schema_migrations ORDER BY version',
    );
    const done = new Map(rows.map((r) => [r.version, r]));
    const applied: string[] = [];
    for (const m of migrations) {
      const prior = done.get(m.version);
      if (prior) {
        if (prior.checksum !== m.checksum) {
          throw new Error(`Migration ${m.name} was changed after it was applied; add a new migration instead`);
        }
        continue;
      }
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        m.checksum,
      ]);
      applied.push(m.name);
      opts.log?.(`applied ${m.name}`);
    }
    await client.query('COMMIT');
    const current = migrations.length ? Math.max(...migrations.map((m) => m.version)) : 0;
    return { applied, current };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}

/** Creates the database named in `url` if it does not exist, connecting to `postgres` to do so. */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!name) throw new Error('DATABASE_URL names no database');
  const probe = new Client({ connectionString: url });
  try {
    await probe.connect();
    await probe.end();
    return;
  } catch (err) {
    await probe.end().catch(() => undefined);
    if ((err as { code?: string }).code !== '3D000') throw err;
  }
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  } catch (err) {
    if ((err as { code?: string }).code !== '42P04') throw err;
  } finally {
    await client.end();
  }
}
