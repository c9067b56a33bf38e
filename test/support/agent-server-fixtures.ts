import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { runtimeHashOf } from '../../services/releases/releases-service';
import {
  DEFAULT_TASK_FEATURES,
  fingerprintCommitment,
  newId,
  newSecret,
  type Clock,
  type FingerprintHashes,
  type HeartbeatRequest,
  type ReleaseManifest,
  type Signer,
} from '../../protocol';
import { newAgentKey, rememberAgentCredential } from './agent-keys';
import { mintSession, SAME_ORIGIN, seedAdmin, seedCustomerUser } from './identity';

/** Test-only data: a customer, a license and agents bound to it, written as the app role would. */
export type AgentFixture = {
  customerId: string;
  licenseId: string;
  agentId: string;
  credential: string;
  fingerprint: FingerprintHashes;
};

const hex = () => randomBytes(32).toString('hex');
export const randomFingerprint = (): FingerprintHashes => ({
  baseboard: hex(),
  disk: hex(),
  cpu: hex(),
  mac: hex(),
  hostname: hex(),
});

export async function createCustomer(pool: Pool): Promise<string> {
  const id = newId('cus');
  await pool.query('INSERT INTO customers (id, name) VALUES ($1, $2)', [id, `Customer ${id.slice(-6)}`]);
  return id;
}

export async function createLicense(
  pool: Pool,
  customerId: string,
  opts: { state?: string; maxAgents?: number; features?: Record<string, boolean | number | string> } = {},
): Promise<string> {
  const id = newId('lic');
  // By default what a license created without features holds: every task kind granted.
  await pool.query(
    `INSERT INTO licenses (id, customer_id, plan, features, max_agents, state, not_before, expires_at)
     VALUES ($1, $2, 'standard', $5, $3, $4, now() - interval '1 day', now() + interval '30 days')`,
    [id, customerId, opts.maxAgents ?? 5, opts.state ?? 'active', opts.features ?? DEFAULT_TASK_FEATURES],
  );
  return id;
}

export async function createAgent(
  pool: Pool,
  licenseId: string,
  customerId: string,
  at = new Date(),
): Promise<AgentFixture> {
  const agentId = newId('agt');
  const credential = newSecret('agc');
  const fingerprint = randomFingerprint();
  const salt = randomBytes(16).toString('base64url');
  const publicKey = newAgentKey();
  rememberAgentCredential(credential, publicKey);
  await pool.query(
    `INSERT INTO agents (id, license_id, customer_id, credential_hash, public_key, fingerprint_salt, fingerprint, fingerprint_commitment,
                         agent_version, created_at, updated_at, last_seen_at)
     VALUES ($1, $2, $3, $4, $9, $5, $6, $7, '1.0.0', $8, $8, $8)`,
    [
      agentId,
      licenseId,
      customerId,
      createHash('sha256').update(credential).digest('hex'),
      salt,
      fingerprint,
      fingerprintCommitment(salt, fingerprint),
      at,
      publicKey,
    ],
  );
  return { customerId, licenseId, agentId, credential, fingerprint };
}

/** A customer with one active license and one agent. */
export async function createAgentWithLicense(pool: Pool, at = new Date()): Promise<AgentFixture> {
  const customerId = await createCustomer(pool);
  const licenseId = await createLicense(pool, customerId);
  return createAgent(pool, licenseId, customerId, at);
}

/**
 * Admin and portal callers with real sessions, as the production authenticator resolves them
 * (cookie + same-origin headers). Sessions are minted on `clock`, the app's clock.
 */
export function createStaff(pool: Pool, clock: Clock) {
  const admins = new Map<string, Promise<{ id: string; headers: Record<string, string> }>>();
  const customers = new Map<string, Promise<Record<string, string>>>();
  const adminIds = new Map<string, string>();
  const mintAdmin = async (label: string) => {
    const admin = await seedAdmin(pool, { cheap: true });
    adminIds.set(label, admin.id);
    const { cookie } = await mintSession(pool, 'admin', admin, clock);
    return { id: admin.id, headers: { cookie, ...SAME_ORIGIN } };
  };
  const mintCustomer = async (customerId: string) => {
    const user = await seedCustomerUser(pool, customerId, { cheap: true });
    const { cookie } = await mintSession(pool, 'customer', { id: user.id, customerId }, clock);
    return { cookie, ...SAME_ORIGIN };
  };
  return {
    /** Headers of an admin session; one admin per label. */
    async admin(label = 'default'): Promise<Record<string, string>> {
      if (!admins.has(label)) admins.set(label, mintAdmin(label));
      return (await admins.get(label)!).headers;
    },
    /** The id of the admin behind `label` (after `admin(label)`). */
    adminId(label = 'default'): string {
      const id = adminIds.get(label);
      if (!id) throw new Error(`no admin session for ${label} yet`);
      return id;
    },
    /** Headers of a portal session of a user of `customerId`. */
    async customer(customerId: string): Promise<Record<string, string>> {
      if (!customers.has(customerId)) customers.set(customerId, mintCustomer(customerId));
      return customers.get(customerId)!;
    },
  };
}
export type Staff = ReturnType<typeof createStaff>;

/** Browser-like JSON POSTs carry a body; an empty `{}` where the test gives none. */
export function withJsonBody<T extends { method?: string; payload?: unknown; headers?: unknown }>(opts: T): T {
  const headers = (opts.headers ?? {}) as Record<string, string>;
  return opts.method === 'POST' && opts.payload === undefined && headers['content-type'] === 'application/json'
    ? { ...opts, payload: {} }
    : opts;
}

export const asAgent = (a: Pick<AgentFixture, 'credential'>) => ({ authorization: `Bearer ${a.credential}` });

/** POST /v1/agent/heartbeat as `a`: a healthy report of `runtimeHash`, changed by `over`. */
export function heartbeatRequest(a: AgentFixture, runtimeHash: string, over: Partial<HeartbeatRequest> = {}) {
  return {
    method: 'POST' as const,
    url: '/v1/agent/heartbeat',
    headers: asAgent(a),
    payload: {
      agentVersion: '1.0.0',
      runtimeHash,
      fingerprint: a.fingerprint,
      score: 100,
      changedComponents: [],
      inFlightTasks: 0,
      ...over,
    },
  };
}

/** Polls `probe` until it returns a value; for state that a workflow writes asynchronously. */
export async function eventually<T>(
  probe: () => Promise<T | undefined | null | false>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The files of the test agent release, and the runtime hash an agent running it reports. */
export const RELEASE_FILES = [
  { path: 'agent/index.js', sha256: 'a'.repeat(64), size: 1200 },
  { path: 'agent/lib/run.js', sha256: 'b'.repeat(64), size: 800 },
];
export const GOOD_HASH = runtimeHashOf(RELEASE_FILES);

/** A release manifest of `version` (over `files`) and its signature by `signer`. */
export function signManifest(signer: Signer, version: string, files = RELEASE_FILES) {
  const manifest: ReleaseManifest = {
    kind: 'agentina.release/v1',
    version,
    files,
    runtimeHash: runtimeHashOf(files),
    createdAt: '2026-11-01T00:00:00.000Z',
  };
  return { manifest, signature: signer.sign(manifest) };
}

/** The audit rows about one subject, oldest first (read as the owner role). */
export async function subjectAudit(
  adminPool: Pool,
  subjectId: string,
): Promise<Array<{ action: string; actor_kind: string; actor_id: string; data: Record<string, unknown> }>> {
  const { rows } = await adminPool.query(
    'SELECT action, actor_kind, actor_id, data FROM agentina.audit_events WHERE subject_id = $1 ORDER BY seq',
    [subjectId],
  );
  return rows;
}
