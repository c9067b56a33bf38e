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
 * Lazy connections: the API starts (and /readyz reports 503) even while Temporal is down, and
 * connects on first use. Health checks use a second connection without the SDK's gRPC retry
 * interceptor, so a probe fails within its deadline and leaves no retry timer behind that could
 * outlive close().
 */
export function createTemporal(config: Pick<Config, 'temporal'>): TemporalDeps {
  const connection = Connection.lazy({ address: config.temporal.address });
  const probe = Connection.lazy({ address: config.temporal.address, interceptors: [] });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  return {
    client,
    taskQueue: config.temporal.taskQueue,
    async ping(timeoutMs = 2000) {
      await probe.withDeadline(Date.now() + timeoutMs, () => probe.workflowService.getSystemInfo({}));
    },
    async close() {
      await Promise.all([connection.close(), probe.close()]);
    },
  };
}
