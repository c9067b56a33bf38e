import type { Config } from '../config';
import { createPool } from '../db';
import { createLogger } from '../api/logger';
import { systemClock } from '../protocol';
import { createServices, type Services } from '../services';
import { createKeyStore } from '../services/keys';
import { createTemporal } from '../services/temporal';

/**
 * Runs `fn` with this CLI process's services: built once, over one database connection and a
 * lazy Temporal client (connected only if a command needs it), and closed afterwards.
 */
export async function withServices<T>(config: Config, fn: (services: Services) => Promise<T>): Promise<T> {
  const logger = createLogger(config.logLevel);
  const pool = createPool(config.appDatabaseUrl, { applicationName: 'agentina-cli', max: 1 });
  const temporal = createTemporal(config);
  const services = createServices({
    pool,
    temporal,
    clock: systemClock,
    keys: createKeyStore(config.keysDir),
    config,
    logger,
  });
  try {
    return await fn(services);
  } finally {
    await services.close();
    await temporal.close();
    await pool.end();
  }
}
