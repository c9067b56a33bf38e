import type { AgentParts } from './agent-parts';
import {
  FINGERPRINT_COMPONENTS,
  type HeartbeatResponse,
  type SignedLicense,
  type SignedStatus,
  type UpdateReport,
} from '../protocol';
import { createBackoff, sleepUnlessAborted } from './backoff';
import type { createFingerprintCheck } from './checks/fingerprint-check';
import type { CredentialHolder } from './credential-holder';
import { AGENT_VERSION } from './version';

/**
 * The heartbeat: what the agent reports (fingerprint, runtime hash, versions held, a terminal
 * reason, the last update check), and what each answer brings back (the next credential, the
 * interval, the update directive, a status answer). Its loop also runs the gate between beats.
 */
export function createHeartbeat(
  ctx: AgentParts & {
    fingerprint: ReturnType<typeof createFingerprintCheck>;
    credential: CredentialHolder;
    runtimeHash: () => string;
    /** The interval until the first answer names one. */
    intervalS: number;
    updateReport?: () => UpdateReport | undefined;
    onUpdateDirective?: (d: NonNullable<HeartbeatResponse['update']>) => void;
    receiveStatus: (signed: SignedStatus, renewed?: SignedLicense) => Promise<boolean>;
    adoptImportedStatus: () => Promise<void>;
    /** The credential rotated: the parked status long-poll asks again with the new one. */
    restartPollRound: () => void;
  },
) {
  const { client, clock, journal, random, stopping, license, fingerprint, status, gate, credential, contact } = ctx;
  let heartbeatIntervalS = ctx.intervalS;
  let lastHeartbeatAt: string | null = null;
  let reportedTerminal = false;

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
    const update = ctx.updateReport?.();
    const res = await client.heartbeat({
      agentVersion: AGENT_VERSION,
      runtimeHash: ctx.runtimeHash(),
      fingerprint: reading.hashes,
      score: reading.score,
      changedComponents: FINGERPRINT_COMPONENTS.filter((c) => reading.changed.includes(c)),
      inFlightTasks: ctx.runner()?.inFlight() ?? 0,
      ...(held !== null ? { licenseVersion: held } : {}),
      ...(accepted !== undefined ? { statusVersion: accepted } : {}),
      ...(t ? { terminalReason: `${t.code}: ${t.detail}`.slice(0, 200) } : {}),
      ...(update ? { update } : {}),
      credentialGeneration: credential.generation(),
    });
    lastHeartbeatAt = clock.now().toISOString();
    // Written before it is used; then used at once, so the old generation is superseded now.
    if (res.nextCredential && credential.adopt(res.nextCredential)) ctx.restartPollRound();
    if (t && !reportedTerminal) {
      reportedTerminal = true;
      journal.append('agent.terminal_reported', { code: t.code });
    }
    heartbeatIntervalS = res.heartbeatIntervalS;
    if (res.update) ctx.onUpdateDirective?.(res.update);
    await ctx.receiveStatus(res.status, res.license);
    await ctx.runner()?.flushOutbox();
  }

  async function heartbeatLoop(): Promise<void> {
    const backoff = createBackoff({ random });
    while (!stopping.aborted) {
      let failed = false;
      await ctx.adoptImportedStatus();
      try {
        await heartbeat();
        backoff.reset();
      } catch (err) {
        if (stopping.aborted) return;
        contact.onControlPlaneError(err, 'heartbeat');
        failed = true;
      }
      // The interval the answer just named (not the one held before it), jittered.
      let nextMs = Math.round(heartbeatIntervalS * 1000 * (0.9 + random() * 0.2));
      // Unreachable: try again sooner (1-30 s, jittered), so the next contact comes soon after recovery.
      if (failed) nextMs = Math.min(nextMs, backoff.next());
      // Between heartbeats the gate still runs, so the grace high-water mark and expiry move with time.
      if (!gate.terminal()) await gate.admit();
      ctx.writeRuntime();
      await sleepUnlessAborted(nextMs, stopping);
    }
  }

  return {
    /** One heartbeat now, unless one is already under way. */
    send: heartbeat,
    loop: heartbeatLoop,
    inFlight: (): boolean => heartbeatInFlight,
    /** Whether the current terminal reason has reached the control plane. */
    terminalReported: (): boolean => reportedTerminal,
    /** The gate reopened: a later terminal state is reported afresh. */
    forgetTerminalReported: (): void => {
      reportedTerminal = false;
    },
    lastHeartbeatAt: (): string | null => lastHeartbeatAt,
  };
}
export type Heartbeat = ReturnType<typeof createHeartbeat>;
