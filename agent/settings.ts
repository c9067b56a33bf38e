import { z } from 'zod';
import {
  DEFAULT_FINGERPRINT_THRESHOLD,
  FINGERPRINT_COMPONENTS,
  fingerprintHashesSchema,
  fingerprintSaltSchema,
  agentId,
  licenseId,
  isoTime,
} from '../protocol';

/**
 * The agent's files and their shapes. Configuration (settings, trusted keys, pinned CA) is read
 * from the root-owned configuration directory (system mode) or from the prefix (development
 * mode, `--user`); the agent's own state lives in its state directory (the prefix in
 * development mode). Nothing reads the environment.
 */
export const CONFIG_FILES = {
  settings: 'settings.json',
  trustedKeys: 'trusted-keys.json',
  ca: 'ca.pem',
  /** The pinned TUF root of the release repository (updates are off without it). */
  tufRoot: 'tuf-root.json',
} as const;
/** The system layout the installer creates (each overridable for staging and tests). */
export const SYSTEM_PATHS = {
  config: '/etc/agentina-agent',
  state: '/var/lib/agentina-agent',
  runtime: '/opt/agentina-agent',
  unit: '/etc/systemd/system/agentina-agent.service',
  user: 'agentina',
} as const;
export const PREFIX_FILES = {
  ...CONFIG_FILES,
  credential: 'credential',
  agentKey: 'agent-key.pem',
  activation: 'activation.json',
  license: 'license.json',
  status: 'status.json',
  tasks: 'tasks.json',
  runtime: 'runtime.json',
  /** How far the agent has read the signed bad-news feed into its journal. */
  feedCursor: 'feed-cursor.json',
} as const;

const keyEntry = z
  .strictObject({ kid: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/), publicKeyPem: z.string().min(40).max(1000) })
  .or(
    z
      .object({
        kid: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
        publicKeyPem: z.string().min(40).max(1000),
        createdAt: z.string().max(64),
      })
      .transform(({ kid, publicKeyPem }) => ({ kid, publicKeyPem })),
  );
/** The pinned public keys: `license` signs licenses and status answers, `release` signs runtime manifests. */
export const trustedKeysSchema = z.strictObject({
  license: z.array(keyEntry).min(1).max(20),
  release: z.array(keyEntry).min(1).max(20),
});
export type TrustedKeys = z.infer<typeof trustedKeysSchema>;

const origin = z
  .string()
  .max(300)
  .refine((s) => {
    try {
      const u = new URL(s);
      return u.protocol === 'https:' && u.origin === s;
    } catch {
      return false;
    }
  }, 'must be an https origin such as https://example.com');

export const agentSettingsSchema = z.strictObject({
  server: z.string().url().max(500),
  caPinned: z.boolean().default(false),
  fingerprintThreshold: z.number().int().min(1).max(100).default(DEFAULT_FINGERPRINT_THRESHOLD),
  fingerprintWeights: z
    .strictObject(
      Object.fromEntries(FINGERPRINT_COMPONENTS.map((c) => [c, z.number().int().min(0).max(100)])) as Record<
        (typeof FINGERPRINT_COMPONENTS)[number],
        z.ZodNumber
      >,
    )
    .optional(),
  /** Oldest acceptable signed status; default: the license's grace days (never under 2 minutes). */
  maxStatusAgeS: z
    .number()
    .int()
    .min(30)
    .max(365 * 86400)
    .optional(),
  drainTimeoutS: z.number().int().min(1).max(86400).default(300),
  statusWaitS: z.number().int().min(1).max(30).default(25),
  taskWaitS: z.number().int().min(1).max(30).default(25),
  /** Origins the http.get task may fetch; empty means the agent contacts no host but the control plane. */
  httpGetAllow: z.array(origin).max(50).default([]),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** The signed runtime manifest; default beside the runtime (<release>/agent-release.json). */
  manifestFile: z.string().max(1000).optional(),
  /** The TUF distribution origin updates come from; default `<server>/v1/dist`. */
  distUrl: z.string().url().max(500).optional(),
  /** How often the agent checks for an update (it also checks at start). */
  updateCheckS: z
    .number()
    .int()
    .min(60)
    .max(7 * 86400)
    .default(6 * 3600),
});
export type AgentSettings = z.infer<typeof agentSettingsSchema>;

export const activationRecordSchema = z.strictObject({
  agentId,
  licenseId,
  salt: fingerprintSaltSchema,
  components: fingerprintHashesSchema,
  server: z.string().max(500),
  agentVersion: z.string().max(60),
  activatedAt: isoTime,
  /** The heartbeat period the control plane asked for at activation (each answer may change it). */
  heartbeatIntervalS: z.number().int().min(5).max(3600).optional(),
});
export type ActivationRecord = z.infer<typeof activationRecordSchema>;
