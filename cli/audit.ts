import { createReadStream, createWriteStream, existsSync, openSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config';
import { createPool } from '../db/pool';
import { exportLedger, verifyLedger } from '../db/audit-ledger';
import {
  checkpointsFromExport,
  createExportVerifier,
  keyFilePaths,
  loadKeySet,
  loadPurposeKeySet,
  type ChainVerifyResult,
  type KeySet,
} from '../protocol';

export const AUDIT_USAGE = `Usage:
  agentina audit verify [--from N] [--file export.jsonl] [--keys audit.pub.json]
                       [--checkpoints earlier-export.jsonl] [--json]
      Re-walks the audit chain (the database at DATABASE_URL, or an export file), recomputes
      every hash and checks every checkpoint signature against the public key set (default:
      AGENTINA_KEYS_DIR/audit.pub.json). --checkpoints adds the checkpoints of an export you kept
      elsewhere, so rows cut together with their stored checkpoints are still caught.
      Reports the first broken link with its sequence number.
      Exit 0 only when everything holds; 1 when the chain is broken or cannot be read.
  agentina audit export [--since <seq|ISO time>] [--out file]
      Writes JSON lines: a header, every signed checkpoint, then the rows from --since with their
      hashes, for \`audit verify --file\` on another machine.
`;

type Out = (line: string) => void;

function loadVerifyKeys(file: string | undefined, keysDir: () => string, err: Out): KeySet {
  if (file) return loadKeySet([file]);
  const dir = keysDir();
  const set = keyFilePaths(dir, 'audit').publicSet;
  if (!existsSync(set))
    err(`warning: no audit public keys at ${set}; every checkpoint will count as signed by an unknown key`);
  return loadPurposeKeySet(dir, 'audit');
}

export function describeResult(r: ChainVerifyResult): string[] {
  const latest = r.checkpoints.latest;
  const cp = `${r.checkpoints.total} checkpoint(s), ${r.checkpoints.valid} valid${latest ? `, newest at sequence ${latest.sequence} signed by ${latest.kid} at ${latest.time}` : ''}`;
  if (r.ok) {
    return [
      `audit chain OK: ${r.events} row(s) checked, sequence ${r.checkedFrom} through ${r.checkedThrough}; ${cp}`,
      ...(r.unsignedTail ? [`${r.unsignedTail} row(s) after the newest checkpoint are linked but not yet signed`] : []),
    ];
  }
  const b = r.firstBreak!;
  return [
    `audit chain BROKEN at sequence ${b.seq}: ${b.code}: ${b.message}`,
    `holds from ${r.checkedFrom} through ${r.checkedThrough}; ${cp}`,
  ];
}

async function verify(args: string[], out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      from: { type: 'string' },
      file: { type: 'string' },
      keys: { type: 'string' },
      checkpoints: { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  let from: number | undefined;
  if (values.from !== undefined) {
    if (!/^\d{1,15}$/.test(values.from) || Number(values.from) < 1) {
      err('--from must be a sequence number ≥ 1');
      return 2;
    }
    if (values.file) {
      err('--from applies to the database; an export starts where it was cut');
      return 2;
    }
    from = Number(values.from);
  }
  if (values.checkpoints && values.file) {
    err('--checkpoints applies to the database; an export carries its own checkpoints');
    return 2;
  }
  const keys = loadVerifyKeys(values.keys, () => loadConfig().keysDir, err);
  let result: ChainVerifyResult;
  if (values.file) {
    const v = createExportVerifier(keys);
    const lines = createInterface({ input: createReadStream(values.file, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) v.push(line);
    result = v.finish();
  } else {
    const config = loadConfig();
    const pool = createPool(config.databaseUrl, { applicationName: 'agentina-audit-verify', max: 1 });
    try {
      const heldCheckpoints = values.checkpoints
        ? checkpointsFromExport(readFileSync(values.checkpoints, 'utf8').split('\n'))
        : [];
      result = await verifyLedger(pool, keys, { ...(from === undefined ? {} : { from }), heldCheckpoints });
    } finally {
      await pool.end();
    }
  }
  if (values.json) out(JSON.stringify(result));
  else for (const l of describeResult(result)) (result.ok ? out : err)(l);
  return result.ok ? 0 : 1;
}

function parseSince(s: string | undefined): { seq: number } | { time: Date } | undefined {
  if (s === undefined) return { seq: 1 };
  if (/^\d{1,15}$/.test(s)) return { seq: Math.max(1, Number(s)) };
  if (!/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(s)) return undefined;
  const t = new Date(s);
  return Number.isNaN(t.getTime()) ? undefined : { time: t };
}

function lineWriter(stream: NodeJS.WritableStream) {
  return (line: string): Promise<void> | undefined =>
    stream.write(`${line}\n`) ? undefined : new Promise<void>((resolve) => void stream.once('drain', () => resolve()));
}

async function exportCommand(args: string[], out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({ args, options: { since: { type: 'string' }, out: { type: 'string' } }, strict: true });
  const since = parseSince(values.since);
  if (!since) {
    err('--since must be a sequence number or an ISO time (e.g. 2026-01-31T00:00:00Z)');
    return 2;
  }
  const config = loadConfig();
  const pool = createPool(config.databaseUrl, { applicationName: 'agentina-audit-export', max: 1 });
  // Opened synchronously so an existing file is refused before anything is read.
  const file = values.out ? createWriteStream('', { fd: openSync(values.out, 'wx', 0o640) }) : undefined;
  try {
    const summary = await exportLedger(pool, since, lineWriter(file ?? process.stdout));
    const note = `exported ${summary.events} row(s) (sequence ${summary.from} through ${summary.through}) and ${summary.checkpoints} checkpoint(s)${values.out ? ` to ${values.out}` : ''}`;
    (file ? out : err)(note);
    return 0;
  } finally {
    await pool.end();
    if (file) await new Promise<void>((resolve, reject) => file.end((e?: Error | null) => (e ? reject(e) : resolve())));
  }
}

/** `agentina audit <sub>`; returns the exit code. */
export async function auditCommand(args: string[], out: Out = console.log, err: Out = console.error): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'verify') return verify(rest, out, err);
  if (sub === 'export') return exportCommand(rest, out, err);
  err(AUDIT_USAGE);
  return 2;
}
