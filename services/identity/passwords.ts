import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { AppError } from '../errors';

/**
 * Password hashing for admins and customer users. Hashes are self-describing
 * (`scrypt$N$r$p$salt$hash`, base64url), so the configured cost can rise without invalidating
 * accounts: `needsRehash` tells the login path to re-hash with current parameters.
 * scrypt runs on libuv's thread pool (async), never on the event loop.
 */
export type ScryptParams = { N: number; r: number; p: number };

export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 15, r: 8, p: 1 };
export const PASSWORD_MIN_CHARS = 12;
export const PASSWORD_MAX_BYTES = 1024;
const KEY_LEN = 32;
const SALT_LEN = 16;
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;

function scrypt(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  // scrypt needs 128 * N * r bytes; leave headroom over Node's 32 MiB default.
  const opts: ScryptOptions = {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 256 * params.N * params.r + 1024 * 1024,
  };
  return new Promise((resolve, reject) => {
    scryptCb(password.normalize('NFKC'), salt, KEY_LEN, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Throws a VALIDATION_FAILED AppError when the password breaks the rules. */
export function checkPasswordRules(password: string, path = 'body.password'): void {
  if (Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES) {
    throw new AppError('VALIDATION_FAILED', 'The password is too long.', [
      { path, message: `at most ${PASSWORD_MAX_BYTES} bytes` },
    ]);
  }
  if (password.includes('\u0000')) {
    throw new AppError('VALIDATION_FAILED', 'The password may not contain NUL characters.', [
      { path, message: 'contains U+0000' },
    ]);
  }
  if ([...password].length < PASSWORD_MIN_CHARS) {
    throw new AppError('VALIDATION_FAILED', 'The password is too short.', [
      { path, message: `at least ${PASSWORD_MIN_CHARS} characters` },
    ]);
  }
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_LEN);
  const key = await scrypt(password, salt, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

type Parsed = ScryptParams & { salt: Buffer; key: Buffer };

function parseHash(stored: string): Parsed | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![N, r, p].every((n) => Number.isInteger(n) && n > 0) || N < 2 || (N & (N - 1)) !== 0 || p > 16) return undefined;
  // A stored hash may not make us allocate more than MAX_SCRYPT_MEMORY (scrypt needs 128·N·r bytes).
  if (128 * N * r > MAX_SCRYPT_MEMORY) return undefined;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const key = Buffer.from(parts[5]!, 'base64url');
  if (salt.length < 8 || key.length !== KEY_LEN) return undefined;
  return { N, r, p, salt, key };
}

/** Constant-time comparison of the derived key. A malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  // HMAC zero-pads short keys, so `pw` and `pw\0` would derive the same key: NUL never verifies.
  if (!parsed || Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES || password.includes('\u0000')) return false;
  let key: Buffer;
  try {
    key = await scrypt(password, parsed.salt, parsed);
  } catch {
    return false;
  }
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

export function needsRehash(stored: string, params: ScryptParams = DEFAULT_SCRYPT): boolean {
  const parsed = parseHash(stored);
  return !parsed || parsed.N !== params.N || parsed.r !== params.r || parsed.p !== params.p;
}

/** A readable one-time password: 20 characters from an unambiguous alphabet (~115 bits). */
export function generateOneTimePassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const bytes = randomBytes(40);
  let out = '';
  for (const b of bytes) {
    if (b < 4 * alphabet.length && out.length < 20) out += alphabet[b % alphabet.length];
  }
  return out.length === 20 ? out : generateOneTimePassword();
}

/**
 * Password hashing with a cap on how many scrypt computations run at once. Each takes a core for
 * ~120 ms; with every core busy the event loop starves (health checks, every other request).
 * The default leaves one core for the event loop and PostgreSQL; waiting logins queue here,
 * outside libuv's thread pool, so file and DNS work is not stuck behind them either.
 */
export function createPasswordHasher(opts: { params?: ScryptParams; concurrency?: number } = {}) {
  const params = opts.params ?? DEFAULT_SCRYPT;
  const limit = Math.max(1, opts.concurrency ?? availableParallelism() - 1);
  let running = 0;
  const waiting: Array<() => void> = [];
  async function gated<T>(fn: () => Promise<T>): Promise<T> {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else running += 1;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running -= 1;
    }
  }
  return {
    params,
    hash: (password: string) => gated(() => hashPassword(password, params)),
    verify: (password: string, stored: string) => gated(() => verifyPassword(password, stored)),
    needsRehash: (stored: string) => needsRehash(stored, params),
    /** Computations running and queued right now. */
    load: () => ({ running, waiting: waiting.length }),
  };
}

export type PasswordHasher = ReturnType<typeof createPasswordHasher>;
