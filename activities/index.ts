export { createActivities } from './create-activities';
export type { ActivityServices, Activities } from './create-activities';
