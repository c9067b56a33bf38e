import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { portAnswers, waitFor } from './ports';
import { startProcess, type ManagedProcess } from './processes';

/** Custom search attributes every Agentina namespace has, so operators can filter lifecycles. */
export const SEARCH_ATTRIBUTES = ['LicenseId', 'CustomerId', 'LicenseState'] as const;

export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** True when a Temporal frontend answers a gRPC call at `address`. */
export async function temporalAnswers(address: string): Promise<boolean> {
  const { host, port } = splitAddress(address);
  if (!(await portAnswers(host, port))) return false;
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: 2000 });
    await connection.withDeadline(Date.now() + 2000, () => connection!.workflowService.getSystemInfo({}));
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

/** Registers any of SEARCH_ATTRIBUTES the namespace lacks (a server we did not start, say). */
export async function ensureSearchAttributes(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const { keywordType } = { keywordType: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD };
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    const have = new Set(Object.keys(existing.customAttributes ?? {}));
    const missing = SEARCH_ATTRIBUTES.filter((a) => !have.has(a));
    if (missing.length === 0) return;
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((a) => [a, keywordType])),
    });
  } finally {
    await connection.close();
  }
}

/**
 * Settings for the one-process dev server, found by profiling it under bench:lifecycles:
 * - The CLI re-reads search attributes from SQLite on every use so that ones added at run time
 *   show at once; that was ten reads per lifecycle. Ours are registered by the flags below before
 *   any workflow runs, so the normal cache is right.
 * - One task-queue partition: within one process, partitions only add forwarding between them,
 *   and new workflows' first tasks were handed out in no useful order.
 */
export const DEV_SERVER_DYNAMIC_CONFIG = {
  'system.forceSearchAttributesCacheRefreshOnRead': false,
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
} as const;

export type DevServerInput = {
  cli: string;
  host: string;
  port: number;
  namespace: string;
  /** Web UI port, or undefined for a headless server (tests). */
  uiPort?: number;
  /** SQLite file for persistence across runs, or undefined for in-memory (tests). */
  dbFile?: string;
  logFile?: string;
};

export async function startTemporalDevServer(input: DevServerInput): Promise<ManagedProcess> {
  const args = ['server', 'start-dev', '--ip', input.host, '--port', String(input.port)];
  if (input.uiPort === undefined) args.push('--headless');
  else args.push('--ui-port', String(input.uiPort), '--ui-disable-news-fetch');
  if (input.dbFile) args.push('--db-filename', input.dbFile);
  if (input.namespace !== 'default') args.push('--namespace', input.namespace);
  for (const a of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${a}=Keyword`);
  for (const [key, value] of Object.entries(DEV_SERVER_DYNAMIC_CONFIG))
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  let output = '';
  const proc = startProcess('temporal', input.cli, args, {
    ...(input.logFile ? { logFile: input.logFile } : {}),
    onOutput: (c) => {
      if (output.length < 20000) output += c;
    },
  });
  const address = `${input.host}:${input.port}`;
  try {
    await Promise.race([
      waitFor(`Temporal dev server at ${address}`, () => temporalAnswers(address), 60000, 200),
      proc.exited.then((code) => {
        throw new Error(`Temporal dev server exited (code ${code}) before it answered:\n${output.slice(-2000)}`);
      }),
    ]);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}
