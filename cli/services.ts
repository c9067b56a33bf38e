import type { Config } from '../config';
import { createLogger } from '../api/logger';
import type { Services } from '../services';
import { openServices } from '../services/process';

/**
 * Runs `fn` with this CLI process's services: built once, over one database connection and a
 * lazy Temporal client (connected only if a command needs it), and closed afterwards.
 */
export async function withServices<T>(config: Config, fn: (services: Services) => Promise<T>): Promise<T> {
  const opened = openServices(config, {
    applicationName: 'agentina-cli',
    poolSize: 1,
    logger: createLogger(config.logLevel),
  });
  try {
    return await fn(opened.services);
  } finally {
    await opened.close();
  }
}
