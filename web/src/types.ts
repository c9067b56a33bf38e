/**
 * The API's answers as the UI reads them: the views and lists of protocol/ under the names the
 * pages use. Nothing is declared here, so the UI cannot drift from what the services return.
 */
export { ACTOR_KINDS, AGENT_STATUSES, LICENSE_STATES, TASK_KINDS, TASK_STATES } from '../../protocol/enums';
export type {
  AccountView as Account,
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
  Page,
  PublicKeySetsView as PublicKeySets,
  ReleaseView as Release,
  ServiceAccountView as ServiceAccount,
  SignedLicenseView as SignedLicense,
  TaskView as Task,
} from '../../protocol/views';
