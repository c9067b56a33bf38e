import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson, isoTime, type FingerprintHashes } from '../../protocol';
import type { PrefixStore } from '../prefix-store';
import { fail, pass, type Check } from './check';

export const GRACE_FILE = 'grace.json';
export const CLOCK_TOLERANCE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

const graceStateSchema = z.strictObject({
  /** sha256 of the component hashes the seal key was derived from: tells "other machine" from "edited". */
  sealedFor: z.string().regex(/^[0-9a-f]{64}$/),
  lastServerTime: isoTime,
  deadline: isoTime,
  highWater: isoTime,
  counter: z.number().int().min(0),
});
export type GraceState = z.infer<typeof graceStateSchema>;
const graceFileSchema = z.strictObject({
  v: z.literal(1),
  state: graceStateSchema,
  mac: z.string().regex(/^[0-9a-f]{64}$/),
});

/**
 * Check 4: the signed offline grace. The state file is sealed with HMAC-SHA256 under a key
 * derived from the agent credential and the machine's current fingerprint, so it cannot be edited,
 * nor carried to another machine. Only a verified server-signed time moves the deadline
 * (`seal`); restarts re-read the same file; the wall-clock high-water mark catches a clock set
 * back beyond the tolerance; a missing file while offline is a failure, never a fresh grace.
 */
export function createGraceCheck(input: {
  store: PrefixStore;
  credential: string;
  /** The machine's current component hashes (the key is bound to them). */
  currentHashes: (now: Date) => Promise<FingerprintHashes>;
  /** The deadline is never closer than this to the last server time (short outages with graceDays 0). */
  minOfflineMs?: number;
}) {
  const minOffline = input.minOfflineMs ?? 120_000;
  let lastCounter = -1;
  // Reads and writes of the file are serialised, so two callers never interleave read-modify-write.
  let chain: Promise<unknown> = Promise.resolve();
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = chain.then(fn);
    chain = next.catch(() => undefined);
    return next;
  }

  const machineOf = (hashes: FingerprintHashes) => createHash('sha256').update(canonicalJson(hashes)).digest('hex');
  function keyFor(hashes: FingerprintHashes): Buffer {
    return createHmac('sha256', input.credential)
      .update(`agentina-grace/v1\0${canonicalJson(hashes)}`)
      .digest();
  }
  const macOf = (key: Buffer, state: GraceState) =>
    createHmac('sha256', key).update(canonicalJson(state)).digest('hex');

  function write(key: Buffer, state: GraceState): void {
    input.store.writeJson(GRACE_FILE, { v: 1, state, mac: macOf(key, state) });
    lastCounter = state.counter;
  }

  type Loaded = { ok: true; state: GraceState; key: Buffer } | { ok: false; code: string; detail: string };
  async function load(now: Date): Promise<Loaded> {
    const raw = input.store.readJson(GRACE_FILE);
    if (raw === null) return { ok: false, code: 'GRACE_MISSING', detail: 'the offline grace state is missing' };
    const parsed = graceFileSchema.safeParse(raw);
    if (!parsed.success) return { ok: false, code: 'GRACE_TAMPERED', detail: 'the offline grace state is malformed' };
    const hashes = await input.currentHashes(now);
    // Sealed for other hardware (a copied file, or a changed component): not usable offline here,
    // but a fresh server-signed time may re-seal it. Sealed for this machine and not verifying: edited.
    if (parsed.data.state.sealedFor !== machineOf(hashes))
      return { ok: false, code: 'GRACE_OTHER_MACHINE', detail: 'the offline grace state was sealed on other hardware' };
    const key = keyFor(hashes);
    const expected = Buffer.from(macOf(key, parsed.data.state), 'hex');
    if (!timingSafeEqual(expected, Buffer.from(parsed.data.mac, 'hex'))) {
      return {
        ok: false,
        code: 'GRACE_TAMPERED',
        detail: 'the offline grace state was edited (its seal does not verify)',
      };
    }
    if (parsed.data.state.counter < lastCounter)
      return { ok: false, code: 'GRACE_REPLAYED', detail: 'an older offline grace state was put back' };
    return { ok: true, state: parsed.data.state, key };
  }

  const check: Check & {
    seal(serverTime: Date, graceDays: number, now: Date): Promise<{ state: GraceState; tamper: string | null }>;
    read(now: Date): Promise<GraceState | null>;
  } = {
    name: 'grace',
    evaluate: (now) =>
      serial(async () => {
        const loaded = await load(now);
        if (!loaded.ok) return fail(loaded.code, loaded.detail);
        const s = loaded.state;
        const t = now.getTime();
        if (t < Date.parse(s.highWater) - CLOCK_TOLERANCE_MS)
          return fail('CLOCK_ROLLBACK', `the clock is behind the recorded high-water mark ${s.highWater}`);
        if (t < Date.parse(s.lastServerTime) - CLOCK_TOLERANCE_MS)
          return fail('CLOCK_ROLLBACK', `the clock is behind the last verified server time ${s.lastServerTime}`);
        if (t > Date.parse(s.deadline)) return fail('GRACE_EXPIRED', `offline grace ended at ${s.deadline}`);
        if (t > Date.parse(s.highWater))
          write(loaded.key, { ...s, highWater: now.toISOString(), counter: s.counter + 1 });
        return pass;
      }),
    /**
     * Records a verified server-signed time: the only way the deadline moves. An edited or
     * replayed file is left as it is (the evidence) and reported as `tamper`.
     */
    seal: (serverTime, graceDays, now) =>
      serial(async () => {
        const loaded = await load(now);
        if (!loaded.ok && (loaded.code === 'GRACE_TAMPERED' || loaded.code === 'GRACE_REPLAYED')) {
          const held = graceFileSchema.safeParse(input.store.readJson(GRACE_FILE));
          return { state: held.success ? held.data.state : (null as unknown as GraceState), tamper: loaded.code };
        }
        const prev = loaded.ok ? loaded.state : null;
        const last =
          prev && Date.parse(prev.lastServerTime) > serverTime.getTime() ? new Date(prev.lastServerTime) : serverTime;
        const highWater = prev && Date.parse(prev.highWater) > now.getTime() ? prev.highWater : now.toISOString();
        const hashes = await input.currentHashes(now);
        const state: GraceState = {
          sealedFor: machineOf(hashes),
          lastServerTime: last.toISOString(),
          deadline: new Date(last.getTime() + Math.max(graceDays * DAY_MS, minOffline)).toISOString(),
          highWater,
          counter: Math.max(prev?.counter ?? 0, lastCounter) + 1,
        };
        write(keyFor(hashes), state);
        return { state, tamper: null };
      }),
    read: (now) =>
      serial(async () => {
        const loaded = await load(now);
        return loaded.ok ? loaded.state : null;
      }),
  };
  return check;
}
