import type { Agent as HttpsAgent } from 'node:https';
import {
  FINGERPRINT_COMPONENTS,
  type Clock,
  type KeySet,
  type SignedLicense,
  type SignedStatus,
  type StatusPayload,
  type HeartbeatResponse,
  type UpdateReport,
} from '../protocol';
import { createBackoff, sleepUnlessAborted } from './backoff';
import { createCredentialHolder } from './credential-holder';
import type { CheckName, CheckResult } from './checks/check';
import { createFingerprintCheck } from './checks/fingerprint-check';
import { createGraceCheck } from './checks/grace-check';
import { createLicenseCheck } from './checks/license-check';
import { createStatusCheck } from './checks/status-check';
import { createGate, credentialRejectedDetail, newerThan, TAMPER_CODES, type TerminalState } from './enforcement';
import type { FingerprintSource } from './fingerprint-source';
import { ControlPlaneError, type ControlPlaneClient } from './http-client';
import type { Journal } from './journal';
import { createLicenseFeed } from './license-feed';
import type { AgentLogger } from './logger';
import type { PrefixStore } from './prefix-store';
import { PREFIX_FILES, type ActivationRecord, type AgentSettings } from './settings';
import { createTaskHandlers, type TaskHandler } from './task-handlers';
import { createTaskRunner } from './task-runner';
import { createTaskStore } from './task-store';
import { takeImportedStatus } from './status-import';
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
  let heartbeatIntervalS = deps.heartbeatIntervalS ?? activation.heartbeatIntervalS ?? 60;
  let lastHeartbeatAt: string | null = null;
  let reportedTerminal = false;

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
  let feedOwed = true;
  let feedReading: Promise<void> | null = null;
  function readFeedIfOwed(): void {
    if (!feedOwed || feedReading || stopping.signal.aborted) return;
    feedOwed = false;
    feedReading = feed
      .catchUp(stopping.signal)
      .then(
        () => undefined,
        (err: unknown) => {
          if (stopping.signal.aborted) return;
          // A control plane without the feed: asked again after the next lost contact, not every poll.
          if (err instanceof ControlPlaneError && err.status === 404) {
            logger.warn({ code: err.code }, 'the control plane has no license feed');
            return;
          }
          onControlPlaneError(err, 'license feed');
        },
      )
      .finally(() => {
        feedReading = null;
      });
  }
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
      if (!stopping.signal.aborted) void heartbeat().catch(() => undefined);
    },
  });

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
  function writeRuntime(): void {
    const p = status.payload();
    store.writeJson(PREFIX_FILES.runtime, {
      pid: process.pid,
      running,
      version: AGENT_VERSION,
      agentId: activation.agentId,
      licenseId: activation.licenseId,
      terminal: gate.terminal(),
      inFlightTasks: runner?.inFlight() ?? 0,
      lastStatus: p
        ? {
            version: p.version,
            licenseState: p.licenseState,
            agentStatus: p.agentStatus,
            good: p.good,
            serverTime: p.serverTime,
          }
        : null,
      lastHeartbeatAt,
      updatedAt: clock.now().toISOString(),
    });
  }

  /**
   * A status answer from the long-poll or a heartbeat: verify, keep, seal the grace, re-judge.
   * Returns false when the answer was not accepted (the caller backs off instead of asking again).
   */
  async function receiveStatus(signed: SignedStatus, renewed?: SignedLicense): Promise<boolean> {
    const verdict = status.accept(signed);
    if (!verdict.accepted) {
      if (verdict.reason.startsWith('replayed')) {
        logger.debug({ reason: verdict.reason }, 'ignored an older status answer');
        return false;
      }
      if (verdict.reason.startsWith('implausible')) {
        // Authentic but not believable: not adopted (it would make every later answer look old).
        journal.append('status.implausible', { reason: verdict.reason, version: signed.payload.version }, true);
        logger.warn({ reason: verdict.reason }, 'refused an implausible status answer');
        return false;
      }
      journal.append('status.rejected', { reason: verdict.reason }, true);
      gate.enterTerminal('STATUS_TAMPERED', verdict.reason);
      return false;
    }
    // The answer first, then the record that names it: a crash between the two leaves the newer answer.
    store.writeJson(PREFIX_FILES.status, signed);
    const p = signed.payload;
    const observed = await grace.observe(
      {
        serverTime: new Date(p.serverTime),
        graceDays: p.graceDays,
        extend: p.good,
        status: { version: p.version, serverTime: p.serverTime },
      },
      clock.now(),
    );
    if (observed.tamper) gate.enterTerminal(observed.tamper, 'the offline grace state was tampered with');
    if (renewed && license.replace(renewed)) {
      store.writeJson(PREFIX_FILES.license, renewed);
      journal.append('license.renewed', { version: renewed.document.version, expiresAt: renewed.document.expiresAt });
    }
    if (verdict.changed) {
      journal.append('status.changed', {
        version: p.version,
        licenseState: p.licenseState,
        agentStatus: p.agentStatus,
        good: p.good,
        ...(p.reason ? { reason: p.reason } : {}),
      });
      logger.info(
        { version: p.version, licenseState: p.licenseState, agentStatus: p.agentStatus, good: p.good },
        'status changed',
      );
    }
    await gate.judge(status);
    await leaveTerminalIfOver(p);
    if (!gate.terminal()) await gate.admit();
    writeRuntime();
    // Any successful contact is the moment to report a terminal reason not yet delivered.
    if (gate.terminal() && !reportedTerminal && !heartbeatInFlight) void heartbeat().catch(() => undefined);
    // In contact again: what happened to the license meanwhile goes into the journal.
    readFeedIfOwed();
    return true;
  }

  /**
   * A terminal agent keeps asking for status. It works again, without a person, only when the
   * cause was not permanent, an authentic good answer newer than the one that stopped it has been
   * accepted, and all four checks pass at this moment.
   */
  async function leaveTerminalIfOver(p: StatusPayload): Promise<void> {
    const t = gate.terminal();
    if (!t || t.permanent || !p.good || !newerThan(p, t)) return;
    const failing = (await gate.evaluateAll()).filter((r) => !r.result.ok);
    if (failing.length > 0) {
      logger.info(
        { terminal: t.code, failing: failing.map((r) => (r.result.ok ? '' : r.result.code)) },
        'a newer good status arrived, but a check still fails: staying terminal',
      );
      return;
    }
    const left = gate.leave();
    if (!left) return;
    reportedTerminal = false;
    journal.append(
      'agent.resumed',
      { code: left.code, statusVersion: p.version, licenseState: p.licenseState, agentStatus: p.agentStatus },
      true,
    );
    logger.info({ code: left.code, statusVersion: p.version }, 'the cause is over: accepting tasks again');
    await grace.setTerminal(null, clock.now());
    runner?.resume();
  }

  /** What the agent holds, so the control plane answers with what is newer (status and license document). */
  function heldVersions(since: number | undefined): { since?: number; license?: number } {
    const held = license.version();
    return { ...(since !== undefined ? { since } : {}), ...(held !== null ? { license: held } : {}) };
  }

  function onControlPlaneError(err: unknown, what: string): void {
    if (err instanceof ControlPlaneError && err.credentialRejected) {
      gate.enterTerminal('CREDENTIAL_REJECTED', credentialRejectedDetail(err.code));
      return;
    }
    feedOwed = true;
    logger.warn({ err: err instanceof Error ? { type: err.name, message: err.message } : err }, `${what} failed`);
  }

  // Aborted when the credential rotates: the parked long-poll is asked again at once with the new
  // generation, whose first use supersedes the old one (a clone still holding it is then caught).
  let pollRound = new AbortController();
  async function pollStatus(): Promise<void> {
    const backoff = createBackoff({ random });
    while (!stopping.signal.aborted) {
      const since = status.payload()?.version;
      const started = Date.now();
      const round = (pollRound = new AbortController());
      try {
        const res = await client.status(
          { ...heldVersions(since), wait: settings.statusWaitS },
          AbortSignal.any([stopping.signal, round.signal]),
        );
        if (!(await receiveStatus(res.status, res.license))) {
          // A rejected (forged, replayed) answer keeps `since` where it was, so the server would
          // answer again at once: back off rather than spin against it.
          await sleepUnlessAborted(backoff.next(), stopping.signal);
          continue;
        }
        backoff.reset();
        // A server that answers at once without a change must not turn the long-poll into a busy loop.
        if (!res.changed && Date.now() - started < 1000) await sleepUnlessAborted(1000, stopping.signal);
      } catch (err) {
        if (stopping.signal.aborted) return;
        if (round.signal.aborted) continue;
        onControlPlaneError(err, 'status long-poll');
        await sleepUnlessAborted(backoff.next(), stopping.signal);
      }
    }
  }

  /** A status file imported by `status --import` (air-gapped sites): judged like any status answer. */
  async function adoptImportedStatus(): Promise<void> {
    const imported = takeImportedStatus(store);
    if (imported === null) return;
    const adopted = await receiveStatus(imported);
    journal.append(
      adopted ? 'status.imported' : 'status.import_refused',
      { version: imported.payload?.version ?? null },
      true,
    );
  }

  let heartbeatInFlight = false;
  async function heartbeat(): Promise<void> {
    if (heartbeatInFlight) return;
    heartbeatInFlight = true;
    try {
      await sendHeartbeat();
    } finally {
      heartbeatInFlight = false;
    }
  }

  async function sendHeartbeat(): Promise<void> {
    const now = clock.now();
    const reading = await fingerprint.read(now);
    const t = gate.terminal();
    const held = license.version();
    const accepted = status.payload()?.version;
    const update = deps.updateReport?.();
    const res = await client.heartbeat({
      agentVersion: AGENT_VERSION,
      runtimeHash: runtimeHash(),
      fingerprint: reading.hashes,
      score: reading.score,
      changedComponents: FINGERPRINT_COMPONENTS.filter((c) => reading.changed.includes(c)),
      inFlightTasks: runner?.inFlight() ?? 0,
      ...(held !== null ? { licenseVersion: held } : {}),
      ...(accepted !== undefined ? { statusVersion: accepted } : {}),
      ...(t ? { terminalReason: `${t.code}: ${t.detail}`.slice(0, 200) } : {}),
      ...(update ? { update } : {}),
      credentialGeneration: credential.generation(),
    });
    lastHeartbeatAt = clock.now().toISOString();
    // Written before it is used; then used at once, so the old generation is superseded now.
    if (res.nextCredential && credential.adopt(res.nextCredential)) pollRound.abort();
    if (t && !reportedTerminal) {
      reportedTerminal = true;
      journal.append('agent.terminal_reported', { code: t.code });
    }
    heartbeatIntervalS = res.heartbeatIntervalS;
    if (res.update) deps.onUpdateDirective?.(res.update);
    await receiveStatus(res.status, res.license);
    await runner?.flushOutbox();
  }

  async function heartbeatLoop(): Promise<void> {
    const backoff = createBackoff({ random });
    while (!stopping.signal.aborted) {
      let failed = false;
      await adoptImportedStatus();
      try {
        await heartbeat();
        backoff.reset();
      } catch (err) {
        if (stopping.signal.aborted) return;
        onControlPlaneError(err, 'heartbeat');
        failed = true;
      }
      // The interval the answer just named (not the one held before it), jittered.
      let nextMs = Math.round(heartbeatIntervalS * 1000 * (0.9 + random() * 0.2));
      // Unreachable: try again sooner (1-30 s, jittered), so the next contact comes soon after recovery.
      if (failed) nextMs = Math.min(nextMs, backoff.next());
      // Between heartbeats the gate still runs, so the grace high-water mark and expiry move with time.
      if (!gate.terminal()) await gate.admit();
      writeRuntime();
      await sleepUnlessAborted(nextMs, stopping.signal);
    }
  }

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
      await adoptImportedStatus();
      // One status answer first (at once, wait=0), so a fresh start judges fresh facts; offline,
      // the stored signed status and the sealed grace state decide.
      try {
        const res = await client.status({ ...heldVersions(undefined), wait: 0 }, stopping.signal);
        await receiveStatus(res.status, res.license);
      } catch (err) {
        onControlPlaneError(err, 'first status request');
      }
      const poll = pollStatus();
      const hb = heartbeatLoop();
      runner.start();
      loops = Promise.all([poll, hb]);
    },
    async stop(): Promise<void> {
      if (stopping.signal.aborted) return;
      stopping.abort();
      await runner.stop();
      await loops;
      await feedReading;
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
