import type { Pool } from 'pg';
import { sessionsRepo, type Queryable } from '../../db';
import type { AccountKind } from '../../db/login-accounts-repo';
import { newSecret, type Clock } from '../../protocol';
import { looksLikeToken, newSessionId } from './tokens';
import { sha256Hex } from '../secrets';

/** Sliding idle timeout, hard ceiling from creation, and the last_seen write throttle. */
export const SESSION_IDLE_MS = 8 * 3600_000;
export const SESSION_MAX_MS = 30 * 24 * 3600_000;
export const SESSION_TOUCH_MS = 60_000;

export type ValidSession = {
  id: string;
  accountId: string;
  customerId: string | null;
  expiresAt: Date;
  mustChangePassword: boolean;
};
export type IssuedSession = { id: string; token: string; expiresAt: Date };

export function createSessionService(deps: { pool: Pool; clock: Clock }) {
  return {
    /** A brand-new session (never a reused one); the token is returned once, only its hash is stored. */
    async issue(
      tx: Queryable,
      kind: AccountKind,
      a: { accountId: string; customerId: string | null; ip: string | null; userAgent: string | null },
    ): Promise<IssuedSession> {
      const now = deps.clock.now();
      const token = newSecret('sess');
      const id = newSessionId();
      const expiresAt = new Date(now.getTime() + SESSION_MAX_MS);
      await sessionsRepo.insertSession(tx, kind, {
        id,
        tokenHash: sha256Hex(token),
        accountId: a.accountId,
        customerId: a.customerId,
        now,
        expiresAt,
        ip: a.ip,
        userAgent: a.userAgent,
      });
      return { id, token, expiresAt };
    },

    /** Checks both limits on every request; an expired or orphaned session is deleted on sight. */
    async resolve(kind: AccountKind, token: string): Promise<ValidSession | null> {
      if (!looksLikeToken(token, 'sess')) return null;
      const row = await sessionsRepo.findSessionByTokenHash(deps.pool, kind, sha256Hex(token));
      if (!row) return null;
      const now = deps.clock.now().getTime();
      const idle = now - row.lastSeenAt.getTime();
      if (!row.accountActive || now >= row.expiresAt.getTime() || idle >= SESSION_IDLE_MS) {
        await sessionsRepo.deleteSession(deps.pool, kind, row.id);
        return null;
      }
      if (idle >= SESSION_TOUCH_MS) {
        await sessionsRepo.touchSession(deps.pool, kind, row.id, new Date(now), new Date(now - SESSION_TOUCH_MS));
      }
      return {
        id: row.id,
        accountId: row.accountId,
        customerId: row.customerId,
        expiresAt: row.expiresAt,
        mustChangePassword: row.mustChangePassword,
      };
    },
  };
}

export type SessionService = ReturnType<typeof createSessionService>;
