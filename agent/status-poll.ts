import type { AgentParts } from './agent-parts';
import type { SignedLicense, SignedStatus, StatusPayload } from '../protocol';
import { createBackoff, sleepUnlessAborted } from './backoff';
import type { createGraceCheck } from './checks/grace-check';
import { newerThan } from './enforcement';
import type { Heartbeat } from './heartbeat';
import type { AgentLogger } from './logger';
import type { PrefixStore } from './prefix-store';
import { PREFIX_FILES, type AgentSettings } from './settings';
import { takeImportedStatus } from './status-import';

/**
 * Status answers in: the long-poll that waits for the next one, the file `status --import` leaves,
 * and what is done with each answer (from here or from a heartbeat), including leaving a terminal
 * state whose cause is over.
 */
export function createStatusPoll(
  ctx: AgentParts & {
    store: PrefixStore;
    logger: AgentLogger;
    settings: AgentSettings;
    grace: ReturnType<typeof createGraceCheck>;
    /** Bound late: the heartbeat is built after this, from its answers. */
    heartbeat: () => Heartbeat;
  },
) {
  const { store, client, clock, logger, journal, settings, random, stopping } = ctx;
  const { license, status, grace, gate, contact, writeRuntime } = ctx;

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
    const hb = ctx.heartbeat();
    if (gate.terminal() && !hb.terminalReported() && !hb.inFlight()) void hb.send().catch(() => undefined);
    // In contact again: what happened to the license meanwhile goes into the journal.
    contact.readFeedIfOwed();
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
    ctx.heartbeat().forgetTerminalReported();
    journal.append(
      'agent.resumed',
      { code: left.code, statusVersion: p.version, licenseState: p.licenseState, agentStatus: p.agentStatus },
      true,
    );
    logger.info({ code: left.code, statusVersion: p.version }, 'the cause is over: accepting tasks again');
    await grace.setTerminal(null, clock.now());
    ctx.runner()?.resume();
  }

  /** What the agent holds, so the control plane answers with what is newer (status and license document). */
  function heldVersions(since: number | undefined): { since?: number; license?: number } {
    const held = license.version();
    return { ...(since !== undefined ? { since } : {}), ...(held !== null ? { license: held } : {}) };
  }

  // Aborted when the credential rotates: the parked long-poll is asked again at once with the new
  // generation, whose first use supersedes the old one (a clone still holding it is then caught).
  let pollRound = new AbortController();
  async function pollStatus(): Promise<void> {
    const backoff = createBackoff({ random });
    while (!stopping.aborted) {
      const since = status.payload()?.version;
      const started = Date.now();
      const round = (pollRound = new AbortController());
      try {
        const res = await client.status(
          { ...heldVersions(since), wait: settings.statusWaitS },
          AbortSignal.any([stopping, round.signal]),
        );
        if (!(await receiveStatus(res.status, res.license))) {
          // A rejected (forged, replayed) answer keeps `since` where it was, so the server would
          // answer again at once: back off rather than spin against it.
          await sleepUnlessAborted(backoff.next(), stopping);
          continue;
        }
        backoff.reset();
        // A server that answers at once without a change must not turn the long-poll into a busy loop.
        if (!res.changed && Date.now() - started < 1000) await sleepUnlessAborted(1000, stopping);
      } catch (err) {
        if (stopping.aborted) return;
        if (round.signal.aborted) continue;
        contact.onControlPlaneError(err, 'status long-poll');
        await sleepUnlessAborted(backoff.next(), stopping);
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

  return {
    receiveStatus,
    heldVersions,
    pollStatus,
    adoptImportedStatus,
    /** The credential rotated: the parked long-poll round is asked again at once (see above). */
    restartRound: (): void => pollRound.abort(),
  };
}
export type StatusPoll = ReturnType<typeof createStatusPoll>;
