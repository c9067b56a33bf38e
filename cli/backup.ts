import { once } from 'node:events';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGunzip, createGzip } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { loadConfig, type Config } from '../config';
import { ensureDatabase, loadMigrations, migrate, SCHEMA, type Tx } from '../db';
import { appendAudit } from '../db/audit-repo';
import {
  appliedMigrations,
  createSnapshotLoader,
  dropSchema,
  exportSnapshot,
  nonEmptyTables,
  type SnapshotRecord,
} from '../db/snapshot';
import { HELD_CHECKPOINTS_FILE } from '../services/audit/checkpoint-service';
import { ArchiveError, createDecryptStream, createEncryptStream, passphraseFrom } from './backup-archive';

export const BACKUP_USAGE = `Usage:
  agentina backup --out FILE --passphrase-file P|-
      Writes one encrypted archive: a consistent copy of the agentina schema (one snapshot), the
      held audit checkpoints (AUDIT_CHECKPOINT_DIR) and the keys directory (AGENTINA_KEYS_DIR).
      The passphrase is the first line of P (or of stdin with -), never an argument. FILE must
      not exist; it is written 0600.
  agentina restore FILE --passphrase-file P|- [--force]
      Checks the whole archive (passphrase, nothing altered or missing), then restores it into the
      database at DATABASE_URL and into AGENTINA_KEYS_DIR, both of which must be empty; --force
      replaces a non-empty schema and moves an existing keys directory aside. Afterwards run the
      worker (or \`agentina reconcile\`): it restarts every lifecycle from the restored rows.
`;

type Out = (line: string) => void;
type FileRecord = { kind: 'file'; area: 'keys' | 'checkpoints'; name: string; mode: number; data: string };
type ArchiveRecord =
  | SnapshotRecord
  | { kind: 'meta'; format: 1; createdAt: string }
  | FileRecord
  | { kind: 'end'; rows: number; files: number };

const SAFE_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

function readPassphrase(source: string | undefined, err: Out): Buffer {
  if (!source) throw new ArchiveError('--passphrase-file is required (a file, or - for stdin)');
  if (source === '-') return passphraseFrom(readFileSync(0));
  const mode = statSync(source).mode;
  if (mode & 0o077) err(`warning: ${source} can be read by other users (mode ${(mode & 0o777).toString(8)})`);
  return passphraseFrom(readFileSync(source));
}

function heldCheckpointsPath(config: Config): string | undefined {
  return config.audit.checkpointDir && path.join(config.audit.checkpointDir, HELD_CHECKPOINTS_FILE);
}

/** Regular files directly in `dir` (key files; nothing else lives there). */
function filesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => lstatSync(path.join(dir, n)).isFile());
}

async function backup(args: string[], out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { out: { type: 'string' }, 'passphrase-file': { type: 'string' } },
    strict: true,
  });
  if (!values.out) {
    err('backup needs --out FILE');
    return 2;
  }
  const passphrase = readPassphrase(values['passphrase-file'], err);
  const config = loadConfig();
  // Opened synchronously with O_EXCL, before anything else: an existing archive is never overwritten.
  const file = createWriteStream('', { fd: openSync(values.out, 'wx', 0o600) });
  const db = new Client({ connectionString: config.databaseUrl, application_name: 'agentina-backup' });
  try {
    await db.connect();
  } catch (e) {
    file.destroy();
    rmSync(values.out, { force: true });
    throw e;
  }
  const gzip = createGzip();
  const written = pipeline(gzip, await createEncryptStream(passphrase), file);
  const failed = written.then(
    () => new Promise<never>(() => undefined),
    (e: unknown) => Promise.reject(e instanceof Error ? e : new Error(String(e))),
  );
  const write = async (r: ArchiveRecord): Promise<void> => {
    if (!gzip.write(`${JSON.stringify(r)}\n`)) await Promise.race([once(gzip, 'drain'), failed]);
  };
  let rows = 0;
  let files = 0;
  try {
    await write({ kind: 'meta', format: 1, createdAt: new Date().toISOString() });
    await exportSnapshot(db, async (r) => {
      if (r.kind === 'rows') rows += r.rows.length;
      await write(r);
    });
    const addFile = async (area: FileRecord['area'], full: string) => {
      const st = statSync(full);
      const data = readFileSync(full).toString('base64');
      await write({ kind: 'file', area, name: path.basename(full), mode: st.mode & 0o777, data });
      files++;
    };
    const held = heldCheckpointsPath(config);
    if (held && existsSync(held)) await addFile('checkpoints', held);
    else err('note: no held audit checkpoints file (AUDIT_CHECKPOINT_DIR) to include');
    const keyFiles = filesIn(config.keysDir);
    if (keyFiles.length === 0) err(`warning: no key files in ${config.keysDir}`);
    for (const name of keyFiles) await addFile('keys', path.join(config.keysDir, name));
    await write({ kind: 'end', rows, files });
    gzip.end();
    await written;
  } catch (e) {
    gzip.destroy();
    rmSync(values.out, { force: true });
    throw e;
  } finally {
    await db.end();
  }
  out(`backup written to ${values.out}: ${rows} row(s), ${files} file(s)`);
  return 0;
}

/** Decrypts, decompresses and parses an archive, handing each record to `fn` in order. */
async function readArchive(
  file: string,
  passphrase: Buffer,
  fn: (r: ArchiveRecord) => Promise<void> | void,
): Promise<void> {
  const source = createReadStream(file);
  const plain = source.pipe(createDecryptStream(passphrase));
  const text = plain.pipe(createGunzip());
  const failure = new Promise<never>((_, reject) => {
    source.once('error', reject);
    const fail = (e: Error) =>
      reject(e instanceof ArchiveError ? e : new ArchiveError(`the archive is damaged: ${e.message}`));
    plain.once('error', fail);
    text.once('error', fail);
  });
  failure.catch(() => undefined);
  const lines = createInterface({ input: Readable.from(text), crlfDelay: Infinity });
  let ended = false;
  const consume = async () => {
    for await (const line of lines) {
      if (line === '') continue;
      const r = JSON.parse(line) as ArchiveRecord;
      if (ended) throw new ArchiveError('the archive has records after its end');
      if (r.kind === 'end') ended = true;
      await fn(r);
    }
  };
  await Promise.race([consume(), failure]);
  if (!ended) throw new ArchiveError('the archive is incomplete (no end record)');
}

type ArchiveSummary = { createdAt: string; migrations: { version: number; checksum: string }[]; rows: number };

/** Pass one: the whole archive opens with this passphrase and is complete; nothing is applied. */
async function checkArchive(file: string, passphrase: Buffer): Promise<ArchiveSummary> {
  const s: ArchiveSummary = { createdAt: '', migrations: [], rows: 0 };
  await readArchive(file, passphrase, (r) => {
    if (r.kind === 'meta') s.createdAt = r.createdAt;
    if (r.kind === 'migrations') s.migrations = r.migrations;
    if (r.kind === 'rows') s.rows += r.rows.length;
    if (r.kind === 'file' && (!SAFE_FILE_NAME.test(r.name) || !['keys', 'checkpoints'].includes(r.area)))
      throw new ArchiveError(
        `the archive names a file that cannot be restored: ${JSON.stringify(r.name).slice(0, 80)}`,
      );
  });
  if (!s.createdAt || s.migrations.length === 0) throw new ArchiveError('the archive holds no database snapshot');
  return s;
}

/** The archive's schema must be one this release knows, migration for migration. */
function checkMigrations(archived: ArchiveSummary['migrations']): number {
  const local = new Map(loadMigrations().map((m) => [m.version, m.checksum]));
  for (const m of archived) {
    const mine = local.get(m.version);
    if (mine === undefined)
      throw new ArchiveError(
        `the archive was taken by a newer release (migration ${m.version} is unknown here); restore it with that release`,
      );
    if (mine !== m.checksum) throw new ArchiveError(`migration ${m.version} differs from this release's; refusing`);
  }
  return Math.max(...archived.map((m) => m.version));
}

async function restore(args: string[], out: Out, err: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { 'passphrase-file': { type: 'string' }, force: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
  const [file] = positionals;
  if (!file || positionals.length > 1) {
    err('restore needs exactly one archive: agentina restore FILE --passphrase-file P');
    return 2;
  }
  const force = values.force === true;
  const passphrase = readPassphrase(values['passphrase-file'], err);
  const config = loadConfig();

  // Refuse a non-empty target before reading anything else.
  await ensureDatabase(config.databaseUrl);
  const db = new Client({
    connectionString: config.databaseUrl,
    application_name: 'agentina-restore',
    options: `-c search_path=${SCHEMA}`,
  });
  await db.connect();
  try {
    const full = await nonEmptyTables(db);
    const keysTaken = filesIn(config.keysDir);
    const held = heldCheckpointsPath(config);
    const problems = [
      ...(full.length ? [`the database's agentina schema holds data (${full.slice(0, 5).join(', ')})`] : []),
      ...(keysTaken.length ? [`the keys directory ${config.keysDir} is not empty`] : []),
      ...(held && existsSync(held) ? [`${held} exists`] : []),
    ];
    if (problems.length && !force) {
      err(`restore refused: ${problems.join('; ')}. Restore into an empty target, or pass --force to replace it.`);
      return 1;
    }

    const summary = await checkArchive(file, passphrase);
    const version = checkMigrations(summary.migrations);
    out(`archive of ${summary.createdAt} opens and is complete: ${summary.rows} row(s), schema version ${version}`);

    if (full.length) {
      out('--force: dropping the existing agentina schema');
      await dropSchema(db);
    }
    const appPassword = config.appDbPassword ? { appPassword: config.appDbPassword } : {};
    await migrate(config.databaseUrl, { upTo: version, ...appPassword });
    const target = await appliedMigrations(db);
    if (
      target.map((m) => `${m.version}:${m.checksum}`).join() !==
      summary.migrations.map((m) => `${m.version}:${m.checksum}`).join()
    )
      throw new ArchiveError('the target schema does not match the archive after migrating; refusing');

    const staging = `${config.keysDir}.restore-${randomBytes(4).toString('hex')}`;
    mkdirSync(staging, { recursive: true, mode: 0o700 });
    let checkpoints: FileRecord | undefined;
    const loader = createSnapshotLoader(db);
    try {
      await loader.begin();
      await readArchive(file, passphrase, async (r) => {
        if (r.kind === 'file' && r.area === 'keys' && SAFE_FILE_NAME.test(r.name))
          writeFileSync(path.join(staging, r.name), Buffer.from(r.data, 'base64'), { mode: r.mode & 0o700 });
        else if (r.kind === 'file' && r.area === 'checkpoints') checkpoints = r;
        else if (r.kind === 'rows' || r.kind === 'sequence') await loader.load(r);
      });
      await recordRestore(db, summary, file);
      await db.query('COMMIT');
    } catch (e) {
      await db.query('ROLLBACK').catch(() => undefined);
      rmSync(staging, { recursive: true, force: true });
      throw e;
    }
    placeKeys(config.keysDir, staging, out);
    if (checkpoints && held) {
      mkdirSync(path.dirname(held), { recursive: true, mode: 0o750 });
      writeFileSync(held, Buffer.from(checkpoints.data, 'base64'), { mode: 0o640 });
      out(`held audit checkpoints restored to ${held}`);
    } else if (checkpoints) {
      err('warning: the archive holds audit checkpoints but AUDIT_CHECKPOINT_DIR is not set; they were not restored');
    }
    const rest = await migrate(config.databaseUrl, appPassword);
    if (rest.applied.length) out(`then migrated to version ${rest.current}`);
    const counts = loader.counts();
    out(
      `restored ${Object.values(counts).reduce((a, b) => a + b, 0)} row(s) in ${Object.keys(counts).length} table(s). ` +
        'Start the worker (or run `agentina reconcile`) to restart every lifecycle from the rows.',
    );
    return 0;
  } finally {
    await db.end();
  }
}

/** The restore itself joins the ledger, in the transaction that loaded it. */
async function recordRestore(db: Client, summary: ArchiveSummary, file: string): Promise<void> {
  // appendAudit takes a transaction's client; this one is inside BEGIN (loader.begin()).
  await appendAudit(db as unknown as Tx, {
    actor: { kind: 'system', id: 'agentina-restore' },
    action: 'backup.restored',
    subject: { kind: 'database', id: 'agentina' },
    data: { archive: path.basename(file), takenAt: summary.createdAt, rows: summary.rows },
  });
}

/** Moves the staged keys into place; a directory already there (--force) is kept beside it. */
function placeKeys(keysDir: string, staging: string, out: Out): void {
  if (existsSync(keysDir)) {
    const aside = `${keysDir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(keysDir, aside);
    out(`the previous keys directory was moved to ${aside}`);
  }
  renameSync(staging, keysDir);
  out(`keys restored to ${keysDir}`);
}

type Command = (args: string[], out: Out, err: Out) => Promise<number>;

/** An ArchiveError is the operator's to act on: one line and exit 1, not a stack. */
const refusing =
  (name: string, run: Command) =>
  async (args: string[], out: Out = console.log, err: Out = console.error): Promise<number> => {
    try {
      return await run(args, out, err);
    } catch (e) {
      if (!(e instanceof ArchiveError)) throw e;
      err(`${name} refused: ${e.message}`);
      return 1;
    }
  };

/** `agentina backup` and `agentina restore`. */
export const backupCommand = refusing('backup', backup);
export const restoreCommand = refusing('restore', restore);
