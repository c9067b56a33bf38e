import { createPublicKey, randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { sha256Hex } from '../secrets';
import { appendAudit, withTransaction } from '../../db';
import {
  findActivationToken,
  findActivationTokenByHash,
  findLicenseForToken,
  insertActivationToken,
  listActivationTokens,
  revokeActivationToken,
  setActivationTokenAgent,
  spendActivationToken,
  type ActivationTokenRow,
} from '../../db/activation-tokens-repo';
import { countSeatedAgents, insertAgent, isCustomerActive } from '../../db/agents-repo';
import { getLicense } from '../../db/licenses-repo';
import { licenseDocumentFor } from '../licenses/license-views';
import { licenseStandingAt } from '../licenses/license-standing';
import {
  fingerprintCommitment,
  newId,
  newSecret,
  formatAgentCredential,
  CREDENTIAL_SECRET_BYTES,
  scrubFreeText,
  signLicense,
  type ActivateRequest,
  type ActivateResponse,
  type Actor,
  type Clock,
  type SignedStatus,
  type Signer,
} from '../../protocol';
import { AppError } from '../errors';
import type { ActivationTokenState as TokenState } from '../../protocol/enums';
import type { ActivationTokenView } from '../../protocol/views';

export type { ActivationTokenView, TokenState };

export const ACTIVATION_TOKEN_DEFAULT_TTL_S = 24 * 3600;
export const ACTIVATION_TOKEN_MIN_TTL_S = 300;
export const ACTIVATION_TOKEN_MAX_TTL_S = 30 * 24 * 3600;
export const HEARTBEAT_INTERVAL_S = 60;

/** Who the anonymous presenter of an unusable token is, in the audit log. */
const UNAUTHENTICATED_AGENT: Actor = { kind: 'agent', id: 'unauthenticated' };

export type RedeemRefusal = 'unknown' | 'spent' | 'expired' | 'revoked';

function stateOf(t: ActivationTokenRow, now: Date): TokenState {
  if (t.spent_at) return 'spent';
  if (t.revoked_at) return 'revoked';
  return t.expires_at.getTime() <= now.getTime() ? 'expired' : 'pending';
}

export function viewOf(t: ActivationTokenRow, now: Date): ActivationTokenView {
  return {
    id: t.id,
    licenseId: t.license_id,
    customerId: t.customer_id,
    label: t.label,
    state: stateOf(t, now),
    createdAt: t.created_at.toISOString(),
    expiresAt: t.expires_at.toISOString(),
    createdBy: { kind: t.created_by_kind, id: t.created_by_id },
    spentAt: t.spent_at?.toISOString() ?? null,
    agentId: t.agent_id,
    revokedAt: t.revoked_at?.toISOString() ?? null,
  };
}

const REFUSAL_MESSAGE: Record<RedeemRefusal, string> = {
  unknown: 'This activation token is not valid.',
  spent: 'This activation token has already been used; ask for a new one.',
  expired: 'This activation token has expired; ask for a new one.',
  revoked: 'This activation token was revoked; ask for a new one.',
};

export type ActivationServiceDeps = {
  pool: Pool;
  clock: Clock;
  signer: Signer;
  /** The status service's reader, so the first status an agent sees is the same signed answer as later ones. */
  currentStatus: (agentId: string) => Promise<SignedStatus | undefined>;
};

/** Activation tokens (issue, list, revoke) and their one-time redemption by an agent. */
export function createActivationService(deps: ActivationServiceDeps) {
  return {
    /**
     * Issues a token for a license. `customerId` scopes a portal caller: another customer's
     * license is reported as not found. The token is returned once and stored only as sha256.
     */
    async issueToken(input: {
      actor: Actor;
      licenseId: string;
      customerId?: string;
      ttlSeconds?: number;
      label?: string;
    }): Promise<{ token: string; activationToken: ActivationTokenView }> {
      const license = await findLicenseForToken(deps.pool, input.licenseId);
      if (!license || (input.customerId !== undefined && license.customer_id !== input.customerId))
        throw new AppError('NOT_FOUND', 'No such license.');
      const now = deps.clock.now();
      const standing = licenseStandingAt(license.state, license, now);
      if (!standing.good)
        throw new AppError('CONFLICT', `The license is ${standing.state}; no agent can be activated on it.`);
      const token = newSecret('act');
      const ttl = input.ttlSeconds ?? ACTIVATION_TOKEN_DEFAULT_TTL_S;
      const row = await withTransaction(deps.pool, async (tx) => {
        const inserted = await insertActivationToken(tx, {
          id: newId('tok'),
          licenseId: license.id,
          customerId: license.customer_id,
          tokenHash: sha256Hex(token),
          label: input.label === undefined ? null : scrubFreeText(input.label, 200),
          createdBy: input.actor,
          createdAt: now,
          expiresAt: new Date(now.getTime() + ttl * 1000),
        });
        await appendAudit(
          tx,
          {
            actor: input.actor,
            action: 'activation_token.created',
            subject: { kind: 'activation_token', id: inserted.id },
            data: {
              licenseId: license.id,
              customerId: license.customer_id,
              expiresAt: inserted.expires_at.toISOString(),
            },
          },
          deps.clock,
        );
        return inserted;
      });
      return { token, activationToken: viewOf(row, now) };
    },

    async listTokens(filter: {
      licenseId?: string;
      customerId?: string;
      limit: number;
      before?: Date;
    }): Promise<ActivationTokenView[]> {
      const now = deps.clock.now();
      return (await listActivationTokens(deps.pool, filter)).map((t) => viewOf(t, now));
    },

    async getToken(id: string, customerId?: string): Promise<ActivationTokenView> {
      const row = await findActivationToken(deps.pool, id, customerId);
      if (!row) throw new AppError('NOT_FOUND', 'No such activation token.');
      return viewOf(row, deps.clock.now());
    },

    /** Revokes an unused token; a spent or already revoked one is a conflict, another customer's a 404. */
    async revokeToken(input: { actor: Actor; id: string; customerId?: string }): Promise<ActivationTokenView> {
      const now = deps.clock.now();
      const row = await withTransaction(deps.pool, async (tx) => {
        const revoked = await revokeActivationToken(tx, input.id, input.actor, now, input.customerId);
        if (!revoked) {
          const existing = await findActivationToken(tx, input.id, input.customerId);
          if (!existing) throw new AppError('NOT_FOUND', 'No such activation token.');
          throw new AppError('CONFLICT', `This activation token is already ${stateOf(existing, now)}.`);
        }
        await appendAudit(
          tx,
          {
            actor: input.actor,
            action: 'activation_token.revoked',
            subject: { kind: 'activation_token', id: revoked.id },
            data: { licenseId: revoked.license_id, customerId: revoked.customer_id },
          },
          deps.clock,
        );
        return revoked;
      });
      return viewOf(row, now);
    },

    /**
     * Redeems a token exactly once (one conditional UPDATE), creates the agent bound to the
     * license and the fingerprint, and returns its credential (once) with the signed license and
     * status. A refused token (used, expired, revoked) is audited with the presenting IP in a
     * transaction that commits even though the request fails. `offlineBy` names the admin or
     * customer who turned an air-gapped agent's request into a response: audited beside the rest.
     */
    async activate(
      req: ActivateRequest,
      ip: string,
      opts: { offlineBy?: Actor; requestId?: string } = {},
    ): Promise<ActivateResponse> {
      assertEd25519PublicKey(req.publicKey);
      const tokenHash = sha256Hex(req.token);
      const commitment = fingerprintCommitment(req.fingerprint.salt, req.fingerprint.components);
      const agentId = newId('agt');
      // Generation 0, naming its agent: a copy of it still presented after rotation is recognised (clone detection).
      const credential = formatAgentCredential(agentId, 0, randomBytes(CREDENTIAL_SECRET_BYTES));
      const outcome = await withTransaction(deps.pool, async (tx) => {
        const token = await spendActivationToken(tx, tokenHash, ip);
        if (!token) {
          const existing = await findActivationTokenByHash(tx, tokenHash);
          if (!existing) return { ok: false as const, refusal: 'unknown' as const };
          const refusal: RedeemRefusal = existing.spent_at ? 'spent' : existing.revoked_at ? 'revoked' : 'expired';
          await appendAudit(
            tx,
            {
              actor: UNAUTHENTICATED_AGENT,
              action: 'activation_token.reused',
              subject: { kind: 'activation_token', id: existing.id },
              data: { ip, reason: refusal, licenseId: existing.license_id, customerId: existing.customer_id },
            },
            deps.clock,
          );
          return { ok: false as const, refusal };
        }
        // From here on any refusal throws: the transaction rolls back and the token stays unspent.
        // The row lock serializes activations on one license, so the seat count cannot be raced past.
        const license = await getLicense(tx, token.license_id, { forUpdate: true });
        if (!license) throw new AppError('NOT_FOUND', 'No such license.');
        if (!(await isCustomerActive(tx, license.customer_id)))
          throw new AppError('CONFLICT', 'The customer account of this license is deactivated.');
        // Judged by the dates too: the lifecycle may not have moved the row yet (worker stopped).
        const now = deps.clock.now();
        const standing = licenseStandingAt(license.state, license, now);
        if (!standing.good)
          throw new AppError('CONFLICT', `The license is ${standing.state}; no agent can be activated on it.`);
        const seated = await countSeatedAgents(tx, license.id);
        if (seated >= license.max_agents)
          throw new AppError('CONFLICT', `The license already has its maximum of ${license.max_agents} agent(s).`);
        await insertAgent(tx, {
          id: agentId,
          licenseId: license.id,
          customerId: license.customer_id,
          credentialHash: sha256Hex(credential),
          publicKey: req.publicKey,
          fingerprintSalt: req.fingerprint.salt,
          fingerprint: req.fingerprint.components,
          fingerprintCommitment: commitment,
          agentVersion: req.agentVersion,
          hostnameHint: req.hostnameHint === undefined ? undefined : scrubFreeText(req.hostnameHint, 255),
          at: now,
        });
        await setActivationTokenAgent(tx, token.id, agentId);
        const actor: Actor = { kind: 'agent', id: agentId };
        await appendAudit(
          tx,
          {
            actor,
            action: 'activation_token.redeemed',
            subject: { kind: 'activation_token', id: token.id },
            data: { ip, licenseId: license.id, agentId },
          },
          deps.clock,
        );
        await appendAudit(
          tx,
          {
            actor,
            action: 'agent.activated',
            subject: { kind: 'agent', id: agentId },
            data: {
              licenseId: license.id,
              customerId: license.customer_id,
              fingerprintCommitment: commitment,
              agentVersion: req.agentVersion,
              ip,
              ...(opts.offlineBy ? { offline: true } : {}),
            },
          },
          deps.clock,
        );
        if (opts.offlineBy)
          await appendAudit(
            tx,
            {
              actor: opts.offlineBy,
              action: 'activation_token.offline_response',
              subject: { kind: 'activation_token', id: token.id },
              data: {
                licenseId: license.id,
                customerId: license.customer_id,
                agentId,
                requestId: opts.requestId ?? null,
              },
            },
            deps.clock,
          );
        return { ok: true as const, license, now };
      });
      if (!outcome.ok) {
        throw new AppError(
          outcome.refusal === 'unknown' ? 'UNAUTHENTICATED' : 'GONE',
          REFUSAL_MESSAGE[outcome.refusal],
        );
      }
      const license = signLicense(
        deps.signer,
        licenseDocumentFor(outcome.license, outcome.now, { agentId, fingerprintCommitment: commitment }),
      );
      const status = await deps.currentStatus(agentId);
      if (!status) throw new Error('activated agent has no status');
      return { agentId, credential, license, status, heartbeatIntervalS: HEARTBEAT_INTERVAL_S };
    },
  };
}

export type ActivationService = ReturnType<typeof createActivationService>;

function assertEd25519PublicKey(pem: string): void {
  let ok = false;
  try {
    ok = createPublicKey(pem).asymmetricKeyType === 'ed25519';
  } catch {
    ok = false;
  }
  if (!ok)
    throw new AppError('VALIDATION_FAILED', 'publicKey must be an Ed25519 public key in SPKI PEM form.', [
      { path: 'body.publicKey', message: 'not an Ed25519 SPKI PEM public key' },
    ]);
}
