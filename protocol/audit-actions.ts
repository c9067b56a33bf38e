/**
 * The fixed list of audit actions (`resource.action`). The fields of an audit row are a contract:
 * add names here (grouped by resource), never rename or remove one that has been written.
 */
export const AUDIT_ACTIONS = [
  // identity
  'admin.created',
  'admin.deactivated',
  'admin.reactivated',
  'admin.unlocked',
  'admin.password_changed',
  'customer.created',
  'customer.deactivated',
  'customer_user.created',
  'customer_user.deactivated',
  'customer_user.reactivated',
  'customer_user.unlocked',
  'customer_user.password_changed',
  'service_account.created',
  'service_account.revoked',
  'session.created',
  'session.deleted',
  'login.failed',
  'login.refused_locked',
  'account.locked',
  'account.unlocked',
  'request.csrf_refused',
  // licenses
  'license.created',
  'license.renewed',
  'license.trial_converted',
  'license.suspended',
  'license.resumed',
  'license.revoked',
  'license.grace_started',
  'license.expired',
  /** An Update the API did not sign (made by hand through Temporal, or replayed): nothing changed. */
  'license.update_refused',
  'activation_token.created',
  'activation_token.redeemed',
  'activation_token.reused',
  'activation_token.revoked',
  // agents and tasks
  'agent.activated',
  'agent.quarantined',
  'agent.released',
  /** A release Update the API did not sign (made by hand through Temporal, or replayed): nothing changed. */
  'agent.release_refused',
  'agent.offline',
  'agent.online',
  'agent.deregistered',
  /** Deregistered by its seat-reclaim timer: offline for longer than its license's reclaim window. */
  'agent.reclaimed',
  'agent.fingerprint_mismatch',
  'agent.integrity_mismatch',
  'task.created',
  'task.completed',
  'task.failed',
  'task.cancelled',
  'release.published',
  'release.yanked',
  // the ledger itself
  'audit.checkpoint_signed',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

const ACTION_SET: ReadonlySet<string> = new Set(AUDIT_ACTIONS);
export function isAuditAction(s: string): s is AuditAction {
  return ACTION_SET.has(s);
}
