import type { Pool } from 'pg';
import { findActivationTokenByHash } from '../../db/activation-tokens-repo';
import {
  OFFLINE_BINDING_KIND,
  OFFLINE_RESPONSE_FORMAT,
  offlineRequestDigest,
  signEnvelope,
  type Actor,
  type Clock,
  type OfflineActivationRequest,
  type OfflineActivationResponse,
  type OfflineBinding,
  type Signer,
} from '../../protocol';
import { AppError } from '../errors';
import { sha256Hex } from '../secrets';
import type { ActivationService } from './activation-service';

export type OfflineActivationDeps = { pool: Pool; clock: Clock; signer: Signer; activation: ActivationService };

/**
 * Air-gapped activation: an admin or the license's customer presents the agent's request file
 * and the activation token; the token is redeemed by the one activation service (single use,
 * seat count, binding of the license document to the agent's fingerprint, audit), and the
 * answer is wrapped with a signed binding to that request, so only the machine that wrote it
 * (holding its private key, salt and request id) can complete the activation.
 */
export function createOfflineActivationService(deps: OfflineActivationDeps) {
  return {
    async respond(input: {
      actor: Actor;
      request: OfflineActivationRequest;
      token: string;
      ip: string;
      /** A portal caller: a token of another customer is reported as not found. */
      customerId?: string;
    }): Promise<OfflineActivationResponse> {
      const { request } = input;
      const known = await findActivationTokenByHash(deps.pool, sha256Hex(input.token));
      if (known && input.customerId !== undefined && known.customer_id !== input.customerId)
        throw new AppError('NOT_FOUND', 'No such activation token.');
      // The request names the token it was written for; another one is refused before it is spent.
      if (known && known.id !== request.tokenId)
        throw new AppError(
          'CONFLICT',
          `This request was written for activation token ${request.tokenId}; the token given is ${known.id}.`,
        );
      const activation = await deps.activation.activate(
        {
          token: input.token,
          publicKey: request.publicKey,
          fingerprint: request.fingerprint,
          agentVersion: request.agentVersion,
          ...(request.hostnameHint !== undefined ? { hostnameHint: request.hostnameHint } : {}),
        },
        input.ip,
        { offlineBy: input.actor, requestId: request.requestId },
      );
      const binding: OfflineBinding = {
        kind: OFFLINE_BINDING_KIND,
        requestDigest: offlineRequestDigest(request),
        agentId: activation.agentId,
        licenseId: activation.license.document.licenseId,
        credentialSha256: sha256Hex(activation.credential),
        issuedAt: deps.clock.now().toISOString(),
      };
      return { format: OFFLINE_RESPONSE_FORMAT, binding: signEnvelope(deps.signer, binding), activation };
    },
  };
}

export type OfflineActivationService = ReturnType<typeof createOfflineActivationService>;
