import { parseAgentCredential, type HeartbeatResponse } from '../protocol';
import type { AgentLogger } from './logger';
import type { PrefixStore } from './prefix-store';
import { PREFIX_FILES } from './settings';

/**
 * The agent's credential and its generation. Each heartbeat answer carries the next generation;
 * it is written to the state directory (atomically: temp file, fsync, rename) before any request
 * uses it, so a crash leaves the old or the new one, never none. Until the new one's first use
 * the control plane still takes the old one, so a failed write, a crash or a lost answer is
 * harmless: the next heartbeat is issued another next generation.
 */
export function createCredentialHolder(input: {
  store: PrefixStore;
  agentId: string;
  credential: string;
  /** Switches the client's requests to the new credential. */
  use: (credential: string) => void;
  logger: AgentLogger;
}) {
  let credential = input.credential;
  // A credential from before rotation names no generation: it is generation 0.
  let generation = parseAgentCredential(credential)?.generation ?? 0;

  return {
    generation: () => generation,
    /** Adopts the heartbeat answer's next generation; true when the agent now uses it. */
    adopt(next: NonNullable<HeartbeatResponse['nextCredential']>): boolean {
      if (next.credential === credential) return false;
      const named = parseAgentCredential(next.credential);
      if (
        next.generation <= generation ||
        (named && (named.agentId !== input.agentId || named.generation !== next.generation))
      ) {
        input.logger.warn(
          { held: generation, offered: next.generation },
          'ignored a next credential that is not the next generation of this agent',
        );
        return false;
      }
      try {
        input.store.writeText(PREFIX_FILES.credential, `${next.credential}\n`);
      } catch (err) {
        // Not written, not used: the old generation still works and the next heartbeat offers this one again.
        input.logger.error({ err: { message: (err as Error).message } }, 'could not write the next credential');
        return false;
      }
      credential = next.credential;
      generation = next.generation;
      input.use(next.credential);
      input.logger.debug({ generation }, 'the credential rotated');
      return true;
    },
  };
}

export type CredentialHolder = ReturnType<typeof createCredentialHolder>;
