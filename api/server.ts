import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { Config } from '../config';
import { systemClock } from '../protocol';
import { buildApp, type App } from './app';
import { createLogger } from './logger';
import { createMetrics } from '../services/metrics';
import { openServices } from '../services/process';
import { startMetricsListener, type MetricsListener } from '../services/metrics-listener';

/**
 * Starts the API process: connects to PostgreSQL as the application role and to Temporal
 * (lazily), then listens. When TLS files are configured the server speaks TLS 1.3 only.
 */
export async function startApi(
  config: Config,
): Promise<{ app: App; url: string; metricsUrl: string | undefined; close(): Promise<void> }> {
  const logger = createLogger(config.logLevel);
  const metrics = createMetrics({ processMetrics: true });
  const opened = openServices(config, { applicationName: 'agentina-api', poolSize: 20, logger, metrics });
  const { pool, temporal, services } = opened;
  const app = await buildApp({ config, pool, temporal, clock: systemClock, services, metrics, logger });
  // /metrics on an address of its own when configured; the public port then answers 404 for it.
  const metricsListener: MetricsListener | undefined = config.metrics.listener
    ? await startMetricsListener({ config: { ...config.metrics, listener: config.metrics.listener }, metrics })
    : undefined;
  if (metricsListener) logger.info({ url: `${metricsListener.url}/metrics` }, 'metrics listening');
  if (config.tls) {
    // Fastify's `https` option is fixed at construction, so TLS is applied through a wrapping server.
    const tls = {
      cert: readFileSync(config.tls.certFile),
      key: readFileSync(config.tls.keyFile),
      minVersion: 'TLSv1.3' as const,
    };
    const server = createServer(tls, (req, res) => app.routing(req, res));
    await app.ready();
    await new Promise<void>((resolve, reject) =>
      server.once('error', reject).listen(config.port, config.host, resolve),
    );
    const url = `https://${config.host}:${config.port}`;
    logger.info({ url }, 'API listening');
    return {
      app,
      url,
      metricsUrl: metricsListener?.url,
      async close() {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await metricsListener?.close();
        await app.close();
        await opened.close();
      },
    };
  }
  const url = await app.listen({ port: config.port, host: config.host });
  return {
    app,
    url,
    metricsUrl: metricsListener?.url,
    async close() {
      await metricsListener?.close();
      await app.close();
      await opened.close();
    },
  };
}
