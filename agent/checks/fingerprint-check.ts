import { scoreFingerprint, type FingerprintComponent, type FingerprintHashes } from '../../protocol';
import { hashFingerprint, type FingerprintSource } from '../fingerprint-source';
import { fail, pass, type Check } from './check';

export type FingerprintReading = { hashes: FingerprintHashes; score: number; changed: FingerprintComponent[]; at: Date };

/**
 * Check 2: this machine still is the activated machine. Reads the fingerprint source (at most
 * `maxReadingAgeMs` old at the moment of judging) and scores it against the activation record.
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

  const check: Check & { read(now: Date): Promise<FingerprintReading>; current(now: Date): Promise<FingerprintReading> } = {
    name: 'fingerprint',
    async evaluate(now) {
      let reading: FingerprintReading;
      try {
        reading = await this.current(now);
      } catch (err) {
        return fail('FINGERPRINT_UNREADABLE', `cannot read the machine fingerprint: ${(err as Error).message}`);
      }
      if (reading.score < input.threshold) {
        return fail('FINGERPRINT_MISMATCH', `machine fingerprint score ${reading.score} < ${input.threshold} (changed: ${reading.changed.join(', ')})`);
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
