import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config';
import type { Metrics } from './metrics';
import { metricsAccess } from './metrics-access';
import { errorBody } from './errors';

export type MetricsListener = { url: string; close(): Promise<void> };

/**
 * A small listener for Prometheus, the API's second (METRICS_HOST:METRICS_PORT) or the worker's
 * only one (WORKER_METRICS_HOST:WORKER_METRICS_PORT, with worker/metrics.ts): it
 * answers `GET /metrics` (with METRICS_TOKEN, only to its bearer) and 404 to anything else, in the
 * API's error shape. Keeping it off the public port lets a firewall or network policy decide who
 * scrapes.
 */
export async function startMetricsListener(input: {
  config: Config['metrics'] & { listener: { host: string; port: number } };
  metrics: Pick<Metrics, 'render' | 'contentType'>;
}): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => void answer(req, res));
  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = `met_${randomBytes(6).toString('base64url')}`;
    const send = (status: number, body: string, type: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, {
        'content-type': type,
        'x-request-id': requestId,
        'cache-control': 'no-store',
        ...headers,
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const json = (
      status: number,
      code: 'NOT_FOUND' | 'UNAUTHENTICATED' | 'UNAVAILABLE',
      message: string,
      headers?: Record<string, string>,
    ) => send(status, JSON.stringify(errorBody(code, message, requestId)), 'application/json; charset=utf-8', headers);
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD'))
      return json(404, 'NOT_FOUND', `No route ${req.method} ${path}`);
    const access = metricsAccess(input.config, 'metrics-listener', req.headers.authorization);
    if (access !== 'allowed')
      return json(401, 'UNAUTHENTICATED', 'Present the metrics bearer token.', {
        'www-authenticate': 'Bearer realm="metrics"',
      });
    try {
      send(200, await input.metrics.render(), input.metrics.contentType);
    } catch {
      json(503, 'UNAVAILABLE', 'The metrics could not be read.');
    }
  }
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  const { host, port } = input.config.listener;
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  const bound = server.address() as AddressInfo;
  return {
    url: `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
