import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Pool } from 'pg';
import type { Authenticate, Principal } from '../../api/auth/access';
import { createAgentCredentialResolver } from '../../api/agent-status/agent-credential-resolver';
import { chainResolvers, type CredentialResolver } from '../../api/auth/authenticate';
import { fingerprintCommitment, newId, newSecret, type FingerprintHashes } from '../../protocol';

/** Test-only data: a customer, a license and agents bound to it, written as the app role would. */
export type AgentFixture = {
  customerId: string;
  licenseId: string;
  agentId: string;
  credential: string;
  fingerprint: FingerprintHashes;
};

const hex = () => randomBytes(32).toString('hex');
export const randomFingerprint = (): FingerprintHashes => ({ baseboard: hex(), disk: hex(), cpu: hex(), mac: hex(), hostname: hex() });

export async function createCustomer(pool: Pool): Promise<string> {
  const id = newId('cus');
  await pool.query('INSERT INTO customers (id, name) VALUES ($1, $2)', [id, `Customer ${id.slice(-6)}`]);
  return id;
}

export async function createLicense(pool: Pool, customerId: string, opts: { state?: string; maxAgents?: number } = {}): Promise<string> {
  const id = newId('lic');
  await pool.query(
    `INSERT INTO licenses (id, customer_id, plan, max_agents, state, not_before, expires_at)
     VALUES ($1, $2, 'standard', $3, $4, now() - interval '1 day', now() + interval '30 days')`,
    [id, customerId, opts.maxAgents ?? 5, opts.state ?? 'active'],
  );
  return id;
}

export async function createAgent(pool: Pool, licenseId: string, customerId: string, at = new Date()): Promise<AgentFixture> {
  const agentId = newId('agt');
  const credential = newSecret('agc');
  const fingerprint = randomFingerprint();
  const salt = randomBytes(16).toString('base64url');
  await pool.query(
    `INSERT INTO agents (id, license_id, customer_id, credential_hash, public_key, fingerprint_salt, fingerprint, fingerprint_commitment,
                         agent_version, created_at, updated_at, last_seen_at)
     VALUES ($1, $2, $3, $4, 'test-public-key', $5, $6, $7, '1.0.0', $8, $8, $8)`,
    [agentId, licenseId, customerId, createHash('sha256').update(credential).digest('hex'), salt, fingerprint, fingerprintCommitment(salt, fingerprint), at],
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
 * Agents authenticate with their real `agc_` credential through the production resolver; admins
 * and customers through a test header (`x-test-admin: adm_…`, `x-test-customer: usr_…/cus_…`),
 * since their sessions are another area's subject.
 */
export function createTestAuthenticator(pool: Pool): Authenticate {
  const staff: CredentialResolver = async (req: FastifyRequest) => {
    const admin = req.headers['x-test-admin'];
    if (typeof admin === 'string') return { kind: 'admin', id: admin, sessionId: 'test' } satisfies Principal;
    const customer = req.headers['x-test-customer'];
    if (typeof customer === 'string') {
      const [id, customerId] = customer.split('/');
      return { kind: 'customer', id: id!, customerId: customerId!, sessionId: 'test' } satisfies Principal;
    }
    return undefined;
  };
  return chainResolvers([staff, createAgentCredentialResolver({ pool })]);
}

export const asAdmin = (id = 'adm_testadmin0000000000') => ({ 'x-test-admin': id });
export const asCustomer = (customerId: string, userId = 'usr_testuser00000000000') => ({ 'x-test-customer': `${userId}/${customerId}` });
export const asAgent = (a: Pick<AgentFixture, 'credential'>) => ({ authorization: `Bearer ${a.credential}` });

/** Polls `probe` until it returns a value; for state that a workflow writes asynchronously. */
export async function eventually<T>(probe: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
