/**
 * The API's answers as the UI reads them: the views and lists of protocol/ under the names the
 * pages use. Nothing is declared here, so the UI cannot drift from what the services return.
 */
export {
  ACTOR_KINDS,
  ADMIN_ROLES,
  AGENT_STATUSES,
  LICENSE_STATES,
  POLICY_KINDS,
  roleGrants,
  SERVICE_SCOPES,
  TASK_KINDS,
  TASK_STATES,
  UPDATE_POLICIES,
  UPDATE_POLICY_MODES,
} from '../../protocol/enums';
export type { AdminRole, Permission } from '../../protocol/enums';
export type {
  AccountView as Account,
  AdminView as Admin,
  ActivationTokenView as ActivationToken,
  AgentView as Agent,
  AuditEventView as AuditEvent,
  AuditVerifyView as AuditVerify,
  CustomerUserView as CustomerUser,
  CustomerView as Customer,
  Features,
  IssuedActivationTokenView as IssuedToken,
  LicenseDetailView as LicenseDetail,
  LicenseSnapshotView as LicenseSnapshot,
  LicenseView as License,
  NamesView as Names,
  OverviewView as Overview,
  AuditPageView as AuditPage,
  Page,
  PolicyApplyView as PolicyApply,
  PolicyView as Policy,
  PolicyTermsView as PolicyTerms,
  PublicKeySetsView as PublicKeySets,
  ReleaseView as Release,
  UpdatePolicyView as UpdatePolicy,
  ServiceAccountView as ServiceAccount,
  SignedLicenseView as SignedLicense,
  TaskView as Task,
} from '../../protocol/views';
