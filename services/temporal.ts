import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config';

export type TemporalDeps = {
  client: Client;
  taskQueue: string;
  /** Rejects when the Temporal frontend does not answer within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
};

/** What both SDK connections (the client's and the worker's native one) take to reach the frontend. */
export type TemporalConnectionOptions = {
  address: string;
  tls?: {
    serverRootCACertificate?: Buffer;
    clientCertPair?: { crt: Buffer; key: Buffer };
  };
  apiKey?: string;
};

/**
 * The connection options of every Temporal connection this process makes (API client, health
 * probe, worker): TLS with the configured client certificate (mTLS) and server CA, and the API
 * key as a bearer token. An API key alone turns TLS on (the SDK's rule: a key never travels in
 * clear). Files are read once, here, at start-up.
 */
export function temporalConnectionOptions(config: Pick<Config, 'temporal'>): TemporalConnectionOptions {
  const { address, tls, apiKey } = config.temporal;
  const read = (file: string) => readFileSync(file);
  return {
    address,
    ...(tls
      ? {
          tls: {
            ...(tls.caFile ? { serverRootCACertificate: read(tls.caFile) } : {}),
            ...(tls.certFile && tls.keyFile
              ? { clientCertPair: { crt: read(tls.certFile), key: read(tls.keyFile) } }
              : {}),
          },
        }
      : {}),
    ...(apiKey ? { apiKey } : {}),
  };
}

/**
 * Lazy connections: the API starts (and /readyz reports 503) even while Temporal is down, and
 * connects on first use. Health checks use a second connection without the SDK's gRPC retry
 * interceptor, so a probe fails within its deadline and leaves no retry timer behind that could
 * outlive close().
 */
export function createTemporal(config: Pick<Config, 'temporal'>): TemporalDeps {
  const options = temporalConnectionOptions(config);
  const connection = Connection.lazy(options);
  const probe = Connection.lazy({ ...options, interceptors: [] });
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
