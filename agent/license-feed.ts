import { verifySignature, type KeySet, type SignedRevocations } from '../protocol';
import { ControlPlaneError } from './http-client';
import type { Journal } from './journal';
import type { AgentLogger } from './logger';
import type { PrefixStore } from './prefix-store';
import { PREFIX_FILES } from './settings';

/** Items per request; a long time out of contact is read page by page. */
export const FEED_PAGE = 100;
/** Pages per catch-up: the rest waits for the next one rather than holding the agent. */
const MAX_PAGES = 50;

export type FeedCatchUp = { outcome: 'read'; items: number } | { outcome: 'refused'; reason: string };

/**
 * The record of what happened to the license while the agent could not see it: after a start and
 * after every return from a time out of contact, the signed bad-news feed since the stored cursor
 * (GET /v1/agent/revocations) goes into the journal, one `license.feed_event` per item (revoked,
 * suspended, expired, quarantined, with its time and version). The feed never decides anything
 * (the status long-poll does); it is only believed when signed with a license key the agent trusts,
 * about its own license, and moving forward from the cursor. Anything else is refused, journaled
 * as `license.feed_refused`, and leaves the cursor where it was.
 */
export function createLicenseFeed(deps: {
  store: PrefixStore;
  read: (q: { since: number; limit: number }, signal?: AbortSignal) => Promise<SignedRevocations>;
  keys: KeySet;
  licenseId: string;
  journal: Journal;
  logger: AgentLogger;
}) {
  const { store, journal } = deps;

  function cursor(): number {
    const kept = store.readJson(PREFIX_FILES.feedCursor) as { cursor?: unknown } | null | undefined;
    const c = kept?.cursor;
    return typeof c === 'number' && Number.isSafeInteger(c) && c >= 0 ? c : 0;
  }

  /** Why a feed answer read with `since` is not believed, or null when it is. */
  function refusal(signed: SignedRevocations, since: number): string | null {
    const v = verifySignature(signed.payload, signed.signature, deps.keys);
    if (!v.ok) return `feed signature rejected: ${v.code}`;
    const { items, nextCursor } = signed.payload;
    let last = since;
    for (const item of items) {
      if (item.licenseId !== deps.licenseId) return 'feed item about another license';
      if (item.cursor <= last) return 'feed items not after the cursor (a replayed answer)';
      last = item.cursor;
    }
    if (nextCursor !== last) return 'feed cursor does not follow its items';
    return null;
  }

  function refuse(reason: string): FeedCatchUp {
    journal.append('license.feed_refused', { reason }, true);
    deps.logger.warn({ reason }, 'refused the license feed');
    return { outcome: 'refused', reason };
  }

  return {
    cursor,
    /** Reads the feed since the stored cursor into the journal. Network failures throw (try again later). */
    async catchUp(signal?: AbortSignal): Promise<FeedCatchUp> {
      let since = cursor();
      let total = 0;
      for (let page = 0; page < MAX_PAGES; page++) {
        let signed: SignedRevocations;
        try {
          signed = await deps.read({ since, limit: FEED_PAGE }, signal);
        } catch (err) {
          if (err instanceof ControlPlaneError && err.code === 'BAD_RESPONSE') return refuse('malformed feed answer');
          throw err;
        }
        const why = refusal(signed, since);
        if (why) return refuse(why);
        for (const item of signed.payload.items)
          journal.append(
            'license.feed_event',
            {
              cursor: item.cursor,
              licenseId: item.licenseId,
              ...(item.agentId ? { agentId: item.agentId } : {}),
              state: item.state,
              version: item.version,
              ...(item.reason ? { reason: item.reason } : {}),
              happenedAt: item.at,
            },
            true,
          );
        // The journal first, then the cursor: a crash between the two repeats an item, never loses one.
        since = signed.payload.nextCursor;
        store.writeJson(PREFIX_FILES.feedCursor, { cursor: since, readAt: signed.payload.serverTime });
        total += signed.payload.items.length;
        if (signed.payload.items.length < FEED_PAGE) break;
      }
      return { outcome: 'read', items: total };
    },
  };
}
export type LicenseFeed = ReturnType<typeof createLicenseFeed>;
