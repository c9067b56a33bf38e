import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { Secret, TOTP } from 'otpauth';
import { encodeQR } from 'qr';
import {
  adminsRepo,
  appendAudit,
  customerUsersRepo,
  secondFactorsRepo,
  withTransaction,
  type AccountKind,
  type Tx,
} from '../../db';
import { ADMIN_ROLES, type AdminRole, type Clock } from '../../protocol';
import { AppError } from '../errors';
import { actorOf, type Principal } from '../principal';
import type { Sealer } from '../sealed-values';
import { sha256Hex } from '../secrets';

/** RFC 6238 as every authenticator app reads it: HMAC-SHA1, 6 digits, 30-second steps. */
const TOTP_PERIOD_S = 30;
const TOTP_DIGITS = 6;
/** Codes one step either side of now are accepted (clock drift); replays are refused by step. */
const TOTP_WINDOW = 1;
const ISSUER = 'Agentina';
export const RECOVERY_CODE_COUNT = 10;

/** `xxxxx-xxxxx` from an alphabet without look-alikes: 50 random bits, stored as sha256 only. */
const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
function newRecoveryCode(): string {
  const bytes = randomBytes(10);
  const chars = [...bytes].map((b) => RECOVERY_ALPHABET[b % RECOVERY_ALPHABET.length]!);
  return `${chars.slice(0, 5).join('')}-${chars.slice(5).join('')}`;
}
const normalizeRecoveryCode = (code: string) => code.toLowerCase().replace(/[\s-]/g, '');

const TOTP_CODE = /^\d{6}$/;
const RECOVERY_CODE = /^[a-z0-9]{5}-?[a-z0-9]{5}$/i;

/** What login learns from the second factor: nothing to check, accepted, or refused (missing or wrong). */
export type SecondFactorCheck = 'not_enrolled' | 'accepted' | 'recovery_code_used' | 'missing' | 'wrong';

/** Who enrols their own factor: an admin, or a customer's portal user. */
type AccountPrincipal = Extract<Principal, { kind: 'admin' | 'customer' }>;

/** The audit subject and the actions of each kind of account. */
const ACCOUNT = {
  admin: { subject: 'admin', enrolled: 'admin.totp_enrolled', recoveryUsed: 'admin.recovery_code_used' },
  customer: {
    subject: 'customer_user',
    enrolled: 'customer_user.totp_enrolled',
    recoveryUsed: 'customer_user.recovery_code_used',
  },
} as const;

/**
 * TOTP second factors (RFC 6238, through the otpauth library) and their recovery codes. The secret
 * is sealed under the totp-secrets key, bound to the account; it is shown once, as an otpauth URI
 * and a QR code, at enrolment, and is never logged, audited or answered again. A code is accepted
 * once: the step of the last accepted code is kept, and a code of that step or an earlier one is
 * refused (so a code seen over a shoulder cannot be replayed in its window).
 */
export function createSecondFactorService(deps: { pool: Pool; clock: Clock; sealer: Sealer }) {
  const sealContext = (kind: AccountKind, id: string) => `totp\n${kind}\n${id}`;

  function totpOf(secretBase32: string, label = 'account'): TOTP {
    return new TOTP({
      issuer: ISSUER,
      label,
      algorithm: 'SHA1',
      digits: TOTP_DIGITS,
      period: TOTP_PERIOD_S,
      secret: Secret.fromBase32(secretBase32),
    });
  }

  /** The step of `code` when it is valid now (within the window), else null. */
  function stepOf(secretBase32: string, code: string): number | null {
    if (!TOTP_CODE.test(code)) return null;
    const timestamp = deps.clock.now().getTime();
    const totp = totpOf(secretBase32);
    const delta = totp.validate({ token: code, timestamp, window: TOTP_WINDOW });
    return delta === null ? null : totp.counter({ timestamp }) + delta;
  }

  async function audit(
    tx: Tx,
    by: Principal,
    action: 'admin.totp_enrolled' | 'customer_user.totp_enrolled' | 'admin.totp_reset' | 'admin.totp_policy_changed',
    subject: { kind: string; id: string },
    data?: Record<string, unknown>,
  ) {
    await appendAudit(tx, { actor: actorOf(by), action, subject, ...(data ? { data } : {}) }, deps.clock);
  }

  async function issueRecoveryCodes(tx: Tx, kind: AccountKind, id: string): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    await secondFactorsRepo.replaceRecoveryCodes(
      tx,
      kind,
      id,
      codes.map((c) => sha256Hex(normalizeRecoveryCode(c))),
    );
    return codes;
  }

  return {
    /**
     * Starts (or restarts) enrolment: a new secret, kept sealed and unconfirmed until a first code
     * proves the app holds it. Refused while a confirmed factor exists (an owner resets it first).
     */
    async beginEnrolment(p: AccountPrincipal): Promise<{ otpauthUri: string; secret: string; qrCode: string }> {
      const account =
        p.kind === 'admin'
          ? await adminsRepo.findAdmin(deps.pool, p.id)
          : await customerUsersRepo.findCustomerUser(deps.pool, p.id);
      if (!account) throw new AppError('UNAUTHENTICATED', 'Sign in or present a valid credential.');
      const secret = new Secret({ size: 20 }).base32;
      const stored = await secondFactorsRepo.putPendingFactor(
        deps.pool,
        p.kind,
        p.id,
        deps.sealer.seal(sealContext(p.kind, p.id), secret),
        deps.clock.now(),
      );
      if (!stored)
        throw new AppError(
          'CONFLICT',
          p.kind === 'admin'
            ? 'A second factor is already enrolled; an owner can reset it to enrol anew.'
            : 'A second factor is already enrolled.',
        );
      const otpauthUri = totpOf(secret, account.email).toString();
      return { otpauthUri, secret, qrCode: encodeQR(otpauthUri, 'data-url', { ecc: 'medium' }) };
    },

    /** Confirms enrolment with a first code; answers the ten recovery codes, once. */
    async confirmEnrolment(p: AccountPrincipal, code: string): Promise<{ recoveryCodes: string[] }> {
      return withTransaction(deps.pool, async (tx) => {
        const factor = await secondFactorsRepo.findFactor(tx, p.kind, p.id, { forUpdate: true });
        if (!factor) throw new AppError('CONFLICT', 'Start enrolment first (POST .../me/totp).');
        if (factor.confirmed_at) throw new AppError('CONFLICT', 'A second factor is already enrolled.');
        const step = stepOf(deps.sealer.open(sealContext(p.kind, p.id), factor.sealed_secret), code);
        if (step === null)
          throw new AppError('VALIDATION_FAILED', 'The code is not correct; check the time on your device.', [
            { path: 'body.code', message: 'not correct' },
          ]);
        await secondFactorsRepo.confirmFactor(tx, p.kind, p.id, step, deps.clock.now());
        const recoveryCodes = await issueRecoveryCodes(tx, p.kind, p.id);
        const account = ACCOUNT[p.kind];
        await audit(
          tx,
          p,
          account.enrolled,
          { kind: account.subject, id: p.id },
          { recoveryCodes: RECOVERY_CODE_COUNT },
        );
        return { recoveryCodes };
      });
    },

    /** Removes an admin's factor and recovery codes (a lost device); they enrol again on next sign-in if required. */
    async reset(by: Principal, adminId: string): Promise<{ reset: boolean }> {
      return withTransaction(deps.pool, async (tx) => {
        if (!(await adminsRepo.findAdmin(tx, adminId))) throw new AppError('NOT_FOUND', 'No such admin.');
        const reset = await secondFactorsRepo.deleteFactor(tx, 'admin', adminId);
        if (reset) await audit(tx, by, 'admin.totp_reset', { kind: 'admin', id: adminId });
        return { reset };
      });
    },

    async status(kind: AccountKind, id: string): Promise<{ enrolled: boolean; recoveryCodesLeft: number }> {
      const factor = await secondFactorsRepo.findFactor(deps.pool, kind, id);
      if (!factor?.confirmed_at) return { enrolled: false, recoveryCodesLeft: 0 };
      return {
        enrolled: true,
        recoveryCodesLeft: await secondFactorsRepo.countUnusedRecoveryCodes(deps.pool, kind, id),
      };
    },

    /**
     * Inside the login transaction, under the account's row lock (so two logins cannot both spend
     * one code): checks the code an enrolled account must present, advancing its step or spending
     * its recovery code.
     */
    async checkAtLogin(tx: Tx, kind: AccountKind, id: string, code: string | undefined): Promise<SecondFactorCheck> {
      const factor = await secondFactorsRepo.findFactor(tx, kind, id, { forUpdate: true });
      if (!factor?.confirmed_at) return 'not_enrolled';
      if (code === undefined || code.trim() === '') return 'missing';
      const given = code.trim();
      if (RECOVERY_CODE.test(given)) {
        const spent = await secondFactorsRepo.spendRecoveryCode(
          tx,
          kind,
          id,
          sha256Hex(normalizeRecoveryCode(given)),
          deps.clock.now(),
        );
        if (!spent) return 'wrong';
        await appendAudit(
          tx,
          {
            actor: { kind, id },
            action: ACCOUNT[kind].recoveryUsed,
            subject: { kind: ACCOUNT[kind].subject, id },
            data: { left: await secondFactorsRepo.countUnusedRecoveryCodes(tx, kind, id) },
          },
          deps.clock,
        );
        return 'recovery_code_used';
      }
      const step = stepOf(deps.sealer.open(sealContext(kind, id), factor.sealed_secret), given);
      if (step === null) return 'wrong';
      return (await secondFactorsRepo.advanceStep(tx, kind, id, step)) ? 'accepted' : 'wrong';
    },

    /** Which roles must sign in with a second factor. */
    async policy(): Promise<Record<AdminRole, boolean>> {
      const rows = await adminsRepo.listRolePolicies(deps.pool);
      return Object.fromEntries(
        ADMIN_ROLES.map((r) => [r, rows.find((row) => row.role === r)?.totp_required ?? false]),
      ) as Record<AdminRole, boolean>;
    },

    async setPolicy(by: Principal, required: Record<AdminRole, boolean>): Promise<Record<AdminRole, boolean>> {
      await withTransaction(deps.pool, async (tx) => {
        const now = deps.clock.now();
        for (const role of ADMIN_ROLES) await adminsRepo.setRolePolicy(tx, role, required[role], now);
        await audit(tx, by, 'admin.totp_policy_changed', { kind: 'admin_policy', id: 'totp' }, { required });
      });
      return this.policy();
    },
  };
}

export type SecondFactorService = ReturnType<typeof createSecondFactorService>;
