import type { AdminRow } from '../../db';
import type { CustomerRow } from '../../db/customers-repo';
import type { CustomerUserRow } from '../../db/customer-users-repo';
import type { ServiceAccountRow } from '../../db/service-accounts-repo';
import type { AdminView, CustomerUserView, CustomerView, ServiceAccountView } from '../../protocol/views';

/** Rows of the identity tables as the API shows them: no hash, no secret, dates as ISO strings. */
export const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** What admins and customer users show alike: who they are and whether they may sign in now. */
function accountView(a: AdminRow | CustomerUserRow, now: Date) {
  const locked = a.locked_until !== null && a.locked_until > now;
  return {
    id: a.id,
    email: a.email,
    displayName: a.display_name,
    active: a.active,
    locked,
    lockedUntil: locked ? a.locked_until!.toISOString() : null,
    mustChangePassword: a.must_change_password,
    createdAt: a.created_at.toISOString(),
    deactivatedAt: iso(a.deactivated_at),
  };
}

export function adminView(a: AdminRow, now: Date): AdminView {
  return { ...accountView(a, now), role: a.role, totpEnrolled: a.totp_enrolled ?? false };
}

export function customerView(c: CustomerRow): CustomerView {
  return {
    id: c.id,
    name: c.name,
    active: c.active,
    createdAt: c.created_at.toISOString(),
    deactivatedAt: iso(c.deactivated_at),
  };
}

export function customerUserView(u: CustomerUserRow, now: Date): CustomerUserView {
  const { id, ...rest } = accountView(u, now);
  return { id, customerId: u.customer_id, ...rest };
}

export function serviceAccountView(s: ServiceAccountRow): ServiceAccountView {
  return {
    id: s.id,
    name: s.name,
    tokenHint: s.token_hint,
    scopes: s.scopes,
    expiresAt: iso(s.expires_at),
    createdBy: s.created_by,
    createdAt: s.created_at.toISOString(),
    lastUsedAt: iso(s.last_used_at),
    revokedAt: iso(s.revoked_at),
  };
}
