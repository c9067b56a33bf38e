import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AgentIdentity } from '../../services/agent-status/agent-credentials';
import type { AgentProofVerifier } from '../../services/agent-status/agent-proof';
import type { CredentialRotation } from '../../services/agents/credential-rotation';
import { PROOF_HEADER, SERVER_TIME_HEADER, SESSION_HEADER, type Clock } from '../../protocol';
import { AppError } from '../errors';

/** The agent each request's credential named, kept for the proof check once the body is read. */
const subjects = new WeakMap<FastifyRequest, AgentIdentity>();
export const rememberProofSubject = (req: FastifyRequest, subject: AgentIdentity): void =>
  void subjects.set(req, subject);

const BEARER = /^Bearer\s+(agc_\S+)$/i;
/** The credential an agent request was made with, the agent it named and the client's address (for rotation). */
export function presentedAgentCredential(
  req: FastifyRequest,
): { credential: string; ip: string; identity: AgentIdentity } | undefined {
  const identity = subjects.get(req);
  const credential = BEARER.exec(req.headers.authorization ?? '')?.[1];
  return identity && credential ? { credential, ip: req.ip, identity } : undefined;
}

/**
 * Every request made with an agent credential must prove possession of the agent's key (see
 * protocol/agent-proof.ts); checked once the body has been read and before it is validated.
 * A refused proof is a 401 PROOF_REJECTED that leaves the address's failed-authentication budget
 * alone: the credential was genuine, and a guess at it already spent from that budget. An agent
 * that proved itself with its key is handed a session for cheaper proofs. Only then is the
 * credential's generation judged (services/agents/credential-rotation.ts): a credential alone,
 * without the key, can neither supersede the agent's credential nor get it quarantined.
 */
export function installAgentProof(
  app: FastifyInstance,
  verifier: AgentProofVerifier,
  rotation: Pick<CredentialRotation, 'admit'>,
  clock: Clock,
): void {
  app.addHook('preValidation', async (req, reply) => {
    if (req.principal?.kind !== 'agent') return;
    const subject = subjects.get(req);
    const verdict = subject
      ? verifier.verify(subject, {
          method: req.method,
          path: req.url,
          body: req.rawBody ?? '',
          header: req.headers[PROOF_HEADER],
        })
      : ({ ok: false, reason: 'no registered key' } as const);
    if (!verdict.ok) {
      req.log.info({ agentId: req.principal.id, reason: verdict.reason }, 'agent proof of possession refused');
      throw new AppError(
        'PROOF_REJECTED',
        `This agent request carries no valid proof of possession of the agent key (${verdict.reason}).`,
        undefined,
        { [SERVER_TIME_HEADER]: String(clock.now().getTime()) },
      );
    }
    await rotation.admit(subject!, { ip: req.ip, rotating: req.routeOptions.config.rotatesCredential === true });
    if (verdict.kind === 'ed25519' && subject) {
      const session = verifier.mintSession(subject);
      if (session) void reply.header(SESSION_HEADER, session);
    }
  });
}
