import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Pool } from 'pg';
import { buildApp, type App } from '../../api/app';
import type { Authenticate } from '../../api/auth/access';
import { createLogger } from '../../api/logger';
import { createServices, type Services, type ServicesDeps } from '../../services';
import { createKeyStore } from '../../services/keys';
import { createMetrics } from '../../services/metrics';
import { createTemporal, type TemporalDeps } from '../../services/temporal';
import { loadConfig, type Config } from '../../config';
import { ensureKeys, SERVICE_SCOPES, systemClock, type Clock } from '../../protocol';
import { testEnv } from './env';
import { actAsAgents } from './agent-keys';
import { createLogCapture } from './log-capture';

let scratch: string | undefined;
/**
 * A per-process data directory with its own signing keys, so no test reads or writes the
 * checkout's .data/ (a fresh clone has no keys there; a developer's npm start state is not ours).
 */
function scratchDataDir(): string {
  if (!scratch) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'agentina-test-data-'));
    ensureKeys(path.join(dir, 'keys'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    scratch = dir;
  }
  return scratch;
}

/** The METRICS_TOKEN of test configs: /metrics answers only to it (readMetrics below). */
export const TEST_METRICS_TOKEN = 'test-metrics-token-0123456789abcdef';

export function testConfig(overrides: Partial<Record<string, string>> = {}): Config {
  const dataDir = scratchDataDir();
  return loadConfig({
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/unused',
    TEMPORAL_ADDRESS: process.env.AGENTINA_TEST_TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    LOG_LEVEL: 'info',
    AGENTINA_DATA_DIR: dataDir,
    AGENTINA_KEYS_DIR: path.join(dataDir, 'keys'),
    METRICS_TOKEN: TEST_METRICS_TOKEN,
    // No expiry notices unless a test asks: they would add audit rows to every short license.
    LICENSE_EXPIRY_NOTICE_DAYS: '',
    ...overrides,
  });
}

/** The Prometheus text of an app built from testConfig(), read as a scraper holding the token does. */
export async function readMetrics(app: Pick<App, 'inject'>): Promise<string> {
  const res = await app.inject({
    method: 'GET',
    url: '/metrics',
    headers: { authorization: `Bearer ${TEST_METRICS_TOKEN}` },
  });
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`);
  return res.body;
}

/** The services as a process wires them, from a test's config (its keys directory) and parts. */
export function createTestServices(
  input: Omit<ServicesDeps, 'keys' | 'config' | 'logger'> & { config?: Config; logger?: ServicesDeps['logger'] },
): Services {
  const config = input.config ?? testConfig();
  return createServices({
    ...input,
    config,
    keys: createKeyStore(config.keysDir),
    logger: input.logger ?? createLogger('warn'),
  });
}

/**
 * Workflow time on the time-skipping server runs years ahead of the clocks the tests' API side
 * signs Update origin proofs with: their workers accept proofs this old.
 */
export const SKIPPED_TIME_PROOF_AGE_MS = 20 * 365 * 86_400_000;

/**
 * Services for tests that need no app: activities without a worker process, seeding through the
 * real rules. The Temporal client is lazy (connected only if a service starts a workflow).
 */
export function testServices(input: {
  pool: Pool;
  clock?: Clock;
  keysDir?: string;
  auditCheckpointDir?: string;
  /** For workers on the time-skipping server, whose workflow time runs far ahead of the API's proofs. */
  updateOriginMaxAgeMs?: number;
  /** More environment (WEBHOOK_ALLOW_HOSTS, …). */
  env?: Record<string, string>;
  webhookSendLimits?: ServicesDeps['webhookSendLimits'];
}): Services {
  const config = testConfig({
    ...input.env,
    ...(input.keysDir ? { AGENTINA_KEYS_DIR: input.keysDir } : {}),
    ...(input.auditCheckpointDir ? { AUDIT_CHECKPOINT_DIR: input.auditCheckpointDir } : {}),
  });
  const temporal = createTemporal({ temporal: config.temporal });
  return createTestServices({
    config,
    pool: input.pool,
    temporal,
    clock: input.clock ?? systemClock,
    ...(input.updateOriginMaxAgeMs !== undefined ? { updateOriginMaxAgeMs: input.updateOriginMaxAgeMs } : {}),
    ...(input.webhookSendLimits ? { webhookSendLimits: input.webhookSendLimits } : {}),
  });
}

export type TestAppInput = {
  pool: Pool;
  temporal?: TemporalDeps;
  clock?: Clock;
  config?: Config;
  authenticate?: Authenticate;
  /** Registers extra (test-only) routes before the app is ready. */ register?: (app: App) => void;
};

/**
 * Principals made by hand in a test name no role or scopes: they act as an owner and as a token
 * holding every scope. Roles and scopes themselves are tried with real credentials
 * (admin-roles.test.ts, second-factor.test.ts, the authorization matrix).
 */
function withFullPowers(authenticate: Authenticate): Authenticate {
  return async (req) => {
    const p = await authenticate(req);
    if (p?.kind === 'admin' && !p.role) return { ...p, role: 'owner' };
    if (p?.kind === 'service' && !p.scopes) return { ...p, scopes: SERVICE_SCOPES };
    return p;
  };
}

/** The real app on a real database and the shared Temporal dev server, logging into memory. */
export async function buildTestApp(
  input: TestAppInput,
): Promise<{ app: App; logs: ReturnType<typeof createLogCapture>; temporal: TemporalDeps; close(): Promise<void> }> {
  const config = input.config ?? testConfig();
  const logs = createLogCapture();
  const temporal =
    input.temporal ??
    createTemporal({ temporal: { ...config.temporal, address: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS') } });
  const logger = createLogger('info', logs.stream);
  const clock = input.clock ?? systemClock;
  const metrics = createMetrics();
  const services = createTestServices({ config, pool: input.pool, temporal, clock, logger, metrics });
  const app = await buildApp({
    config,
    pool: input.pool,
    temporal,
    clock,
    services,
    metrics,
    logger,
    ...(input.authenticate ? { authenticate: withFullPowers(input.authenticate) } : {}),
  });
  input.register?.(app);
  await app.ready();
  // Requests made with an agent credential carry the agent's proof of possession, as the agent's own.
  actAsAgents(app, () => clock.now().getTime());
  return {
    app,
    logs,
    temporal,
    async close() {
      await app.close();
      if (!input.temporal) await temporal.close();
    },
  };
}
