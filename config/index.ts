import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';

/**
 * The one place that reads process.env. Every process (API, worker, CLI, dev stack)
 * parses its environment once at start-up and fails fast with a readable message.
 */
const port = z.coerce.number().int().min(0).max(65535);

/** A duration such as `90s`, `10m`, `1h` (or bare seconds), as milliseconds; 1 s to 1 day. */
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;
const duration = z
  .string()
  .regex(/^\d{1,6}(s|m|h)?$/, 'must be a duration like 30s, 10m or 1h')
  .transform((v) => Number(v.replace(/[smh]$/, '')) * UNIT_MS[(/[smh]$/.exec(v)?.[0] ?? 's') as keyof typeof UNIT_MS])
  .pipe(z.number().min(1000, 'must be at least 1s').max(86_400_000, 'must be at most 24h'));

/**
 * Which reverse proxies' X-Forwarded-For to believe, so per-address limits see the client behind
 * them: a hop count (1–10: that many proxies in front, whoever connects; only when nothing else can
 * reach the API), or a comma-separated list of proxy addresses and CIDR blocks (and the names
 * `loopback`, `linklocal`, `uniquelocal`). Unset: the connecting address is the client.
 */
const PROXY_NAMES = ['loopback', 'linklocal', 'uniquelocal'];
function isProxyAddress(entry: string): boolean {
  if (PROXY_NAMES.includes(entry)) return true;
  const [addr, bits, ...rest] = entry.split('/');
  const family = isIP(addr ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}
const trustProxy = z
  .string()
  .trim()
  .max(2000)
  .transform((v, ctx): TrustProxy => {
    if (/^\d+$/.test(v)) {
      const hops = Number(v);
      if (hops >= 1 && hops <= 10) return hops;
      ctx.addIssue({ code: 'custom', message: 'a hop count must be from 1 to 10' });
      return z.NEVER;
    }
    const entries = v.split(',').map((e) => e.trim());
    const bad = entries.filter((e) => !isProxyAddress(e));
    if (bad.length > 0) {
      ctx.addIssue({
        code: 'custom',
        message: `must be a hop count or proxy addresses/CIDRs separated by commas (not: ${bad.join(', ').slice(0, 200)})`,
      });
      return z.NEVER;
    }
    return entries;
  });

/** `false`: no proxy is trusted; a number: hops; a list: trusted proxy addresses and blocks. */
export type TrustProxy = false | number | string[];
/** An empty value counts as unset, so docker-compose can pass `${VAR:-}` through. */
const unsetIfEmpty = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === '' ? undefined : v), schema);
const filePath = unsetIfEmpty(z.string().min(1).max(4096).optional());

const envSchema = z.object({
  DATABASE_URL: z.string().url().optional(),
  APP_DATABASE_URL: z.string().url().optional(),
  /** Set by `agentina migrate` as the application role's password (production); none in local dev. */
  AGENTINA_APP_DB_PASSWORD: z.string().min(16).max(200).optional(),
  PORT: port.default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d+$/, 'must be host:port')
    .default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('agentina'),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_UI_URL: z.string().url().optional(),
  AGENTINA_DATA_DIR: z.string().min(1).default('.data'),
  AGENTINA_KEYS_DIR: z.string().min(1).optional(),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  /** `npm start` only: serve plain HTTP instead of HTTPS with the local development CA. */
  AGENTINA_DEV_HTTP: z.enum(['0', '1']).default('0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PUBLIC_ORIGIN: z.string().url().optional(),
  AUDIT_CHECKPOINT_INTERVAL: duration.default(600_000),
  AUDIT_CHECKPOINT_DIR: z.string().min(1).max(4096).optional(),
  /** Agents: heartbeat period (3 missed → offline), fingerprint score below which an agent is quarantined, task lease. */
  AGENT_HEARTBEAT_INTERVAL: duration
    .pipe(z.number().min(5000, 'must be at least 5s').max(3_600_000, 'must be at most 1h'))
    .default(60_000),
  AGENT_FINGERPRINT_THRESHOLD: z.coerce.number().int().min(0).max(100).default(70),
  AGENT_TASK_LEASE: duration.default(300_000),
  /** Release signing: the targets key in a key file (development) or on a PKCS#11 token (HSM). */
  RELEASE_SIGNER: z.enum(['file', 'pkcs11']).default('file'),
  RELEASE_PKCS11_MODULE: z.string().min(1).max(4096).optional(),
  RELEASE_PKCS11_TOKEN: z.string().min(1).max(32).optional(),
  RELEASE_PKCS11_KEY: z.string().min(1).max(64).default('agentina-targets'),
  RELEASE_PKCS11_PIN: z.string().min(1).max(256).optional(),
  RELEASE_PKCS11_PIN_FILE: z.string().min(1).max(4096).optional(),
  /** TUF root: how many root keys (key files in development) and how many must sign. */
  RELEASE_ROOT_KEYS: z.coerce.number().int().min(1).max(15).default(1),
  RELEASE_ROOT_THRESHOLD: z.coerce.number().int().min(1).max(15).default(1),
  /** How long signed timestamp metadata stays valid; the schedule re-signs it at half-life. */
  RELEASE_TIMESTAMP_EXPIRY: duration.pipe(z.number().min(120_000, 'must be at least 2m')).default(86_400_000),
  TRUST_PROXY: trustProxy.optional(),
  /**
   * Webhook receivers that may be on private, loopback or link-local addresses (internal
   * receivers, tests): comma-separated host names, IP addresses and CIDR blocks. Any other
   * receiver must resolve to public addresses only, and may use plain http only when listed here.
   */
  WEBHOOK_ALLOW_HOSTS: z
    .string()
    .max(4000)
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter((h) => h.length > 0),
    )
    .refine(
      (hosts) => hosts.every((h) => /^[a-z0-9.:_[\]/-]{1,255}$/.test(h)),
      'must list host names, addresses or CIDR blocks',
    ),
  /** Days before a license expires at which `license.expiring_soon` is announced (comma-separated, 1–365). */
  LICENSE_EXPIRY_NOTICE_DAYS: z
    .string()
    .max(100)
    .default('30,7,1')
    .transform((v) => (v.trim() === '' ? [] : v.split(',').map((d) => Number(d.trim()))))
    .refine((days) => days.every((d) => Number.isInteger(d) && d >= 1 && d <= 365), 'must be whole days from 1 to 365')
    .transform((days) => [...new Set(days)].sort((a, b) => b - a)),
  /**
   * /metrics: a bearer token callers must present, and/or an address of its own (a second small
   * listener in the API process). With neither, the public port answers 404 for /metrics.
   */
  METRICS_TOKEN: unsetIfEmpty(z.string().min(32, 'must be at least 32 characters').max(512).optional()),
  METRICS_HOST: unsetIfEmpty(z.string().min(1).max(255).optional()),
  METRICS_PORT: unsetIfEmpty(port.optional()),
  /** The worker's own /metrics listener (its counters, fleet gauges and Temporal's worker metrics); unset: none. */
  WORKER_METRICS_HOST: unsetIfEmpty(z.string().min(1).max(255).optional()),
  WORKER_METRICS_PORT: unsetIfEmpty(port.optional()),
  /** How often the worker re-verifies the whole audit chain for its metrics (0 turns it off). */
  AUDIT_VERIFY_INTERVAL: unsetIfEmpty(z.union([z.literal('0'), duration]).optional()),
  /** Temporal over TLS (client certificate for mTLS, CA of the server) and/or with an API key (Temporal Cloud). */
  TEMPORAL_TLS_CERT_FILE: filePath,
  TEMPORAL_TLS_KEY_FILE: filePath,
  TEMPORAL_TLS_CA_FILE: filePath,
  TEMPORAL_API_KEY: unsetIfEmpty(z.string().min(1).max(4096).optional()),
});

/** Every environment variable Agentina reads (docker-compose.yml is checked against this list). */
export const CONFIG_ENV_NAMES = Object.keys(envSchema.shape);

export type Config = {
  /** Connection used by migrations and operator tools (schema owner or superuser). */
  databaseUrl: string;
  /** Connection the API and worker use: the least-privileged application role. */
  appDatabaseUrl: string;
  /** Password to give the application role when migrating, if any. */
  appDbPassword: string | undefined;
  port: number;
  host: string;
  temporal: {
    address: string;
    namespace: string;
    taskQueue: string;
    uiPort: number;
    uiUrl: string;
    /** Files for TLS to the frontend; undefined means plaintext (unless an API key is set: then TLS). */
    tls?: { certFile?: string; keyFile?: string; caFile?: string } | undefined;
    /** Sent as a bearer token on every call (Temporal Cloud API keys); never logged. */
    apiKey?: string | undefined;
  };
  dataDir: string;
  keysDir: string;
  tls: { certFile: string; keyFile: string } | undefined;
  /** `npm start` serves plain HTTP (no development CA); an explicit TLS_CERT_FILE still wins. */
  devHttp: boolean;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  publicOrigin: string;
  /**
   * How often the audit checkpoint schedule signs the chain head, and where (outside the
   * database, ideally on other storage) each signed checkpoint is also appended as a JSON line.
   */
  audit: { checkpointIntervalMs: number; checkpointDir: string | undefined };
  /** Agent heartbeats, the offline sweep, fingerprint quarantine and task leases. */
  agents: { heartbeatIntervalMs: number; fingerprintThreshold: number; taskLeaseMs: number };
  /** The release repository's keys and timestamp lifetime. */
  releases: {
    signer:
      | { kind: 'file' }
      | { kind: 'pkcs11'; module: string; tokenLabel: string; keyLabel: string; pinFile?: string; pin?: string };
    rootKeys: number;
    rootThreshold: number;
    timestampExpiryMs: number;
  };
  /** Reverse proxies whose X-Forwarded-For names the client (per-address limits, audit IPs). */
  trustProxy: TrustProxy;
  /** Outbound webhook deliveries: receivers allowed on non-public addresses (WEBHOOK_ALLOW_HOSTS). */
  webhooks: { allowHosts: string[] };
  /** The `license.expiring_soon` notices, in days before expiry, largest first. */
  licenses: { expiryNoticeDays: number[] };
  /** Who may read /metrics, and where: see METRICS_* above. */
  metrics: {
    token: string | undefined;
    listener: { host: string; port: number } | undefined;
    /** The worker process's /metrics listener (WORKER_METRICS_HOST:WORKER_METRICS_PORT). */
    worker: { host: string; port: number } | undefined;
    /** How often the worker verifies the audit chain for `agentina_audit_verify_ok` (0: never). */
    auditVerifyIntervalMs: number;
  };
};

export class ConfigError extends Error {}

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/agentina';
export const APP_ROLE = 'agentina_app';
export const OWNER_ROLE = 'agentina_owner';

/** Same server and database as `url`, logged in as the application role. */
export function appUrlFor(url: string, password?: string): string {
  const u = new URL(url);
  u.username = APP_ROLE;
  u.password = password ? encodeURIComponent(password) : '';
  return u.toString();
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration in the environment:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if ((e.TLS_CERT_FILE === undefined) !== (e.TLS_KEY_FILE === undefined)) {
    throw new ConfigError(
      'Invalid configuration in the environment:\n  TLS_CERT_FILE and TLS_KEY_FILE must be set together',
    );
  }
  if (e.RELEASE_SIGNER === 'pkcs11') {
    const missing = (['RELEASE_PKCS11_MODULE', 'RELEASE_PKCS11_TOKEN'] as const).filter((k) => !e[k]);
    if (!e.RELEASE_PKCS11_PIN && !e.RELEASE_PKCS11_PIN_FILE) missing.push('RELEASE_PKCS11_PIN_FILE' as never);
    if (missing.length)
      throw new ConfigError(
        `Invalid configuration in the environment:\n  RELEASE_SIGNER=pkcs11 needs ${missing.join(', ')}`,
      );
  }
  if (e.RELEASE_ROOT_THRESHOLD > e.RELEASE_ROOT_KEYS)
    throw new ConfigError(
      'Invalid configuration in the environment:\n  RELEASE_ROOT_THRESHOLD must not exceed RELEASE_ROOT_KEYS',
    );
  if ((e.TEMPORAL_TLS_CERT_FILE === undefined) !== (e.TEMPORAL_TLS_KEY_FILE === undefined)) {
    throw new ConfigError(
      'Invalid configuration in the environment:\n  TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE must be set together',
    );
  }
  if (e.METRICS_HOST !== undefined && e.METRICS_PORT === undefined) {
    throw new ConfigError('Invalid configuration in the environment:\n  METRICS_HOST needs METRICS_PORT');
  }
  if (e.WORKER_METRICS_HOST !== undefined && e.WORKER_METRICS_PORT === undefined) {
    throw new ConfigError('Invalid configuration in the environment:\n  WORKER_METRICS_HOST needs WORKER_METRICS_PORT');
  }
  const temporalTls =
    e.TEMPORAL_TLS_CERT_FILE || e.TEMPORAL_TLS_CA_FILE
      ? {
          ...(e.TEMPORAL_TLS_CERT_FILE
            ? { certFile: e.TEMPORAL_TLS_CERT_FILE, keyFile: e.TEMPORAL_TLS_KEY_FILE! }
            : {}),
          ...(e.TEMPORAL_TLS_CA_FILE ? { caFile: e.TEMPORAL_TLS_CA_FILE } : {}),
        }
      : undefined;
  const databaseUrl = e.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  const dataDir = path.resolve(e.AGENTINA_DATA_DIR);
  const scheme = e.TLS_CERT_FILE ? 'https' : 'http';
  const uiHost = e.TEMPORAL_ADDRESS.split(':')[0] ?? '127.0.0.1';
  return {
    databaseUrl,
    appDatabaseUrl: e.APP_DATABASE_URL ?? appUrlFor(databaseUrl, e.AGENTINA_APP_DB_PASSWORD),
    appDbPassword: e.AGENTINA_APP_DB_PASSWORD,
    port: e.PORT,
    host: e.HOST,
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      uiPort: e.TEMPORAL_UI_PORT,
      uiUrl: e.TEMPORAL_UI_URL ?? `http://${uiHost}:${e.TEMPORAL_UI_PORT}`,
      tls: temporalTls,
      apiKey: e.TEMPORAL_API_KEY,
    },
    dataDir,
    keysDir: path.resolve(e.AGENTINA_KEYS_DIR ?? path.join(dataDir, 'keys')),
    tls: e.TLS_CERT_FILE && e.TLS_KEY_FILE ? { certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE } : undefined,
    devHttp: e.AGENTINA_DEV_HTTP === '1',
    logLevel: e.LOG_LEVEL,
    publicOrigin: e.PUBLIC_ORIGIN ?? `${scheme}://${e.HOST === '0.0.0.0' ? '127.0.0.1' : e.HOST}:${e.PORT}`,
    audit: {
      checkpointIntervalMs: e.AUDIT_CHECKPOINT_INTERVAL,
      checkpointDir: e.AUDIT_CHECKPOINT_DIR === undefined ? undefined : path.resolve(e.AUDIT_CHECKPOINT_DIR),
    },
    agents: {
      heartbeatIntervalMs: e.AGENT_HEARTBEAT_INTERVAL,
      fingerprintThreshold: e.AGENT_FINGERPRINT_THRESHOLD,
      taskLeaseMs: e.AGENT_TASK_LEASE,
    },
    releases: {
      signer:
        e.RELEASE_SIGNER === 'pkcs11'
          ? {
              kind: 'pkcs11',
              module: e.RELEASE_PKCS11_MODULE!,
              tokenLabel: e.RELEASE_PKCS11_TOKEN!,
              keyLabel: e.RELEASE_PKCS11_KEY,
              ...(e.RELEASE_PKCS11_PIN_FILE ? { pinFile: path.resolve(e.RELEASE_PKCS11_PIN_FILE) } : {}),
              ...(e.RELEASE_PKCS11_PIN ? { pin: e.RELEASE_PKCS11_PIN } : {}),
            }
          : { kind: 'file' },
      rootKeys: e.RELEASE_ROOT_KEYS,
      rootThreshold: e.RELEASE_ROOT_THRESHOLD,
      timestampExpiryMs: e.RELEASE_TIMESTAMP_EXPIRY,
    },
    trustProxy: e.TRUST_PROXY ?? false,
    webhooks: { allowHosts: e.WEBHOOK_ALLOW_HOSTS },
    licenses: { expiryNoticeDays: e.LICENSE_EXPIRY_NOTICE_DAYS },
    metrics: {
      token: e.METRICS_TOKEN,
      listener:
        e.METRICS_PORT === undefined ? undefined : { host: e.METRICS_HOST ?? '127.0.0.1', port: e.METRICS_PORT },
      worker:
        e.WORKER_METRICS_PORT === undefined
          ? undefined
          : { host: e.WORKER_METRICS_HOST ?? '127.0.0.1', port: e.WORKER_METRICS_PORT },
      auditVerifyIntervalMs:
        e.AUDIT_VERIFY_INTERVAL === undefined
          ? 3_600_000
          : e.AUDIT_VERIFY_INTERVAL === '0'
            ? 0
            : e.AUDIT_VERIFY_INTERVAL,
    },
  };
}
