import { createHash, randomBytes } from 'node:crypto';
import { newAgentKey, rememberAgentCredential } from './agent-keys';
import type { FastifyRequest } from 'fastify';
import type { Pool } from 'pg';
import type { Principal } from '../../api/auth/access';
import { chainResolvers, type CredentialResolver } from '../../api/auth/authenticate';
import { createAgentCredentialResolver } from '../../api/auth/agent-credential-resolver';
import { createAgentCredentialLookup } from '../../services/agent-status/agent-credentials';
import { withTransaction, insertStatusFeed, notifyStatus } from '../../db';
import { createTestKeysDir } from './license-helpers';
import {
  fingerprintCommitment,
  loadPurposeKeySet,
  newId,
  newSecret,
  type FingerprintHashes,
  type KeySet,
  type LicenseState,
} from '../../protocol';

/** A throwaway keys directory (createTestKeysDir) and its `license` public key set. */
export function createTestKeys(): { dir: string; keySet: KeySet; remove(): void } {
  const keys = createTestKeysDir();
  return { ...keys, keySet: loadPurposeKeySet(keys.dir, 'license') };
}

/**
 * Admin, service and customer principals come from the identity area; these tests stand them in
 * with a header (`x-test-principal: admin:<id>` (an owner) | `service:<id>` | `customer:<userId>:<customerId>`),
 * chained before the real agent-credential resolver.
 */
export function testPrincipalResolver(): CredentialResolver {
  return async (req: FastifyRequest) => {
    const h = req.headers['x-test-principal'];
    if (typeof h !== 'string') return undefined;
    const [kind, id, customerId] = h.split(':');
    // A stand-in admin is an owner (every permission), as admins were before roles.
    if (kind === 'admin') return { kind: 'admin', id: id!, sessionId: 'test', role: 'owner' } satisfies Principal;
    if (kind === 'service') return { kind: 'service', id: id! } satisfies Principal;
    if (kind === 'customer')
      return { kind: 'customer', id: id!, customerId: customerId!, sessionId: 'test' } satisfies Principal;
    return null;
  };
}

export function testAuthenticate(pool: Pool) {
  return chainResolvers([
    testPrincipalResolver(),
    createAgentCredentialResolver(createAgentCredentialLookup({ pool })),
  ]);
}

export async function insertCustomer(pool: Pool, name = 'Test customer'): Promise<string> {
  const id = newId('cus');
  await pool.query('INSERT INTO customers (id, name) VALUES ($1, $2)', [id, name]);
  return id;
}

export type LicenseFixture = { state?: LicenseState; maxAgents?: number; version?: number };

/** A license row as the lifecycle would have written it (tests of this area only read it). */
export async function insertLicense(pool: Pool, customerId: string, f: LicenseFixture = {}): Promise<string> {
  const id = newId('lic');
  const now = Date.now();
  await pool.query(
    `INSERT INTO licenses (id, customer_id, plan, features, max_agents, state, version, not_before, expires_at, grace_days)
     VALUES ($1, $2, 'pro', '{"seats":5,"gpu":true,"tasks.echo":true,"tasks.sleep":true,"tasks.http_get":true}', $3, $4, $5, $6, $7, 7)`,
    [
      id,
      customerId,
      f.maxAgents ?? 10,
      f.state ?? 'active',
      f.version ?? 1,
      new Date(now - 86400e3),
      new Date(now + 365 * 86400e3),
    ],
  );
  return id;
}

export function randomFingerprint(): { salt: string; components: FingerprintHashes } {
  const h = () => randomBytes(32).toString('hex');
  return {
    salt: randomBytes(18).toString('base64url'),
    components: { baseboard: h(), disk: h(), cpu: h(), mac: h(), hostname: h() },
  };
}

/** A new agent key's public half; tests acting as that agent sign with its private half (agent-keys.ts). */
export function agentPublicKeyPem(): string {
  return newAgentKey();
}

export function activateBody(token: string) {
  return {
    token,
    publicKey: agentPublicKeyPem(),
    fingerprint: randomFingerprint(),
    agentVersion: '1.2.3',
    hostnameHint: 'build-01',
  };
}

/**
 * An agent row with a real credential, written directly (benchmarks provision thousands; the
 * activation route itself is covered by its own tests).
 */
export async function insertAgents(
  pool: Pool,
  licenseId: string,
  customerId: string,
  count: number,
): Promise<Array<{ agentId: string; credential: string }>> {
  const out: Array<{ agentId: string; credential: string }> = [];
  const publicKey = agentPublicKeyPem();
  for (let i = 0; i < count; i += 500) {
    const batch = Array.from({ length: Math.min(500, count - i) }, () => ({
      agentId: newId('agt'),
      credential: newSecret('agc'),
      fp: randomFingerprint(),
    }));
    await pool.query(
      `INSERT INTO agents (id, license_id, customer_id, credential_hash, public_key, fingerprint_salt, fingerprint, fingerprint_commitment)
       SELECT id, $1, $2, hash, $3, salt, fp, commitment
         FROM unnest($4::text[], $5::text[], $6::text[], $7::jsonb[], $8::text[]) AS t(id, hash, salt, fp, commitment)`,
      [
        licenseId,
        customerId,
        publicKey,
        batch.map((b) => b.agentId),
        batch.map((b) => createHash('sha256').update(b.credential).digest('hex')),
        batch.map((b) => b.fp.salt),
        batch.map((b) => JSON.stringify(b.fp.components)),
        batch.map((b) => fingerprintCommitment(b.fp.salt, b.fp.components)),
      ],
    );
    for (const b of batch) rememberAgentCredential(b.credential, publicKey);
    out.push(...batch.map((b) => ({ agentId: b.agentId, credential: b.credential })));
  }
  return out;
}

/**
 * What the lifecycle's transition activity does for a license, by hand: row, feed row and NOTIFY
 * in one transaction (used where the workflow itself is not under test).
 */
export async function transitionLicenseByHand(
  pool: Pool,
  licenseId: string,
  state: LicenseState,
  reason: string | null = null,
): Promise<number> {
  return withTransaction(pool, async (tx) => {
    const { rows } = await tx.query<{ version: string }>(
      'UPDATE licenses SET state = $2, state_reason = $3, version = version + 1, updated_at = now() WHERE id = $1 RETURNING version',
      [licenseId, state, reason],
    );
    const version = Number(rows[0]!.version);
    const feedId = await insertStatusFeed(tx, { licenseId, state, version, reason });
    await notifyStatus(tx, { licenseId, agentId: null, feedId });
    return version;
  });
}

/** The same for one agent (what the quarantine workflow and deregistration do). */
export async function quarantineAgentByHand(
  pool: Pool,
  agentId: string,
  reason: string,
  status: 'quarantined' | 'deregistered' = 'quarantined',
): Promise<void> {
  await withTransaction(pool, async (tx) => {
    const { rows } = await tx.query<{ license_id: string; version: string }>(
      `UPDATE agents a SET status = $3, status_reason = $2, status_version = a.status_version + 1
         FROM licenses l WHERE a.id = $1 AND l.id = a.license_id RETURNING a.license_id, l.version + a.status_version AS version`,
      [agentId, reason, status],
    );
    const feedId = await insertStatusFeed(tx, {
      licenseId: rows[0]!.license_id,
      agentId,
      state: status,
      version: Number(rows[0]!.version),
      reason,
    });
    await notifyStatus(tx, { licenseId: rows[0]!.license_id, agentId, feedId });
  });
}
