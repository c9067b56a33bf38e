import type { Pool } from 'pg';
import { buildApp, type App } from '../../api/app';
import { createLogger } from '../../api/logger';
import { createTemporal } from '../../services/temporal';
import type { Config } from '../../config';
import { systemClock } from '../../protocol';
import { freePort } from '../../scripts/stack/ports';
import { createTestServices, testConfig } from './app';
import { createMetrics } from '../../services/metrics';
import { createLogCapture } from './log-capture';
import { testEnv } from './env';

/**
 * The real app listening on a free loopback port (for browsers, agents and load generators),
 * with the production authenticator, on a test database and the shared Temporal dev server.
 */
export async function startTestServer(input: { pool: Pool; env?: Record<string, string>; config?: Config }): Promise<{
  app: App;
  services: ReturnType<typeof createTestServices>;
  baseUrl: string;
  config: Config;
  logs: ReturnType<typeof createLogCapture>;
  close(): Promise<void>;
}> {
  const port = await freePort();
  const config =
    input.config ??
    testConfig({
      PORT: String(port),
      PUBLIC_ORIGIN: `http://127.0.0.1:${port}`,
      TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
      ...(input.env ?? {}),
    });
  const temporal = createTemporal(config);
  const logs = createLogCapture();
  const logger = createLogger('info', logs.stream);
  const metrics = createMetrics();
  const services = createTestServices({ config, pool: input.pool, temporal, clock: systemClock, logger, metrics });
  const app = await buildApp({ config, pool: input.pool, temporal, clock: systemClock, services, metrics, logger });
  await app.listen({ port: config.port, host: '127.0.0.1' });
  return {
    app,
    services,
    baseUrl: `http://127.0.0.1:${config.port}`,
    config,
    logs,
    async close() {
      await app.close();
      await temporal.close();
    },
  };
}
