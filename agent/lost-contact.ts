import { credentialRejectedDetail, type Gate } from './enforcement';
import { ControlPlaneError } from './http-client';
import type { LicenseFeed } from './license-feed';
import type { AgentLogger } from './logger';

/**
 * What a failed control-plane call means, and what is owed once contact is back: the license
 * feed's record of bad news missed meanwhile, read into the journal at start and after every
 * lost contact. A refused credential is terminal at once.
 */
export function createLostContact(ctx: { feed: LicenseFeed; gate: Gate; stopping: AbortSignal; logger: AgentLogger }) {
  const { feed, gate, stopping, logger } = ctx;
  let feedOwed = true;
  let feedReading: Promise<void> | null = null;

  function readFeedIfOwed(): void {
    if (!feedOwed || feedReading || stopping.aborted) return;
    feedOwed = false;
    feedReading = feed
      .catchUp(stopping)
      .then(
        () => undefined,
        (err: unknown) => {
          if (stopping.aborted) return;
          // A control plane without the feed: asked again after the next lost contact, not every poll.
          if (err instanceof ControlPlaneError && err.status === 404) {
            logger.warn({ code: err.code }, 'the control plane has no license feed');
            return;
          }
          onControlPlaneError(err, 'license feed');
        },
      )
      .finally(() => {
        feedReading = null;
      });
  }

  function onControlPlaneError(err: unknown, what: string): void {
    if (err instanceof ControlPlaneError && err.credentialRejected) {
      gate.enterTerminal('CREDENTIAL_REJECTED', credentialRejectedDetail(err.code));
      return;
    }
    feedOwed = true;
    logger.warn({ err: err instanceof Error ? { type: err.name, message: err.message } : err }, `${what} failed`);
  }

  return {
    readFeedIfOwed,
    onControlPlaneError,
    /** The feed read under way, if any (stop waits for it). */
    feedReading: (): Promise<void> | null => feedReading,
  };
}
export type LostContact = ReturnType<typeof createLostContact>;
