import type { Client } from 'pg';
import { OWNER_ROLE } from '../config';
import { SCHEMA } from './pool';

/**
 * A consistent copy of the agentina schema's rows, read in one REPEATABLE READ transaction (one
 * snapshot: the audit chain, licenses and agents as of one instant) and written back into a
 * freshly migrated schema. Rows travel as PostgreSQL's own record text (`t::text`), which every
 * column type reads back exactly. No pg_dump is needed, so the server's version does not have
 * to match a client's.
 */
export type SnapshotRecord =
  | { kind: 'migrations'; migrations: { version: number; name: string; checksum: string }[] }
  | { kind: 'rows'; table: string; rows: string[] }
  | { kind: 'sequence'; name: string; lastValue: string; isCalled: boolean };

/** Tables whose rows are transient (staged audit rows chain at commit; per-backend flush counters). */
const TRANSIENT_TABLES = new Set(['audit_staging', 'audit_commit_flush', 'schema_migrations']);
const BATCH_ROWS = 1000;

const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;
const qualified = (name: string): string => `${SCHEMA}.${ident(name)}`;

/** The schema's tables, parents before children (foreign keys), transient ones left out. */
async function tablesInLoadOrder(db: Client): Promise<string[]> {
  const { rows: tables } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c
      WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') ORDER BY c.relname`,
    [SCHEMA],
  );
  const { rows: fks } = await db.query<{ child: string; parent: string }>(
    `SELECT cc.relname AS child, pc.relname AS parent FROM pg_constraint k
       JOIN pg_class cc ON cc.oid = k.conrelid JOIN pg_class pc ON pc.oid = k.confrelid
      WHERE k.contype = 'f' AND k.connamespace = $1::regnamespace AND k.conrelid <> k.confrelid`,
    [SCHEMA],
  );
  const names = tables.map((t) => t.name).filter((n) => !TRANSIENT_TABLES.has(n));
  const ordered: string[] = [];
  const visiting = new Set<string>();
  const visit = (n: string) => {
    if (ordered.includes(n) || visiting.has(n)) return;
    visiting.add(n);
    for (const fk of fks) if (fk.child === n) visit(fk.parent);
    ordered.push(n);
  };
  for (const n of names) visit(n);
  return ordered.filter((n) => names.includes(n));
}

/** Reads the whole schema in one snapshot, handing each record to `emit` (which may apply back-pressure). */
export async function exportSnapshot(db: Client, emit: (r: SnapshotRecord) => Promise<void> | void): Promise<void> {
  await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const { rows: migrations } = await db.query<{ version: number; name: string; checksum: string }>(
      `SELECT version, name, checksum FROM ${qualified('schema_migrations')} ORDER BY version`,
    );
    await emit({ kind: 'migrations', migrations });
    for (const table of await tablesInLoadOrder(db)) {
      await db.query(`DECLARE snap NO SCROLL CURSOR FOR SELECT t::text AS r FROM ${qualified(table)} t`);
      for (;;) {
        const { rows } = await db.query<{ r: string }>(`FETCH ${BATCH_ROWS} FROM snap`);
        if (rows.length === 0) break;
        await emit({ kind: 'rows', table, rows: rows.map((x) => x.r) });
      }
      await db.query('CLOSE snap');
    }
    const { rows: seqs } = await db.query<{ name: string }>(
      `SELECT relname AS name FROM pg_class WHERE relkind = 'S' AND relnamespace = $1::regnamespace ORDER BY relname`,
      [SCHEMA],
    );
    for (const s of seqs) {
      const { rows } = await db.query<{ last_value: string; is_called: boolean }>(
        `SELECT last_value::text, is_called FROM ${qualified(s.name)}`,
      );
      await emit({ kind: 'sequence', name: s.name, lastValue: rows[0]!.last_value, isCalled: rows[0]!.is_called });
    }
  } finally {
    await db.query('ROLLBACK');
  }
}

/** Tables of the schema holding any row beyond what the migrations themselves put there. */
export async function nonEmptyTables(db: Client): Promise<string[]> {
  const { rows: exists } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1`,
    [SCHEMA],
  );
  if (exists[0]!.n === 0) return [];
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p')`,
    [SCHEMA],
  );
  const full: string[] = [];
  for (const { name } of rows) {
    if (TRANSIENT_TABLES.has(name)) continue;
    // audit_head holds its genesis row (seq 0) from the first migration.
    const where = name === 'audit_head' ? ' WHERE seq > 0' : '';
    const r = await db.query(`SELECT 1 FROM ${qualified(name)}${where} LIMIT 1`);
    if (r.rowCount) full.push(name);
  }
  return full;
}

/** Drops the schema and everything in it (restore --force); the caller migrates again. */
export async function dropSchema(db: Client): Promise<void> {
  await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
}

/** The migrations applied to the target (to compare with the archive's). */
export async function appliedMigrations(db: Client): Promise<{ version: number; checksum: string }[]> {
  const { rows } = await db.query<{ version: number; checksum: string }>(
    `SELECT version, checksum FROM ${qualified('schema_migrations')} ORDER BY version`,
  );
  return rows;
}

/**
 * Loads records into the migrated, empty schema. Runs inside the caller's transaction on `db`
 * (as the schema owner): `begin` once, `load` per record, then the caller commits. The rows the
 * migrations seeded (the audit head's genesis row) are replaced by the archive's.
 */
export function createSnapshotLoader(db: Client) {
  const columns = new Map<string, string[]>();
  const cleared = new Set<string>();
  const counts: Record<string, number> = {};

  async function insertableColumns(table: string): Promise<string[]> {
    const known = columns.get(table);
    if (known) return known;
    const { rows } = await db.query<{ name: string }>(
      `SELECT a.attname AS name FROM pg_attribute a
        WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
        ORDER BY a.attnum`,
      [qualified(table)],
    );
    if (rows.length === 0) throw new Error(`the archive names a table this release does not have: ${table}`);
    const list = rows.map((r) => r.name);
    columns.set(table, list);
    return list;
  }

  return {
    async begin(): Promise<void> {
      await db.query('BEGIN');
      await db.query(`SET LOCAL ROLE ${OWNER_ROLE}`);
    },
    async load(record: SnapshotRecord): Promise<void> {
      if (record.kind === 'rows') {
        const cols = await insertableColumns(record.table);
        if (!cleared.has(record.table)) {
          cleared.add(record.table);
          if (record.table === 'audit_head') await db.query(`DELETE FROM ${qualified('audit_head')}`);
        }
        const list = cols.map(ident).join(', ');
        const picked = cols.map((c) => `(x).${ident(c)}`).join(', ');
        await db.query(
          `INSERT INTO ${qualified(record.table)} (${list}) OVERRIDING SYSTEM VALUE
           SELECT ${picked} FROM (SELECT r::${qualified(record.table)} AS x FROM unnest($1::text[]) AS r) s`,
          [record.rows],
        );
        counts[record.table] = (counts[record.table] ?? 0) + record.rows.length;
      } else if (record.kind === 'sequence') {
        await db.query(`SELECT setval($1::regclass, $2::bigint, $3)`, [
          qualified(record.name),
          record.lastValue,
          record.isCalled,
        ]);
      }
    },
    counts: (): Readonly<Record<string, number>> => counts,
  };
}
