import type { Pool, PoolClient, Notification } from 'pg';
import type { Logger } from 'pino';
import { listen, STATUS_CHANNEL, unlisten, type StatusNotice } from '../../db';

/**
 * The one LISTEN connection of an API process. Parked long-polls register a waiter under their
 * license and agent ids; a NOTIFY on `agentina_status` wakes exactly the waiters it concerns
 * (an agent notice wakes that agent, a license notice every agent of the license). When the
 * connection drops, every waiter is woken to re-read (a notice may have been lost) and the
 * listener reconnects with backoff; until it is back, `connected` is false so callers poll.
 */
export type StatusWaiter = { licenseId: string; agentId: string; wake: () => void };

export type StatusListener = {
  /** Registers a waiter; returns the function that removes it. */
  watch(waiter: StatusWaiter): () => void;
  /** Called for every notice (after waiters are woken); used to drop cached reads. */
  onNotice(fn: (notice: StatusNotice) => void): void;
  /** Called when notices may have been missed (connection lost or re-established). */
  onReset(fn: () => void): void;
  readonly connected: boolean;
  readonly waiting: number;
  /** Notices received since start (for metrics, and for tests that must wait for one). */
  readonly notices: number;
  /**
   * A counter that rises with every notice and every reset. A cache reads it before going to the
   * database and stores the result only if `changedSince(ids, mark)` is false afterwards, so a
   * notice that lands during the read is never papered over.
   */
  mark(): number;
  changedSince(ids: readonly string[], mark: number): boolean;
  /** Connects; resolves after the first attempt whether or not it succeeded (it keeps retrying). */
  start(logger?: Pick<Logger, 'warn' | 'info'>): Promise<void>;
  /** Wakes every waiter (so parked requests answer) without disconnecting. */
  wakeAll(): void;
  close(): Promise<void>;
};

export type StatusListenerDeps = {
  pool: Pool;
  logger?: Pick<Logger, 'warn' | 'info'>;
  retryMinMs?: number;
  retryMaxMs?: number;
};

const SILENT = { warn: () => undefined, info: () => undefined };
/** Past this many remembered ids the per-id marks are dropped; callers then see every read as changed. */
const MARKS_MAX = 500_000;

const NOTICE_MAX_CHARS = 1000;

export function parseStatusNotice(text: string | undefined): StatusNotice | undefined {
  if (!text || text.length > NOTICE_MAX_CHARS) return undefined;
  try {
    const v = JSON.parse(text) as Partial<StatusNotice>;
    if (
      typeof v.licenseId !== 'string' ||
      (v.agentId !== null && v.agentId !== undefined && typeof v.agentId !== 'string')
    )
      return undefined;
    return { licenseId: v.licenseId, agentId: v.agentId ?? null, feedId: typeof v.feedId === 'number' ? v.feedId : 0 };
  } catch {
    return undefined;
  }
}

export function createStatusListener(deps: StatusListenerDeps): StatusListener {
  const retryMin = deps.retryMinMs ?? 100;
  const retryMax = deps.retryMaxMs ?? 5000;
  const byLicense = new Map<string, Set<StatusWaiter>>();
  const byAgent = new Map<string, Set<StatusWaiter>>();
  const noticeFns: Array<(n: StatusNotice) => void> = [];
  const resetFns: Array<() => void> = [];
  let client: PoolClient | undefined;
  let connected = false;
  let closed = false;
  let retryMs = retryMin;
  let retryTimer: NodeJS.Timeout | undefined;
  let waiting = 0;
  let logger: Pick<Logger, 'warn' | 'info'> = deps.logger ?? SILENT;
  let counter = 0;
  let notices = 0;
  /** Reads started before this mark are suspect for every id (a reset or an overflow happened). */
  let floor = 0;
  const lastNotice = new Map<string, number>();

  const add = (index: Map<string, Set<StatusWaiter>>, key: string, w: StatusWaiter) => {
    let set = index.get(key);
    if (!set) index.set(key, (set = new Set()));
    set.add(w);
  };
  const remove = (index: Map<string, Set<StatusWaiter>>, key: string, w: StatusWaiter) => {
    const set = index.get(key);
    if (!set) return;
    set.delete(w);
    if (set.size === 0) index.delete(key);
  };
  const wakeSet = (set: Set<StatusWaiter> | undefined) => {
    if (!set) return;
    for (const w of [...set]) w.wake();
  };
  const wakeAll = () => {
    for (const set of [...byLicense.values()]) wakeSet(set);
  };
  const reset = () => {
    counter += 1;
    floor = counter;
    lastNotice.clear();
    for (const fn of resetFns) fn();
    wakeAll();
  };

  const onNotification = (msg: Notification) => {
    if (msg.channel !== STATUS_CHANNEL) return;
    const notice = parseStatusNotice(msg.payload);
    if (!notice) return;
    notices += 1;
    counter += 1;
    if (lastNotice.size >= MARKS_MAX) {
      lastNotice.clear();
      floor = counter;
    }
    lastNotice.set(notice.licenseId, counter);
    if (notice.agentId) lastNotice.set(notice.agentId, counter);
    for (const fn of noticeFns) fn(notice);
    wakeSet(notice.agentId ? byAgent.get(notice.agentId) : byLicense.get(notice.licenseId));
  };

  const dropClient = (err?: Error) => {
    const c = client;
    client = undefined;
    if (!c) return;
    c.removeListener('notification', onNotification);
    c.removeListener('error', onClientError);
    c.removeListener('end', onClientEnd);
    c.on('error', () => undefined); // a late error on a discarded client must not crash the process
    c.release(err ?? true);
  };

  const scheduleReconnect = () => {
    if (closed || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void connect();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, retryMax);
  };

  const lost = (err: Error) => {
    if (!connected && !client) return;
    connected = false;
    logger.warn({ err: { message: err.message } }, 'status listener lost its connection; reconnecting');
    dropClient(err);
    reset();
    scheduleReconnect();
  };
  function onClientError(err: Error) {
    lost(err);
  }
  function onClientEnd() {
    lost(new Error('connection ended'));
  }

  async function connect(): Promise<void> {
    if (closed || client) return;
    let c: PoolClient;
    try {
      c = await deps.pool.connect();
    } catch (err) {
      logger.warn({ err: { message: (err as Error).message } }, 'status listener could not connect; retrying');
      scheduleReconnect();
      return;
    }
    if (closed) {
      c.release(true);
      return;
    }
    client = c;
    c.on('notification', onNotification);
    c.on('error', onClientError);
    c.on('end', onClientEnd);
    try {
      await listen(c, STATUS_CHANNEL);
    } catch (err) {
      if (client === c) {
        dropClient(err as Error);
        scheduleReconnect();
      }
      return;
    }
    if (closed || client !== c) return;
    connected = true;
    retryMs = retryMin;
    // Anything that changed while we were not listening is found by the re-read this triggers.
    reset();
  }

  return {
    watch(w) {
      add(byLicense, w.licenseId, w);
      add(byAgent, w.agentId, w);
      waiting += 1;
      let removed = false;
      return () => {
        if (removed) return;
        removed = true;
        waiting -= 1;
        remove(byLicense, w.licenseId, w);
        remove(byAgent, w.agentId, w);
      };
    },
    onNotice(fn) {
      noticeFns.push(fn);
    },
    onReset(fn) {
      resetFns.push(fn);
    },
    get connected() {
      return connected;
    },
    get waiting() {
      return waiting;
    },
    get notices() {
      return notices;
    },
    mark: () => counter,
    changedSince(ids, mark) {
      if (!connected || floor > mark) return true;
      return ids.some((id) => (lastNotice.get(id) ?? 0) > mark);
    },
    start(withLogger) {
      if (withLogger) logger = withLogger;
      return connect();
    },
    wakeAll,
    async close() {
      closed = true;
      connected = false;
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = undefined;
      wakeAll();
      const c = client;
      if (c) {
        client = undefined;
        c.removeListener('notification', onNotification);
        c.removeListener('error', onClientError);
        c.removeListener('end', onClientEnd);
        c.on('error', () => undefined);
        await unlisten(c, STATUS_CHANNEL);
        c.release(true);
      }
    },
  };
}
