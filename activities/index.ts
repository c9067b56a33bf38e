export { createActivities } from './create-activities';
export type { ActivityDeps, Activities } from './create-activities';
export { createWorker, bundleWorkflows, runWorkerProcess, WORKFLOWS_PATH } from '../worker';
