import type { Pool } from 'pg';
import { appendAudit, serviceAccountsRepo, sessionsRepo, withTransaction, type Queryable } from '../../db';
import type { AccountKind } from '../../db/login-accounts-repo';
import { newSecret, type AdminRole, type Clock } from '../../protocol';
import { actorOf, type Principal } from '../principal';
import { hashesEqual, sha256Hex } from '../secrets';
import { looksLikeToken, newSessionId } from './tokens';

/** Sliding idle timeout, hard ceiling from creation, and the last_seen write throttle. */
export const SESSION_IDLE_MS = 8 * 3600_000;
export const SESSION_MAX_MS = 30 * 24 * 3600_000;
export const SESSION_TOUCH_MS = 60_000;
/** The last_used write throttle of service tokens. */
export const SERVICE_TOKEN_TOUCH_MS = 60_000;

export type ValidSession = {
  id: string;
  accountId: string;
  customerId: string | null;
  expiresAt: Date;
  mustChangePassword: boolean;
  /** Admins only: their role, and whether their role requires a second factor they have not enrolled. */
  role: AdminRole | null;
  mustEnrolTotp: boolean;
};
export type IssuedSession = { id: string; token: string; expiresAt: Date };

export type CsrfRefusalRecord = {
  reason: string;
  method: string;
  route: string | null;
  origin: string | null;
  ip: string;
};

/** Sessions of admins and customer users, service tokens, and the refusals made on their behalf. */
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
        role: row.role,
        mustEnrolTotp: row.mustEnrolTotp,
      };
    },

    /** A service token (`svc_…`) → its service account and scopes, or null when unknown, revoked or expired. */
    async resolveServiceToken(token: string): Promise<Extract<Principal, { kind: 'service' }> | null> {
      if (!looksLikeToken(token, 'svc')) return null;
      const hash = sha256Hex(token);
      const row = await serviceAccountsRepo.findServiceAccountByTokenHash(deps.pool, hash);
      if (!row || !hashesEqual(row.token_hash, hash) || row.revoked_at) return null;
      const now = deps.clock.now();
      if (row.expires_at && row.expires_at <= now) return null;
      await serviceAccountsRepo.touchServiceAccount(
        deps.pool,
        row.id,
        now,
        new Date(now.getTime() - SERVICE_TOKEN_TOUCH_MS),
      );
      return { kind: 'service', id: row.id, scopes: row.scopes };
    },

    /** Audits a cookie-authenticated request refused as cross-site (`request.csrf_refused`). */
    async recordCsrfRefusal(principal: Principal & { sessionId: string }, refusal: CsrfRefusalRecord): Promise<void> {
      await withTransaction(deps.pool, (tx) =>
        appendAudit(
          tx,
          {
            actor: actorOf(principal),
            action: 'request.csrf_refused',
            subject: { kind: 'session', id: principal.sessionId },
            data: refusal,
          },
          deps.clock,
        ),
      );
    },

    /** Deletes every session past its hard limit or idle too long (the purge schedule). */
    async purgeExpired(now: Date): Promise<{ admin: number; customer: number }> {
      return sessionsRepo.purgeExpiredSessions(deps.pool, now, SESSION_IDLE_MS);
    },
  };
}

export type SessionService = ReturnType<typeof createSessionService>;
