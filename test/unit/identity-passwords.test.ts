import { AppError } from '../../api/errors';
import {
  DEFAULT_SCRYPT,
  PASSWORD_MAX_BYTES,
  checkPasswordRules,
  createPasswordHasher,
  generateOneTimePassword,
  hashPassword,
  needsRehash,
  verifyPassword,
} from '../../services/identity/passwords';

describe('passwords', () => {
  const pw = 'correct horse battery staple';

  it('hashes to a self-describing scrypt$N$r$p$salt$hash string with a 16-byte salt and 32-byte key', async () => {
    const h = await hashPassword(pw);
    const [scheme, N, r, p, salt, key] = h.split('$');
    expect([scheme, N, r, p]).toEqual(['scrypt', '32768', '8', '1']);
    expect(Buffer.from(salt!, 'base64url')).toHaveLength(16);
    expect(Buffer.from(key!, 'base64url')).toHaveLength(32);
    expect(await hashPassword(pw)).not.toBe(h); // fresh salt every time
  });

  // `${pw}\u0000` is the interesting one: HMAC zero-pads short keys, so scrypt alone would accept it.
  it('verifies the right password and rejects near misses', async () => {
    const h = await hashPassword(pw);
    expect(await verifyPassword(pw, h)).toBe(true);
    for (const wrong of ['', 'correct horse battery stapl', `${pw} `, pw.toUpperCase(), `${pw}\u0000`])
      expect(await verifyPassword(wrong, h)).toBe(false);
  });

  it('a tampered or malformed stored hash never matches and never throws', async () => {
    const h = await hashPassword(pw);
    const parts = h.split('$');
    const key = Buffer.from(parts[5]!, 'base64url');
    key[0] = key[0]! ^ 1;
    const variants = [
      [...parts.slice(0, 5), key.toString('base64url')].join('$'),
      ['scrypt', '32769', ...parts.slice(2)].join('$'), // N not a power of two
      ['scrypt', String(2 ** 22), '32', '1', ...parts.slice(4)].join('$'), // would need 16 GiB
      ['scrypt', '0', ...parts.slice(2)].join('$'),
      [...parts.slice(0, 5), ''].join('$'),
      h.replace(/^scrypt/, 'bcrypt'),
      'scrypt$',
      '',
    ];
    for (const v of variants) await expect(verifyPassword(pw, v)).resolves.toBe(false);
  });

  it('needsRehash when the stored parameters differ from the configured ones', async () => {
    const old = await hashPassword(pw, { N: 2 ** 14, r: 8, p: 1 });
    expect(needsRehash(old)).toBe(true);
    expect(await verifyPassword(pw, old)).toBe(true); // older cost still verifies
    const current = await hashPassword(pw);
    expect(needsRehash(current)).toBe(false);
    expect(needsRehash(current, { ...DEFAULT_SCRYPT, N: 2 ** 16 })).toBe(true);
    expect(needsRehash('garbage')).toBe(true);
  });

  it('runs off the event loop: other callbacks run while a hash is computed', async () => {
    let turns = 0;
    let running = true;
    const spin = () => {
      if (!running) return;
      turns += 1;
      setImmediate(spin);
    };
    setImmediate(spin);
    await hashPassword(pw);
    running = false;
    expect(turns).toBeGreaterThan(10);
  });

  it('rules: at least 12 characters, at most 1,024 bytes, with a clear VALIDATION_FAILED error', () => {
    const refuse = (p: string) => {
      try {
        checkPasswordRules(p);
        return undefined;
      } catch (err) {
        expect(err).toBeInstanceOf(AppError);
        return (err as AppError).code + ': ' + (err as AppError).message;
      }
    };
    expect(refuse('a'.repeat(11))).toBe('VALIDATION_FAILED: The password is too short.');
    expect(refuse('a'.repeat(12))).toBeUndefined();
    expect(refuse('🔑'.repeat(12))).toBeUndefined(); // characters, not UTF-16 units or bytes
    expect(refuse('🔑'.repeat(11))).toMatch(/too short/);
    expect(refuse('a'.repeat(PASSWORD_MAX_BYTES))).toBeUndefined();
    expect(refuse('a'.repeat(PASSWORD_MAX_BYTES + 1))).toBe('VALIDATION_FAILED: The password is too long.');
    expect(refuse('é'.repeat(513))).toMatch(/too long/); // 1,026 bytes
    expect(refuse(`${'a'.repeat(12)}\u0000`)).toMatch(/NUL/);
  });

  it('over-long passwords are never verified (no scrypt on megabytes of input)', async () => {
    const h = await hashPassword(pw);
    expect(await verifyPassword(pw + 'x'.repeat(PASSWORD_MAX_BYTES), h)).toBe(false);
  });

  it('one-time passwords: 20 unambiguous characters, satisfying the rules, all different', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const otp = generateOneTimePassword();
      expect(otp).toMatch(/^[A-HJ-NP-Za-km-z2-9]{20}$/);
      expect(() => checkPasswordRules(otp)).not.toThrow();
      seen.add(otp);
    }
    expect(seen.size).toBe(200);
  });

  it('the hasher runs at most `concurrency` scrypts at once and queues the rest', async () => {
    const hasher = createPasswordHasher({ params: { N: 1024, r: 8, p: 1 }, concurrency: 2 });
    const jobs = Array.from({ length: 5 }, (_, i) => hasher.hash(`${pw} ${i}`));
    expect(hasher.load()).toEqual({ running: 2, waiting: 3 });
    const hashes = await Promise.all(jobs);
    expect(hasher.load()).toEqual({ running: 0, waiting: 0 });
    expect(await hasher.verify(`${pw} 3`, hashes[3]!)).toBe(true);
    expect(await hasher.verify(`${pw} 3`, hashes[4]!)).toBe(false);
    // A failing job releases its slot too.
    await expect(hasher.verify(pw, 'scrypt$1$1$1$x$y')).resolves.toBe(false);
    expect(hasher.load()).toEqual({ running: 0, waiting: 0 });
  });
});
