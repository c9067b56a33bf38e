import type { Clock } from '../protocol';
import type { createStatusCheck } from './checks/status-check';
import type { Gate } from './enforcement';
import type { PrefixStore } from './prefix-store';
import { PREFIX_FILES, type ActivationRecord } from './settings';
import { AGENT_VERSION } from './version';

/**
 * The runtime file under the prefix (`PREFIX_FILES.runtime`): what the running agent is doing now
 * (running, terminal, tasks in flight, the last status answer and heartbeat), read by the `status`
 * command and the uninstaller. Rewritten whole each time.
 */
export function createRuntimeWriter(ctx: {
  store: PrefixStore;
  clock: Clock;
  activation: ActivationRecord;
  status: ReturnType<typeof createStatusCheck>;
  gate: Gate;
  running: () => boolean;
  inFlightTasks: () => number;
  lastHeartbeatAt: () => string | null;
}): () => void {
  const { store, clock, activation, status, gate } = ctx;
  return function writeRuntime(): void {
    const p = status.payload();
    store.writeJson(PREFIX_FILES.runtime, {
      pid: process.pid,
      running: ctx.running(),
      version: AGENT_VERSION,
      agentId: activation.agentId,
      licenseId: activation.licenseId,
      terminal: gate.terminal(),
      inFlightTasks: ctx.inFlightTasks(),
      lastStatus: p
        ? {
            version: p.version,
            licenseState: p.licenseState,
            agentStatus: p.agentStatus,
            good: p.good,
            serverTime: p.serverTime,
          }
        : null,
      lastHeartbeatAt: ctx.lastHeartbeatAt(),
      updatedAt: clock.now().toISOString(),
    });
  };
}
