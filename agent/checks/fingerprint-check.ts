import { scoreFingerprint, type FingerprintComponent, type FingerprintHashes } from '../../protocol';
import { hashFingerprint, type FingerprintSource } from '../fingerprint-source';
import { fail, pass, type Check } from './check';

export type FingerprintReading = {
  hashes: FingerprintHashes;
  score: number;
  changed: FingerprintComponent[];
  at: Date;
};

/**
 * Check 2: this machine still is the activated machine. Every evaluation reads the fingerprint
 * source afresh and scores it against the activation record. `current()` (a reading at most
 * `maxReadingAgeMs` old) serves other users of the hashes, such as the grace seal key.
 */
export function createFingerprintCheck(input: {
  source: FingerprintSource;
  salt: string;
  recorded: FingerprintHashes;
  threshold: number;
  weights?: Readonly<Record<FingerprintComponent, number>>;
  maxReadingAgeMs?: number;
}) {
  const maxAge = input.maxReadingAgeMs ?? 60_000;
  let last: FingerprintReading | null = null;

  async function read(now: Date): Promise<FingerprintReading> {
    const hashes = hashFingerprint(input.salt, await input.source.read());
    const { score, changed } = scoreFingerprint(input.recorded, hashes, input.weights);
    last = { hashes, score, changed, at: now };
    return last;
  }

  const check: Check & {
    read(now: Date): Promise<FingerprintReading>;
    current(now: Date): Promise<FingerprintReading>;
  } = {
    name: 'fingerprint',
    async evaluate(now) {
      let reading: FingerprintReading;
      try {
        // Judged on a fresh reading: a task is accepted only on what the machine is now.
        reading = await read(now);
      } catch (err) {
        return fail('FINGERPRINT_UNREADABLE', `cannot read the machine fingerprint: ${(err as Error).message}`);
      }
      if (reading.score < input.threshold) {
        return fail(
          'FINGERPRINT_MISMATCH',
          `machine fingerprint score ${reading.score} < ${input.threshold} (changed: ${reading.changed.join(', ')})`,
        );
      }
      return pass;
    },
    read,
    /** The last reading if fresh, else a new one. */
    async current(now) {
      if (last && now.getTime() - last.at.getTime() <= maxAge && now.getTime() >= last.at.getTime()) return last;
      return read(now);
    },
  };
  return check;
}
