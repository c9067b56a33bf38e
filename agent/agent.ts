import type { Agent as HttpsAgent } from 'node:https';
import type {
  Clock,
  KeySet,
  SignedLicense,
  SignedStatus,
  StatusPayload,
  HeartbeatResponse,
  UpdateReport,
} from '../protocol';
import type { CheckName, CheckResult } from './checks/check';
import { createFingerprintCheck } from './checks/fingerprint-check';
import { createGraceCheck } from './checks/grace-check';
import { createLicenseCheck } from './checks/license-check';
import { createStatusCheck } from './checks/status-check';
import { createCredentialHolder } from './credential-holder';
import { createGate, TAMPER_CODES, type TerminalState } from './enforcement';
import type { FingerprintSource } from './fingerprint-source';
import { createHeartbeat } from './heartbeat';
import type { ControlPlaneClient } from './http-client';
import type { Journal } from './journal';
import { createLicenseFeed } from './license-feed';
import type { AgentLogger } from './logger';
import { createLostContact } from './lost-contact';
import type { PrefixStore } from './prefix-store';
import { createRuntimeWriter } from './runtime-file';
import { PREFIX_FILES, type ActivationRecord, type AgentSettings } from './settings';
import { createStatusPoll } from './status-poll';
import { createTaskHandlers, type TaskHandler } from './task-handlers';
import { createTaskRunner } from './task-runner';
import { createTaskStore } from './task-store';
import { AGENT_VERSION } from './version';

const DAY_MS = 86_400_000;
const MIN_STATUS_AGE_MS = 120_000;

export type AgentDeps = {
  store: PrefixStore;
  client: ControlPlaneClient;
  httpsAgent: HttpsAgent;
  fingerprintSource: FingerprintSource;
  clock: Clock;
  logger: AgentLogger;
  journal: Journal;
  settings: AgentSettings;
  licenseKeys: KeySet;
  activation: ActivationRecord;
  /** The credential the client starts with; each heartbeat answer brings the next generation. */
  credential: string;
  /** The state directory's seal key (agent/seal-key.ts). */
  sealKey: Buffer;
  /** The runtime hash each heartbeat reports: computed afresh per call (the runtime hasher), or fixed (tests). */
  runtimeHash: string | (() => string);
  /** The last update check, sent with each heartbeat (absent when the agent does not update itself). */
  updateReport?: () => UpdateReport | undefined;
  /** The heartbeat answer's update policy and wanted release (for the updater). */
  onUpdateDirective?: (d: NonNullable<HeartbeatResponse['update']>) => void;
  handlers?: ReadonlyMap<string, TaskHandler>;
  random?: () => number;
  heartbeatIntervalS?: number;
};

/**
 * The running agent: four independent checks behind one gate, the status long-poll, the
 * heartbeat and the task runner. Everything it needs comes in through `deps`.
 */
export function createAgent(deps: AgentDeps) {
  const { store, client, clock, logger, journal, settings, activation } = deps;
  const random = deps.random ?? Math.random;
  const runtimeHash = typeof deps.runtimeHash === 'function' ? deps.runtimeHash : () => deps.runtimeHash as string;
  const stopping = new AbortController();

  const license = createLicenseCheck({
    keys: deps.licenseKeys,
    agentId: activation.agentId,
    licenseId: activation.licenseId,
    salt: activation.salt,
    recorded: activation.components,
    license: store.readJson(PREFIX_FILES.license) as SignedLicense | null,
  });
  const fingerprint = createFingerprintCheck({
    source: deps.fingerprintSource,
    salt: activation.salt,
    recorded: activation.components,
    threshold: settings.fingerprintThreshold,
    ...(settings.fingerprintWeights ? { weights: settings.fingerprintWeights } : {}),
  });
  const status = createStatusCheck({
    keys: deps.licenseKeys,
    agentId: activation.agentId,
    licenseId: activation.licenseId,
    maxAgeMs: (p: StatusPayload) =>
      settings.maxStatusAgeS !== undefined
        ? settings.maxStatusAgeS * 1000
        : Math.max(p.graceDays * DAY_MS, MIN_STATUS_AGE_MS),
    initial: store.readJson(PREFIX_FILES.status) as SignedStatus | null,
    licenseVersion: () => license.version(),
  });
  const grace = createGraceCheck({
    store,
    sealKey: deps.sealKey,
    currentHashes: async (now) => (await fingerprint.current(now)).hashes,
  });

  const tasks = createTaskStore(store);
  const credential = createCredentialHolder({
    store,
    agentId: activation.agentId,
    credential: deps.credential,
    use: (next) => client.useCredential(next),
    logger,
  });

  // The journal's record of bad news missed while out of contact; owed at start and after every lost contact.
  const feed = createLicenseFeed({
    store,
    read: (q, signal) => client.revocations(q, signal),
    keys: deps.licenseKeys,
    licenseId: activation.licenseId,
    journal,
    logger,
  });

  let runner: ReturnType<typeof createTaskRunner> | null = null;

  const gate = createGate({
    checks: [license, fingerprint, status, grace],
    clock,
    statusMark: () => {
      const p = status.payload();
      return p ? { version: p.version, serverTime: p.serverTime } : null;
    },
    onTerminal(t: TerminalState) {
      journal.append(
        'agent.terminal',
        {
          code: t.code,
          check: t.check,
          detail: t.detail,
          failures: t.failures,
          tamper: t.failures.some((c) => TAMPER_CODES.has(c)),
          permanent: t.permanent,
          statusVersion: t.statusVersion,
        },
        true,
      );
      // Kept in the agent's record, so a restart (offline too) comes back terminal.
      void grace
        .setTerminal({ ...t, detail: t.detail.slice(0, 500), failures: t.failures.slice(0, 10) }, clock.now())
        .catch((err: unknown) => logger.error({ err }, 'could not record the terminal state'));
      logger.error(
        { code: t.code, check: t.check, detail: t.detail },
        'agent is terminal: no new tasks will be accepted',
      );
      runner?.onTerminal();
      writeRuntime();
      // Report at once rather than at the next heartbeat tick.
      if (!stopping.signal.aborted) void beat.send().catch(() => undefined);
    },
  });
  const contact = createLostContact({ feed, gate, stopping: stopping.signal, logger });

  runner = createTaskRunner({
    client,
    gate,
    entitles: (kind) => license.entitles(kind),
    tasks,
    handlers: deps.handlers ?? createTaskHandlers(),
    journal,
    logger,
    clock,
    httpGetAllow: settings.httpGetAllow,
    httpsAgent: deps.httpsAgent,
    taskWaitS: settings.taskWaitS,
    drainTimeoutMs: settings.drainTimeoutS * 1000,
  });

  let running = false;
  const writeRuntime = createRuntimeWriter({
    store,
    clock,
    activation,
    status,
    gate,
    running: () => running,
    inFlightTasks: () => runner?.inFlight() ?? 0,
    lastHeartbeatAt: () => beat.lastHeartbeatAt(),
  });

  // The status poll and the heartbeat use each other (a status answer can owe a heartbeat, a heartbeat
  // answer carries a status): the poll reaches the heartbeat through a getter, bound once both exist.
  const poll = createStatusPoll({
    store,
    client,
    clock,
    logger,
    journal,
    settings,
    random,
    stopping: stopping.signal,
    license,
    status,
    grace,
    gate,
    contact,
    writeRuntime,
    heartbeat: () => beat,
    runner: () => runner,
  });
  const beat = createHeartbeat({
    client,
    clock,
    journal,
    random,
    stopping: stopping.signal,
    license,
    fingerprint,
    status,
    gate,
    credential,
    contact,
    runtimeHash,
    intervalS: deps.heartbeatIntervalS ?? activation.heartbeatIntervalS ?? 60,
    updateReport: deps.updateReport,
    onUpdateDirective: deps.onUpdateDirective,
    receiveStatus: poll.receiveStatus,
    adoptImportedStatus: poll.adoptImportedStatus,
    restartPollRound: poll.restartRound,
    writeRuntime,
    runner: () => runner,
  });

  let loops: Promise<unknown> | null = null;
  return {
    gate,
    checks: { license, fingerprint, status, grace },
    tasks,
    async start(): Promise<void> {
      running = true;
      journal.append('agent.started', { pid: process.pid, version: AGENT_VERSION, runtimeHash: runtimeHash() });
      // What the record keeps across restarts: the newest status accepted, and a terminal state.
      const kept = await grace.snapshot(clock.now());
      if (kept.record) {
        status.setFloor({ version: kept.record.statusVersion, serverTime: kept.record.statusServerTime });
        const t = kept.record.terminal;
        if (t) {
          gate.restore({ ...t, check: t.check as TerminalState['check'] });
          journal.append('agent.terminal_restored', { code: t.code, permanent: t.permanent, at: t.at }, true);
          logger.error(
            { code: t.code, permanent: t.permanent },
            'the agent was terminal when it stopped: still terminal',
          );
        }
      }
      writeRuntime();
      await poll.adoptImportedStatus();
      // One status answer first (at once, wait=0), so a fresh start judges fresh facts; offline,
      // the stored signed status and the sealed grace state decide.
      try {
        const res = await client.status({ ...poll.heldVersions(undefined), wait: 0 }, stopping.signal);
        await poll.receiveStatus(res.status, res.license);
      } catch (err) {
        contact.onControlPlaneError(err, 'first status request');
      }
      const polling = poll.pollStatus();
      const hb = beat.loop();
      runner.start();
      loops = Promise.all([polling, hb]);
    },
    async stop(): Promise<void> {
      if (stopping.signal.aborted) return;
      stopping.abort();
      await runner.stop();
      await loops;
      await contact.feedReading();
      running = false;
      journal.append('agent.stopped', { pid: process.pid });
      writeRuntime();
      client.close();
      deps.httpsAgent.destroy();
    },
    async evaluate(): Promise<Array<{ name: CheckName; result: CheckResult }>> {
      return gate.evaluateAll();
    },
    inFlight: () => runner.inFlight(),
  };
}
export type RunningAgent = ReturnType<typeof createAgent>;
