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
  'admin.role_changed',
  'admin.totp_enrolled',
  'admin.totp_reset',
  'admin.recovery_code_used',
  'admin.totp_policy_changed',
  'customer_user.totp_enrolled',
  'customer_user.recovery_code_used',
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
  /** A notice fired by the lifecycle's own timer N days before expiry (nothing changed). */
  'license.expiring_soon',
  /** An Update the API did not sign (made by hand through Temporal, or replayed): nothing changed. */
  'license.update_refused',
  /** plan, features, maxAgents or graceDays changed through the lifecycle (data: before, after). */
  'license.terms_changed',
  // policies (license templates)
  'policy.created',
  'policy.updated',
  'policy.archived',
  /** An explicit "apply to licenses of this policy": data lists each license's outcome. */
  'policy.applied',
  'activation_token.created',
  'activation_token.redeemed',
  'activation_token.reused',
  'activation_token.revoked',
  /** An admin or customer turned an air-gapped agent's request into a signed response (the token was spent). */
  'activation_token.offline_response',
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
  /** A superseded credential generation was presented with the agent's key: two machines share its identity. */
  'agent.clone_detected',
  /** An admin asked the agent to install one published release (POST /v1/admin/agents/:id/update). */
  'agent.update_requested',
  /** An admin set (or cleared, to inherit) one agent's update policy: automatic, manual or a pinned version. */
  'agent.update_policy_set',
  /** An admin set (or cleared) a license's update policy, over its policy version's. */
  'license.update_policy_set',
  /** A signed, agent-bound status file for an air-gapped site (data: version, validForDays, validUntil). */
  'agent.status_file_issued',
  'task.created',
  'task.completed',
  'task.failed',
  'task.cancelled',
  'release.published',
  'release.yanked',
  'release.metadata_refreshed',
  'release.keys_published',
  /** Root N → N+1 (agentina release rotate-root / rotate-targets): new root keys or a new targets key. */
  'release.root_rotated',
  // webhooks
  'webhook_endpoint.created',
  'webhook_endpoint.updated',
  'webhook_endpoint.secret_rotated',
  /** Disabled by the delivery workflow after persistent failure (an admin's disable is `updated`). */
  'webhook_endpoint.auto_disabled',
  'webhook.redelivery_requested',
  // the ledger itself
  'audit.checkpoint_signed',
  /** The checkpoint workflow gave up (its retries ran out): the head is not signed this round. */
  'audit.checkpoint_failed',
  // operations
  /** `agentina restore` loaded a backup archive into this database (the first row after the archive's). */
  'backup.restored',
  /** Reconcile found a lifecycle missing or out of step with its row and restarted it from the row. */
  'license.lifecycle_repaired',
  /** Reconcile found an agent's quarantine workflow missing, or one left for an agent no longer quarantined. */
  'agent.quarantine_repaired',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

const ACTION_SET: ReadonlySet<string> = new Set(AUDIT_ACTIONS);
export function isAuditAction(s: string): s is AuditAction {
  return ACTION_SET.has(s);
}

/**
 * Webhook event types: the audit actions a receiver may subscribe to. One delivery is made per
 * audit row of a subscribed action, so names, ordering (`sequence`) and ids are the ledger's own.
 * Every license and agent action but the refused Updates (nothing changed), token use and reuse,
 * and a failed audit checkpoint.
 */
export type WebhookEvent =
  | Exclude<
      Extract<AuditAction, `license.${string}` | `agent.${string}`>,
      'license.update_refused' | 'agent.release_refused'
    >
  | 'activation_token.redeemed'
  | 'activation_token.reused'
  | 'audit.checkpoint_failed';
const ANNOUNCED_OTHERS: readonly string[] = [
  'activation_token.redeemed',
  'activation_token.reused',
  'audit.checkpoint_failed',
];
export function isWebhookEvent(a: string): a is WebhookEvent {
  return (
    ((a.startsWith('license.') || a.startsWith('agent.')) && !a.endsWith('_refused') && isAuditAction(a)) ||
    ANNOUNCED_OTHERS.includes(a)
  );
}
export const WEBHOOK_EVENTS = AUDIT_ACTIONS.filter(isWebhookEvent) as [WebhookEvent, ...WebhookEvent[]];
