import type { Pool } from 'pg';
import { readAgentStatuses, readFingerprintCommitments, type AgentStatusRow } from '../../db/agents-repo';
import { getLicense, type LicenseRow } from '../../db/licenses-repo';
import {
  effectiveGraceDays,
  graceEndMs,
  termEndMs,
  type Clock,
  type LicenseState,
  type SignedStatus,
  type Signer,
  type StatusPayload,
  type StatusResponse,
  signedStatusSchema,
  statusPayloadSchema,
  signLicense,
  type AgentStatus,
  type SignedLicense,
} from '../../protocol';
import { licenseDocumentFor } from '../licenses/license-views';
import { licenseStandingAt, type DatedLicenseRow } from '../licenses/license-standing';
import { createBatchLoader } from './batch-loader';
import { createBatchSigner } from './status-batches';
import type { StatusListener } from './status-listener';

/** While the LISTEN connection is down, parked requests re-read this often instead. */
export const STATUS_FALLBACK_POLL_MS = 1000;
/**
 * How long one signed answer may be served again for the same agent and the same version. The
 * version and state are read fresh for every request; only the signature (and so serverTime) is
 * reused, never across a change.
 */
export const SIGNED_STATUS_REUSE_MS = 1000;
const SIGNED_CACHE_MAX = 200_000;
/**
 * A status row read from PostgreSQL is reused while no notice for the agent or its license has
 * arrived since the read began (every status change NOTIFYs) and the LISTEN connection has stayed
 * up. Past this age it is re-read (in the background, serving the entry meanwhile): a bound should
 * a writer ever forget to NOTIFY.
 */
export const STATUS_ROW_REUSE_MS = 30_000;

export type StatusServiceDeps = { pool: Pool; signer: Signer; clock: Clock; listener?: StatusListener };
export type StatusSubject = { agentId: string; licenseId: string };
export type AwaitStatusInput = StatusSubject & {
  since?: number | undefined;
  waitS?: number | undefined;
  /** The license document version the agent holds; a newer re-issued one is attached. */
  heldLicense?: number | undefined;
  /** The agent verifies batch signatures: its answer may share one signature with others'. */
  batch?: boolean | undefined;
  signal?: AbortSignal;
};

type SignedEntry = { key: string; at: number; answer: SignedStatus; json: string; version: number };
type LicenseEntry = { version: number; answer: SignedLicense; json: string };

/** A status answer ready to send: `json` is the StatusResponse, already serialized. */
export type StatusAnswer = { json: string; response: StatusResponse };

const AGENT_GOOD: ReadonlySet<string> = new Set<AgentStatus>(['active', 'offline']);

/** licenses.version + agents.status_version: both only rise, so the sum rises with any change. */
export function statusVersion(row: Pick<AgentStatusRow, 'license_version' | 'status_version'>): number {
  return row.license_version + row.status_version;
}

export function statusPayloadOf(row: AgentStatusRow, now: Date): StatusPayload {
  // The license's standing now, from its dates as well as its state: a lifecycle that has not
  // caught up (worker stopped) must not keep an expired license good.
  const license = licenseStandingAt(row.license_state, row, now);
  const licenseGood = license.good;
  const agentGood = AGENT_GOOD.has(row.agent_status);
  const payload: StatusPayload = {
    kind: 'agentina.status/v1',
    licenseId: row.license_id,
    agentId: row.agent_id,
    licenseState: license.state as LicenseState,
    agentStatus: row.agent_status as AgentStatus,
    good: licenseGood && agentGood,
    version: statusVersion(row),
    serverTime: now.toISOString(),
    // The term's end and its grace, as the signed license document states them.
    expiresAt: (row.trial_ends_at ?? row.expires_at).toISOString(),
    graceDays: effectiveGraceDays({
      trialEndsAt: row.trial_ends_at,
      graceDays: row.grace_days,
      trialEndState: row.trial_end_state,
    }),
  };
  if (!licenseGood)
    payload.reason = (
      license.overdue ? `license ${license.state}` : (row.license_reason ?? `license ${license.state}`)
    ).slice(0, 500);
  else if (!agentGood) payload.reason = (row.agent_reason ?? `agent ${row.agent_status}`).slice(0, 500);
  return payload;
}

/**
 * Milliseconds until the license's dates next change its standing (its term ends, then its grace),
 * plus a little so the answer is signed past the boundary; Infinity when they no longer will.
 */
export function msUntilDatesChange(row: DatedLicenseRow, now: Date): number {
  const terms = {
    expiresAt: row.expires_at,
    trialEndsAt: row.trial_ends_at,
    graceDays: row.grace_days,
    trialEndState: row.trial_end_state,
  };
  const t = now.getTime();
  const next = [termEndMs(terms), graceEndMs(terms)].find((at) => at > t);
  return next === undefined ? Infinity : next - t + DATE_WAKE_SLACK_MS;
}
const DATE_WAKE_SLACK_MS = 50;

/** A one-shot flag a parked request waits on; a wake before the wait is not lost. */
function createWakeable() {
  let woken = false;
  let release: (() => void) | undefined;
  return {
    wake() {
      woken = true;
      release?.();
    },
    wait(ms: number): Promise<void> {
      if (woken) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          release = undefined;
          woken = false;
          resolve();
        }
        release = done;
      });
    },
  };
}

/**
 * Reads, signs and waits for an agent's status. Without a listener it still answers correctly,
 * parking by polling.
 */
export function createStatusService(deps: StatusServiceDeps) {
  const load = createBatchLoader<string, AgentStatusRow>(async (ids) => {
    const rows = await readAgentStatuses(deps.pool, ids);
    return new Map(rows.map((r) => [r.agent_id, r]));
  });
  const rows = new Map<string, { row: AgentStatusRow; mark: number; at: number; refreshing: boolean }>();
  const signed = new Map<string, SignedEntry>();
  const batchSigned = new Map<string, SignedEntry>();
  const batches = createBatchSigner(deps.signer);
  const documents = new Map<string, LicenseEntry>();
  // A license change wakes all of its parked agents at once: the license row is read once per
  // license version (each version's row is what every agent's document is made from), and the
  // agents' fingerprint commitments (fixed at activation) in batches.
  const commitments = createBatchLoader<string, string>((ids) => readFingerprintCommitments(deps.pool, ids));
  const licenseReads = new Map<string, { version: number; read: Promise<LicenseRow | null> }>();
  function licenseAtVersion(licenseId: string, version: number): Promise<LicenseRow | null> {
    const hit = licenseReads.get(licenseId);
    if (hit && hit.version === version) return hit.read;
    const read = getLicense(deps.pool, licenseId);
    if (licenseReads.size >= SIGNED_CACHE_MAX) licenseReads.clear();
    licenseReads.set(licenseId, { version, read });
    read.catch(() => licenseReads.delete(licenseId));
    return read;
  }
  let closing = false;

  /**
   * The license document re-issued for this agent (bound to its id and activation fingerprint),
   * when the license's version is above the one the agent holds. One signature per agent and
   * license version: a renewal costs each agent one, however often it asks; the reads are shared.
   */
  async function reissuedEntry(row: AgentStatusRow, held: number | undefined): Promise<LicenseEntry | undefined> {
    if (held === undefined || row.license_version <= held) return undefined;
    const hit = documents.get(row.agent_id);
    if (hit && hit.version >= row.license_version) return hit;
    const [license, commitment] = await Promise.all([
      licenseAtVersion(row.license_id, row.license_version),
      commitments(row.agent_id),
    ]);
    if (!license || !commitment || license.version <= held) return undefined;
    const answer = signLicense(
      deps.signer,
      licenseDocumentFor(license, deps.clock.now(), { agentId: row.agent_id, fingerprintCommitment: commitment }),
    );
    const entry: LicenseEntry = { version: license.version, answer, json: JSON.stringify(answer) };
    if (documents.size >= SIGNED_CACHE_MAX) documents.clear();
    documents.set(row.agent_id, entry);
    return entry;
  }

  function sign(row: AgentStatusRow): SignedStatus {
    return signedEntry(row).answer;
  }

  /** What an answer depends on besides its time: an answer with the same key says the same. */
  function answerKey(row: AgentStatusRow, now: Date): string {
    const standing = licenseStandingAt(row.license_state, row, now).state;
    return `${statusVersion(row)}|${row.license_state}|${standing}|${row.agent_status}|${row.license_reason ?? ''}|${row.agent_reason ?? ''}|${row.expires_at.getTime()}|${row.trial_ends_at?.getTime() ?? ''}|${row.grace_days}|${row.trial_end_state}`;
  }

  /** A cached answer for `agentId` that may be served again: same key, under a second old. */
  function reusable(cache: Map<string, SignedEntry>, agentId: string, key: string, now: Date): SignedEntry | undefined {
    const hit = cache.get(agentId);
    const age = hit ? now.getTime() - hit.at : Infinity;
    return hit && hit.key === key && age >= 0 && age < SIGNED_STATUS_REUSE_MS ? hit : undefined;
  }

  function remember(cache: Map<string, SignedEntry>, agentId: string, entry: SignedEntry): SignedEntry {
    if (cache.size >= SIGNED_CACHE_MAX) cache.clear();
    cache.set(agentId, entry);
    return entry;
  }

  /** The entry for a signed payload: checked against the wire schema once, serialized once. */
  function entryOf(key: string, now: Date, payload: StatusPayload, signature: SignedStatus['signature']): SignedEntry {
    const answer = signedStatusSchema.parse({ payload, signature });
    return { key, at: now.getTime(), answer, json: JSON.stringify(answer), version: payload.version };
  }

  /**
   * The signed answer for this row, and its JSON: checked against the wire schema once when it is
   * made, so serving it again costs neither a signature nor a serialization.
   */
  function signedEntry(row: AgentStatusRow): SignedEntry {
    const now = deps.clock.now();
    const key = answerKey(row, now);
    const hit = reusable(signed, row.agent_id, key, now);
    if (hit) return hit;
    const payload = statusPayloadOf(row, now);
    return remember(signed, row.agent_id, entryOf(key, now, payload, deps.signer.sign(payload)));
  }

  /** As signedEntry, the signature shared with every answer made in the same turn (status-batches.ts). */
  async function batchedEntry(row: AgentStatusRow): Promise<SignedEntry> {
    const now = deps.clock.now();
    const key = answerKey(row, now);
    const hit = reusable(batchSigned, row.agent_id, key, now);
    if (hit) return hit;
    // The payload is checked against the wire schema as in entryOf; the signature is made by
    // signBatch, whose output the schema is tested to take (test/unit/batch-signature.test.ts):
    // checking its path again for every one of 10,000 answers cost more than the batch's hashing.
    const payload = statusPayloadSchema.parse(statusPayloadOf(row, now));
    const answer: SignedStatus = { payload, signature: await batches.sign(payload) };
    return remember(batchSigned, row.agent_id, {
      key,
      at: now.getTime(),
      answer,
      json: JSON.stringify(answer),
      version: payload.version,
    });
  }

  async function readRow(agentId: string): Promise<AgentStatusRow | undefined> {
    const listener = deps.listener;
    if (!listener) return load(agentId);
    const hit = rows.get(agentId);
    if (hit && !listener.changedSince([agentId, hit.row.license_id], hit.mark)) {
      // Past its age limit an entry is still served once more while it is re-read in the background.
      if (performance.now() - hit.at >= STATUS_ROW_REUSE_MS && !hit.refreshing) {
        hit.refreshing = true;
        fetchRow(agentId).catch(() => rows.delete(agentId));
      }
      return hit.row;
    }
    return fetchRow(agentId);
  }

  /** Reads from PostgreSQL and keeps the row only if no notice for it arrived meanwhile. */
  async function fetchRow(agentId: string): Promise<AgentStatusRow | undefined> {
    const listener = deps.listener!;
    const mark = listener.mark();
    const at = performance.now();
    const row = await load(agentId);
    if (row && !listener.changedSince([agentId, row.license_id], mark)) {
      if (rows.size >= SIGNED_CACHE_MAX) rows.clear();
      rows.set(agentId, { row, mark, at, refreshing: false });
    } else {
      rows.delete(agentId);
    }
    return row;
  }

  return {
    /** The agent's current signed status, or undefined when there is no such agent. */
    async currentStatus(agentId: string): Promise<SignedStatus | undefined> {
      const row = await readRow(agentId);
      return row && sign(row);
    },

    /** The re-issued license document when it is newer than `held` (see reissuedEntry). */
    async reissuedLicense(agentId: string, held: number | undefined): Promise<SignedLicense | undefined> {
      if (held === undefined) return undefined;
      const row = await readRow(agentId);
      return row && (await reissuedEntry(row, held))?.answer;
    },

    /** As currentStatus, read from PostgreSQL itself: for answers right after this process wrote. */
    async freshStatus(agentId: string): Promise<SignedStatus | undefined> {
      const row = await load(agentId);
      return row && sign(row);
    },

    /**
     * Answers at once when the status version differs from `since` (or `since`/`wait` is absent);
     * otherwise parks until a notice concerning the agent or its license, or until `waitS` passes.
     * Returns undefined when the agent no longer exists.
     */
    async awaitStatus(input: AwaitStatusInput): Promise<StatusAnswer | undefined> {
      const waitMs = (input.waitS ?? 0) * 1000;
      const deadline = performance.now() + waitMs;
      const wakeable = createWakeable();
      // Watch before the first read, so a change committed between the read and parking still wakes us.
      const unwatch =
        input.since !== undefined && waitMs > 0
          ? deps.listener?.watch({ licenseId: input.licenseId, agentId: input.agentId, wake: () => wakeable.wake() })
          : undefined;
      const onAbort = () => wakeable.wake();
      input.signal?.addEventListener('abort', onAbort);
      try {
        let row = await readRow(input.agentId);
        if (!row) return undefined;
        // A license's dates end it even when no notice comes (its lifecycle may be behind): a
        // parked request also wakes when the dates change its standing, and answers then.
        const standingAt = (r: AgentStatusRow) => licenseStandingAt(r.license_state, r, deps.clock.now()).state;
        const standing = standingAt(row);
        let datesMoved = false;
        while (statusVersion(row) === input.since && !closing && !input.signal?.aborted) {
          const remaining = deadline - performance.now();
          if (remaining <= 0) break;
          const listening = deps.listener?.connected === true;
          const untilDates = msUntilDatesChange(row, deps.clock.now());
          await wakeable.wait(
            Math.min(listening ? remaining : Math.min(remaining, STATUS_FALLBACK_POLL_MS), untilDates),
          );
          if (closing || input.signal?.aborted) break;
          row = await readRow(input.agentId);
          if (!row) return undefined;
          if (standingAt(row) !== standing) {
            datesMoved = true;
            break;
          }
        }
        const entry = input.batch ? await batchedEntry(row) : signedEntry(row);
        const changed = entry.version !== input.since || datesMoved;
        const license = await reissuedEntry(row, input.heldLicense);
        if (!license)
          return { json: `{"status":${entry.json},"changed":${changed}}`, response: { status: entry.answer, changed } };
        return {
          json: `{"status":${entry.json},"changed":${changed},"license":${license.json}}`,
          response: { status: entry.answer, changed, license: license.answer },
        };
      } finally {
        input.signal?.removeEventListener('abort', onAbort);
        unwatch?.();
      }
    },

    /** Batch signatures made, and the answers they covered, since start. */
    batchStats: () => batches.stats(),

    /** Makes every parked request answer now (app shutdown). */
    close(): void {
      closing = true;
      deps.listener?.wakeAll();
    },
  };
}

export type StatusService = ReturnType<typeof createStatusService>;
