/** The on-prem agent's public face. It depends on protocol/ and npm packages only. */
export { main as agentMain, parseArgs, EXIT } from './cli';
export { createAgent } from './agent';
export type { AgentDeps, RunningAgent } from './agent';
export { activateAgent } from './activation';
export { createGate, TAMPER_CODES } from './enforcement';
export type { Gate, TerminalState } from './enforcement';
export { createLicenseCheck } from './checks/license-check';
export { createFingerprintCheck } from './checks/fingerprint-check';
export { createStatusCheck } from './checks/status-check';
export { createGraceCheck, GRACE_FILE, CLOCK_TOLERANCE_MS } from './checks/grace-check';
export type { Check, CheckName, CheckResult } from './checks/check';
export { createSystemFingerprintSource, createStaticFingerprintSource, hashFingerprint } from './fingerprint-source';
export type { FingerprintSource, RawFingerprint } from './fingerprint-source';
export { createControlPlaneClient, createHttpsAgent, ControlPlaneError } from './http-client';
export { createJournal } from './journal';
export { createAgentLogger } from './logger';
export { createPrefixStore } from './prefix-store';
export {
  buildReleaseManifest,
  verifyRuntime,
  runtimeHashOf,
  listRuntimePaths,
  CODE_ROOT,
  DEFAULT_MANIFEST_FILE,
} from './integrity';
export { loadInstallation, checkRuntime, readTrustedKeysFile } from './installation';
export { createTaskHandlers } from './task-handlers';
export { createTaskStore } from './task-store';
export { createBackoff } from './backoff';
export { PREFIX_FILES, agentSettingsSchema, trustedKeysSchema } from './settings';
export type { AgentSettings, ActivationRecord, TrustedKeys } from './settings';
export { AGENT_VERSION } from './version';
