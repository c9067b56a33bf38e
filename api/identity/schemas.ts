import { z } from 'zod';
import { ADMIN_ROLES, idSchema, safeString, SERVICE_SCOPES } from '../../protocol';
import { PASSWORD_MAX_BYTES } from '../../services/identity/passwords';

/** Request and response schemas shared by the admin-auth, portal-auth and admin identity routes. */
export const email = safeString(254)
  .trim()
  .min(3)
  .regex(/^[^\s@]{1,64}@[^\s@]{1,189}$/, 'must be an email address');
/** Free text: tab and line feed are kept, so no password that worked before stops working. */
export const password = safeString(PASSWORD_MAX_BYTES, { multiline: true }).min(1);
export const displayName = safeString(200).trim();

/** `code`: a TOTP code (6 digits) or a recovery code, for an account with a second factor. */
export const secondFactorCode = safeString(40).trim().min(1);
export const loginBody = z.object({ email: safeString(254), password, code: secondFactorCode.optional() }).strict();
export const changePasswordBody = z.object({ currentPassword: password, newPassword: password }).strict();
/** State-changing routes without a payload still take `{}` (JSON is part of the CSRF rule). */
export const emptyBody = z.object({}).strict().nullish();

const isoTime = z.string().max(40);

/** The fields admins and customer users share. */
const accountFields = {
  email: z.string(),
  displayName: z.string(),
  active: z.boolean(),
  locked: z.boolean(),
  lockedUntil: isoTime.nullable(),
  mustChangePassword: z.boolean(),
  createdAt: isoTime,
  deactivatedAt: isoTime.nullable(),
};

export const adminRole = z.enum(ADMIN_ROLES);
export const adminSchema = z.object({
  id: idSchema('adm'),
  ...accountFields,
  role: adminRole,
  totpEnrolled: z.boolean(),
});
/** The signed-in admin: also whether their role requires a second factor. */
export const meAdminSchema = adminSchema.extend({ totpRequired: z.boolean() });

export const customerSchema = z.object({
  id: idSchema('cus'),
  name: z.string(),
  active: z.boolean(),
  createdAt: isoTime,
  deactivatedAt: isoTime.nullable(),
});

export const customerUserSchema = z.object({ id: idSchema('usr'), customerId: idSchema('cus'), ...accountFields });

export const serviceAccountSchema = z.object({
  id: idSchema('svcacct'),
  name: z.string(),
  tokenHint: z.string(),
  scopes: z.array(z.enum(SERVICE_SCOPES)),
  expiresAt: isoTime.nullable(),
  createdBy: z.string(),
  createdAt: isoTime,
  lastUsedAt: isoTime.nullable(),
  revokedAt: isoTime.nullable(),
});

export const sessionInfoSchema = z.object({ expiresAt: isoTime, idleTimeoutSeconds: z.number().int() });
export const passwordChangedSchema = z.object({ otherSessionsEnded: z.number().int() });
export const okSchema = z.object({ ok: z.literal(true) });
