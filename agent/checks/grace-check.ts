import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson, isoTime, type FingerprintHashes } from '../../protocol';
import type { PrefixStore } from '../prefix-store';
import { fail, pass, type Check } from './check';

export const GRACE_FILE = 'grace.json';
export const HIGH_WATER_FILE = 'highwater.json';
export const CLOCK_TOLERANCE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

export const machineOf = (hashes: FingerprintHashes) =>
  createHash('sha256').update(canonicalJson(hashes)).digest('hex');
/** grace.json's key: bound to the machine's component hashes, so the file cannot move to another machine. */
export function graceKeyOf(sealKey: Buffer | string, hashes: FingerprintHashes): Buffer {
  return createHmac('sha256', sealKey)
    .update(`agentina-grace/v1\0${canonicalJson(hashes)}`)
    .digest();
}
/** highwater.json's key: the seal key alone, so the record survives a hardware change. */
export const highWaterKeyOf = (sealKey: Buffer | string) =>
  createHmac('sha256', sealKey).update('agentina-highwater/v1').digest();
export const macOf = (key: Buffer, value: unknown) =>
  createHmac('sha256', key).update(canonicalJson(value)).digest('hex');
export const macOk = (key: Buffer, value: unknown, mac: string) =>
  timingSafeEqual(Buffer.from(macOf(key, value), 'hex'), Buffer.from(mac, 'hex'));

/** A terminal state as it is kept across restarts. */
export const terminalRecordSchema = z.strictObject({
  code: z.string().max(64),
  check: z.string().max(32),
  detail: z.string().max(500),
  at: isoTime,
  failures: z.array(z.string().max(64)).max(10),
  /** Tampering, revocation, a moved machine: nothing local ever clears it. */
  permanent: z.boolean(),
  /** The status answer held when it stopped: only an authentic good answer newer than this clears it. */
  statusVersion: z.number().int().min(-1),
  statusServerTime: isoTime.nullable(),
});
export type TerminalRecord = z.infer<typeof terminalRecordSchema>;

const graceStateSchema = z.strictObject({
  /** sha256 of the component hashes the seal key was derived from: tells "other machine" from "edited". */
  sealedFor: z.string().regex(/^[0-9a-f]{64}$/),
  lastServerTime: isoTime,
  deadline: isoTime,
  highWater: isoTime,
  /** Rises with every write of the record (grace.json and highwater.json carry the same counter). */
  counter: z.number().int().min(0),
  /** The newest status answer accepted (version, server time): an older status.json put back is a replay. */
  statusVersion: z.number().int().min(-1),
  statusServerTime: isoTime.nullable(),
  terminal: terminalRecordSchema.nullable(),
});
export type GraceState = z.infer<typeof graceStateSchema>;
export const graceFileSchema = z.strictObject({
  v: z.literal(1),
  state: graceStateSchema,
  mac: z.string().regex(/^[0-9a-f]{64}$/),
});
const highWaterBodySchema = z.strictObject({
  record: graceStateSchema,
  /** The counter of the last grace.json written, and of the one before (a crash between the two writes). */
  graceCounter: z.number().int().min(0),
  prevGraceCounter: z.number().int().min(0),
});
type HighWaterBody = z.infer<typeof highWaterBodySchema>;
export const highWaterFileSchema = z.strictObject({
  v: z.literal(1),
  body: highWaterBodySchema,
  mac: z.string().regex(/^[0-9a-f]{64}$/),
});

export type Observation = {
  serverTime: Date;
  graceDays: number;
  /** Only a good status answer extends the deadline; any authentic one raises the floors. */
  extend: boolean;
  status?: { version: number; serverTime: string };
};

/**
 * Check 4: the signed offline grace, and the agent's monotonic record.
 *
 * The record (deadline, last verified server time, wall-clock high-water mark, newest status
 * version accepted, terminal state) is kept in two places that must agree: grace.json, sealed
 * with HMAC-SHA256 under a key derived from the state directory's seal key and the machine's
 * current fingerprint (so it cannot be edited, nor carried to another machine), and
 * highwater.json, sealed under a key derived from the seal key alone (so it survives a hardware
 * change). The seal key is not the credential, which rotates at every heartbeat. Each
 * write goes to highwater.json first, then grace.json, with one rising counter; highwater.json
 * names the counter of the grace.json that must be beside it. An older copy of either file put
 * back (after a restart too) no longer agrees and is a replay; an edited one fails its seal.
 *
 * Only a verified, good, server-signed answer moves the deadline (`observe` with `extend`);
 * restarts re-read the same files; the high-water mark catches a clock set back beyond the
 * tolerance; a missing file while offline is a failure, never a fresh grace.
 */
export function createGraceCheck(input: {
  store: PrefixStore;
  /** The stable secret of the agent's state directory (agent/seal-key.ts) the seals are keyed by. */
  sealKey: Buffer | string;
  /** The machine's current component hashes (the key is bound to them). */
  currentHashes: (now: Date) => Promise<FingerprintHashes>;
  /** The deadline is never closer than this to the last server time (short outages with graceDays 0). */
  minOfflineMs?: number;
}) {
  const { store } = input;
  const minOffline = input.minOfflineMs ?? 120_000;
  let lastCounter = -1;
  // Reads and writes of the files are serialised, so two callers never interleave read-modify-write.
  let chain: Promise<unknown> = Promise.resolve();
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = chain.then(fn);
    chain = next.catch(() => undefined);
    return next;
  }

  const graceKey = (hashes: FingerprintHashes) => graceKeyOf(input.sealKey, hashes);
  const highWaterKey = highWaterKeyOf(input.sealKey);

  type Problem = { code: string; detail: string };
  type Loaded = {
    /** The record both files agree on (or highwater.json's, when grace.json cannot be used here). */
    record: GraceState | null;
    hw: HighWaterBody | null;
    /** The grace key for this machine when grace.json is usable here. */
    key: Buffer | null;
    problem: Problem | null;
  };

  function readHighWater(): { body: HighWaterBody | null; problem: Problem | null } {
    const raw = store.readJson(HIGH_WATER_FILE);
    if (raw === null) return { body: null, problem: null };
    const parsed = highWaterFileSchema.safeParse(raw);
    if (!parsed.success || !macOk(highWaterKey, parsed.data.body, parsed.data.mac))
      return {
        body: null,
        problem: { code: 'GRACE_TAMPERED', detail: 'the high-water record was edited (its seal does not verify)' },
      };
    return { body: parsed.data.body, problem: null };
  }

  async function load(now: Date): Promise<Loaded> {
    const hw = readHighWater();
    const fromHw = hw.body?.record ?? null;
    const raw = store.readJson(GRACE_FILE);
    if (hw.problem) return { record: null, hw: null, key: null, problem: hw.problem };
    if (raw === null)
      return {
        record: fromHw,
        hw: hw.body,
        key: null,
        problem: { code: 'GRACE_MISSING', detail: 'the offline grace state is missing' },
      };
    const parsed = graceFileSchema.safeParse(raw);
    if (!parsed.success)
      return {
        record: null,
        hw: null,
        key: null,
        problem: { code: 'GRACE_TAMPERED', detail: 'the offline grace state is malformed' },
      };
    const hashes = await input.currentHashes(now);
    // Sealed for other hardware (a copied file, or a changed component): not usable offline here,
    // but a fresh server-signed time may re-seal it. Sealed for this machine and not verifying: edited.
    if (parsed.data.state.sealedFor !== machineOf(hashes))
      return {
        record: fromHw,
        hw: hw.body,
        key: null,
        problem: { code: 'GRACE_OTHER_MACHINE', detail: 'the offline grace state was sealed on other hardware' },
      };
    const key = graceKey(hashes);
    if (!macOk(key, parsed.data.state, parsed.data.mac))
      return {
        record: fromHw,
        hw: hw.body,
        key: null,
        problem: { code: 'GRACE_TAMPERED', detail: 'the offline grace state was edited (its seal does not verify)' },
      };
    const g = parsed.data.state;
    // highwater.json verified, so what it says still stands (a floor, a terminal state) while
    // grace.json is refused.
    const replayed = (detail: string) => ({
      record: fromHw,
      hw: hw.body,
      key: null,
      problem: { code: 'GRACE_REPLAYED', detail },
    });
    if (!hw.body) return replayed('the high-water record beside the offline grace state is gone');
    if (g.counter !== hw.body.graceCounter && g.counter !== hw.body.prevGraceCounter)
      return replayed(
        g.counter < hw.body.graceCounter
          ? 'an older offline grace state was put back'
          : 'an older high-water record was put back',
      );
    if (g.counter < lastCounter) return replayed('an older offline grace state was put back');
    // Same counter: the same record, or one of them is not what was written.
    if (g.counter === hw.body.record.counter && canonicalJson(g) !== canonicalJson(hw.body.record))
      return replayed('the offline grace state and the high-water record disagree');
    // highwater.json is written first: it is the newer of the two when a crash fell between them.
    return { record: hw.body.record, hw: hw.body, key, problem: null };
  }

  /** Writes the record: highwater.json first, then grace.json when it can be sealed for this machine. */
  function write(loaded: Pick<Loaded, 'hw'>, record: GraceState, key: Buffer | null): void {
    const grace = key !== null;
    const body: HighWaterBody = {
      record,
      graceCounter: grace ? record.counter : (loaded.hw?.graceCounter ?? 0),
      prevGraceCounter: loaded.hw?.graceCounter ?? 0,
    };
    store.writeJson(HIGH_WATER_FILE, { v: 1, body, mac: macOf(highWaterKey, body) });
    if (grace) {
      store.writeJson(GRACE_FILE, { v: 1, state: record, mac: macOf(key, record) });
      lastCounter = record.counter;
    }
  }

  const isTamper = (p: Problem | null) => p?.code === 'GRACE_TAMPERED' || p?.code === 'GRACE_REPLAYED';
  const later = (a: string | null | undefined, b: string) => (a && Date.parse(a) > Date.parse(b) ? a : b);

  const check: Check & {
    observe(o: Observation, now: Date): Promise<{ state: GraceState | null; tamper: string | null }>;
    seal(serverTime: Date, graceDays: number, now: Date): Promise<{ state: GraceState | null; tamper: string | null }>;
    setTerminal(t: TerminalRecord | null, now: Date): Promise<void>;
    snapshot(now: Date): Promise<{ record: GraceState | null; problem: Problem | null }>;
    read(now: Date): Promise<GraceState | null>;
  } = {
    name: 'grace',
    evaluate: (now) =>
      serial(async () => {
        const loaded = await load(now);
        if (loaded.problem) return fail(loaded.problem.code, loaded.problem.detail);
        const s = loaded.record!;
        const t = now.getTime();
        if (t < Date.parse(s.highWater) - CLOCK_TOLERANCE_MS)
          return fail('CLOCK_ROLLBACK', `the clock is behind the recorded high-water mark ${s.highWater}`);
        if (t < Date.parse(s.lastServerTime) - CLOCK_TOLERANCE_MS)
          return fail('CLOCK_ROLLBACK', `the clock is behind the last verified server time ${s.lastServerTime}`);
        if (t > Date.parse(s.deadline)) return fail('GRACE_EXPIRED', `offline grace ended at ${s.deadline}`);
        if (t > Date.parse(s.highWater))
          write(loaded, { ...s, highWater: now.toISOString(), counter: s.counter + 1 }, loaded.key);
        return pass;
      }),
    /**
     * Records a verified server-signed answer: raises the floors (server time, status version,
     * high-water mark) and, for a good answer only, moves the deadline. An edited or replayed
     * record is left as it is (the evidence) and reported as `tamper`.
     */
    observe: (o, now) =>
      serial(async () => {
        const loaded = await load(now);
        if (isTamper(loaded.problem)) {
          const held = graceFileSchema.safeParse(store.readJson(GRACE_FILE));
          return { state: held.success ? held.data.state : null, tamper: loaded.problem!.code };
        }
        const prev = loaded.record;
        const hashes = await input.currentHashes(now);
        const here = machineOf(hashes);
        const last = new Date(later(prev?.lastServerTime, o.serverTime.toISOString()));
        const fresh = new Date(last.getTime() + Math.max(o.graceDays * DAY_MS, minOffline)).toISOString();
        // A not-good answer never extends the grace (on other hardware it cannot re-seal it either);
        // as the very first answer it leaves a grace that has already ended.
        const extend = o.extend;
        const st = o.status;
        let statusVersion = prev?.statusVersion ?? -1;
        let statusServerTime = prev?.statusServerTime ?? null;
        if (st && st.version > statusVersion) [statusVersion, statusServerTime] = [st.version, st.serverTime];
        else if (st && st.version === statusVersion) statusServerTime = later(statusServerTime, st.serverTime);
        const state: GraceState = {
          sealedFor: extend || !prev ? here : prev.sealedFor,
          lastServerTime: last.toISOString(),
          deadline: extend ? fresh : (prev?.deadline ?? last.toISOString()),
          highWater: later(prev?.highWater, now.toISOString()),
          counter: Math.max(prev?.counter ?? 0, loaded.hw?.record.counter ?? 0, lastCounter) + 1,
          statusVersion,
          statusServerTime,
          terminal: prev?.terminal ?? null,
        };
        const key = state.sealedFor === here ? graceKey(hashes) : null;
        write(loaded, state, key);
        return { state, tamper: null };
      }),
    seal: (serverTime, graceDays, now) => check.observe({ serverTime, graceDays, extend: true }, now),
    /** Keeps the terminal state (or its end) in the record, so a restart does not forget it. */
    setTerminal: (t, now) =>
      serial(async () => {
        const loaded = await load(now);
        // Tampered or replayed files stay as they are: they bring the agent back to terminal at every start.
        if (isTamper(loaded.problem)) return;
        const base = loaded.record;
        if (!base) {
          if (t === null) return;
          // Nothing to build on (both files gone): keep at least the terminal state.
          const at = now.toISOString();
          const record: GraceState = {
            sealedFor: machineOf(await input.currentHashes(now)),
            lastServerTime: at,
            deadline: at,
            highWater: at,
            counter: Math.max(lastCounter, 0) + 1,
            statusVersion: t.statusVersion,
            statusServerTime: t.statusServerTime,
            terminal: t,
          };
          write(loaded, record, null);
          return;
        }
        write(loaded, { ...base, counter: base.counter + 1, terminal: t }, loaded.problem ? null : loaded.key);
      }),
    /** What the record says (terminal state, status floor), even where grace.json cannot be used. */
    snapshot: (now) =>
      serial(async () => {
        const loaded = await load(now);
        return { record: loaded.record, problem: loaded.problem };
      }),
    read: (now) =>
      serial(async () => {
        const loaded = await load(now);
        return loaded.problem ? null : loaded.record;
      }),
  };
  return check;
}
