import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config';

export type TemporalDeps = {
  client: Client;
  taskQueue: string;
  /** Rejects when the Temporal frontend does not answer within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
};

/**
 * A lazy connection: the API starts (and /readyz reports 503) even while Temporal is down,
 * and connects on first use.
 */
export function createTemporal(config: Pick<Config, 'temporal'>): TemporalDeps {
  const connection = Connection.lazy({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  return {
    client,
    taskQueue: config.temporal.taskQueue,
    async ping(timeoutMs = 2000) {
      await connection.withDeadline(Date.now() + timeoutMs, () => connection.workflowService.getSystemInfo({}));
    },
    async close() {
      await connection.close();
    },
  };
}
