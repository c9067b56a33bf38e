import { copyFileSync, mkdtempSync, readdirSync, writeFileSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { migrate, MIGRATIONS_DIR, createPool } from '../../db';
import { withDatabase } from '../../scripts/stack/postgres';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';

async function freshDatabase(label: string): Promise<{ url: string; drop(): Promise<void> }> {
  const server = testEnv('AGENTINA_TEST_PG_ADMIN_URL');
  const name = `agentina_t_${label}_${Math.random().toString(16).slice(2, 10)}`;
  const c = new Client({ connectionString: server });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  return {
    url: withDatabase(server, name),
    async drop() {
      const d = new Client({ connectionString: server });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    },
  };
}

function copyMigrations(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentina-migrations-'));
  for (const f of readdirSync(MIGRATIONS_DIR)) copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(dir, f));
  return dir;
}

describe('migrations and roles', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('migrations');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('creates every table owned by agentina_owner, a role that cannot log in', async () => {
    const { rows } = await db.adminPool.query<{ tablename: string; tableowner: string }>(
      "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'agentina'",
    );
    expect(rows.length).toBeGreaterThan(3);
    for (const r of rows) expect(r).toEqual({ tablename: r.tablename, tableowner: 'agentina_owner' });
    const owner = await db.adminPool.query("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'agentina_owner'");
    expect(owner.rows[0].rolcanlogin).toBe(false);
  });

  it('gives the application role no way to change the schema or become the owner', async () => {
    const app = await db.pool.connect();
    try {
      const me = await app.query('SELECT current_user, usesuper FROM pg_user WHERE usename = current_user');
      expect(me.rows[0]).toEqual({ current_user: 'agentina_app', usesuper: false });
      await expect(app.query('CREATE TABLE agentina.sneaky (x int)')).rejects.toMatchObject({ code: '42501' });
      await expect(app.query('CREATE TABLE public.sneaky (x int)')).rejects.toMatchObject({ code: '42501' });
      await expect(app.query('SET ROLE agentina_owner')).rejects.toMatchObject({ code: '42501' });
      await expect(app.query('ALTER TABLE agentina.admins ADD COLUMN x int')).rejects.toMatchObject({ code: '42501' });
      await expect(app.query('DROP TABLE agentina.customers')).rejects.toMatchObject({ code: '42501' });
    } finally {
      app.release();
    }
  });

  it('is idempotent: a second run applies nothing', async () => {
    const again = await migrate(db.adminUrl);
    expect(again.applied).toEqual([]);
  });

  it('records each migration with its checksum and refuses an applied migration that was edited', async () => {
    const { rows } = await db.adminPool.query('SELECT version, name FROM agentina.schema_migrations ORDER BY version');
    expect(rows[0]).toEqual({ version: 1, name: '0001_foundation.sql' });
    const dir = copyMigrations();
    appendFileSync(path.join(dir, '0001_foundation.sql'), '\n-- edited after the fact\n');
    await expect(migrate(db.adminUrl, { dir })).rejects.toThrow(
      /0001_foundation\.sql was changed after it was applied/,
    );
  });

  it('applies all pending migrations in one transaction: a failing one leaves nothing behind', async () => {
    const fresh = await freshDatabase('mig_fail');
    try {
      const dir = copyMigrations();
      writeFileSync(path.join(dir, '9998_good.sql'), 'CREATE TABLE will_vanish (x int);');
      writeFileSync(path.join(dir, '9999_bad.sql'), 'CREATE TABLE broken (x no_such_type);');
      await expect(migrate(fresh.url, { dir })).rejects.toThrow(/no_such_type/);
      const pool = createPool(fresh.url, { max: 1 });
      const t = await pool.query(
        "SELECT to_regclass('agentina.will_vanish') AS good, to_regclass('agentina.admins') AS admins",
      );
      await pool.end();
      expect(t.rows[0]).toEqual({ good: null, admins: null });
    } finally {
      await fresh.drop();
    }
  });

  it('lets two migrators race on a fresh database: each migration is applied once', async () => {
    const fresh = await freshDatabase('mig_race');
    try {
      const [a, b] = await Promise.all([migrate(fresh.url), migrate(fresh.url)]);
      expect(a.applied.length + b.applied.length).toBe(
        readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).length,
      );
      expect(Math.min(a.applied.length, b.applied.length)).toBe(0);
    } finally {
      await fresh.drop();
    }
  });
});
