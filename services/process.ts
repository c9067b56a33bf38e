import type { Logger } from 'pino';
import type { Config } from '../config';
import { createPool } from '../db/pool';
import { systemClock } from '../protocol';
import { createServices, type Services } from '.';
import { createKeyStore } from './keys';
import type { Metrics } from './metrics';
import { createTemporal, type TemporalDeps } from './temporal';

export type OpenedServices = {
  services: Services;
  /** Pool connected as the least-privileged application role. */
  pool: ReturnType<typeof createPool>;
  /** Lazy: connects on first use, so a process that never needs Temporal never dials it. */
  temporal: TemporalDeps;
  /** Closes the services' listeners, then Temporal, then the pool. */
  close(): Promise<void>;
};

/**
 * What each process (API server, worker, CLI) runs its services on: the application-role pool,
 * a lazy Temporal client and the key store, with createServices() called once over them.
 */
export function openServices(
  config: Config,
  opts: { applicationName: string; poolSize: number; logger: Logger; metrics?: Metrics },
): OpenedServices {
  const pool = createPool(config.appDatabaseUrl, { applicationName: opts.applicationName, max: opts.poolSize });
  const temporal = createTemporal(config);
  const services = createServices({
    pool,
    temporal,
    clock: systemClock,
    keys: createKeyStore(config.keysDir),
    config,
    logger: opts.logger,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
  return {
    services,
    pool,
    temporal,
    async close() {
      await services.close();
      await temporal.close();
      await pool.end();
    },
  };
}
