import type { Pool, PoolClient } from 'pg';
import { listen, unlisten } from '../../db/pool';
import { TASKS_CHANNEL } from '../../db/tasks-repo';

export type TaskWaker = {
  /** Call before looking for work, so a task queued in between still wakes the caller. */
  subscribe(agentId: string): { woken: Promise<void>; cancel(): void };
  /** True once closing: parked requests answer now instead of parking again. */
  readonly closed: boolean;
  close(): Promise<void>;
};

/**
 * One LISTEN connection per API process for `agentina_tasks`: a parked GET /v1/agent/tasks/next
 * wakes when a task is queued for its agent (on any replica). If the connection is down, parked
 * requests simply wait out their time and look again.
 */
export function createTaskWaker(pool: Pool, onError: (err: unknown) => void = () => undefined): TaskWaker {
  const waiters = new Map<string, Set<() => void>>();
  let client: PoolClient | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;

  const wake = (agentId: string) => {
    for (const w of waiters.get(agentId) ?? []) w();
  };
  const wakeAll = () => {
    for (const set of waiters.values()) for (const w of set) w();
  };

  async function connect(): Promise<void> {
    const c = await pool.connect();
    c.on('notification', (n) => {
      if (n.channel === TASKS_CHANNEL && n.payload) wake(n.payload);
    });
    c.on('error', (err) => {
      onError(err);
      if (client === c) client = undefined;
      c.release(err);
      wakeAll();
    });
    await listen(c, TASKS_CHANNEL);
    if (closed) {
      c.release(true);
      return;
    }
    client = c;
  }

  function ensureConnected(): void {
    if (client || connecting || closed) return;
    connecting = connect()
      .catch(onError)
      .finally(() => {
        connecting = undefined;
      });
  }

  return {
    get closed() {
      return closed;
    },
    subscribe(agentId) {
      ensureConnected();
      let resolve!: () => void;
      const woken = new Promise<void>((r) => (resolve = r));
      const set = waiters.get(agentId) ?? new Set();
      waiters.set(agentId, set);
      set.add(resolve);
      if (closed) resolve();
      return {
        woken,
        cancel() {
          set.delete(resolve);
          if (set.size === 0) waiters.delete(agentId);
          resolve();
        },
      };
    },
    async close() {
      closed = true;
      wakeAll();
      await connecting;
      if (client) {
        const c = client;
        client = undefined;
        await unlisten(c, TASKS_CHANNEL);
        c.release(true);
      }
    },
  };
}
