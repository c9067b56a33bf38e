import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never;

/** Bundles a test-only workflows module (the production bundle is built once by the global setup). */
export function bundleTestWorkflows(modulePath: string): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: modulePath, logger: silent });
}
