import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Pool } from 'pg';
import {
  adminsRepo,
  customersRepo,
  customerUsersRepo,
  serviceAccountsRepo,
  withTransaction,
  type AccountKind,
} from '../../db';
import { hashPassword, type ScryptParams } from '../../services/identity/passwords';
import { createSessionService } from '../../services/identity/session-service';
import { ADMIN_COOKIE, PORTAL_COOKIE } from '../../api/identity/cookies';
import { sha256Hex } from '../../services/secrets';
import {
  newId,
  newSecret,
  SERVICE_SCOPES,
  systemClock,
  type AdminRole,
  type Clock,
  type ServiceScope,
} from '../../protocol';

/** Fixtures for identity tests: accounts straight into the database, sessions without a login. */
export const TEST_PASSWORD = 'correct horse battery staple';

/** Cheap scrypt (`cheap: true`) for fixtures that are never logged into with a password. */
const CHEAP: ScryptParams = { N: 1024, r: 8, p: 1 };

let counter = 0;
export function uniqueEmail(label: string): string {
  counter += 1;
  return `${label}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}@example.test`;
}

export async function seedAdmin(
  pool: Pool,
  opts: {
    email?: string;
    password?: string;
    params?: ScryptParams;
    active?: boolean;
    cheap?: boolean;
    role?: AdminRole;
  } = {},
) {
  const email = opts.email ?? uniqueEmail('admin');
  const hash = await hashPassword(opts.password ?? TEST_PASSWORD, opts.params ?? (opts.cheap ? CHEAP : undefined));
  const row = await adminsRepo.insertAdmin(pool, {
    id: newId('adm'),
    email,
    passwordHash: hash,
    role: opts.role ?? 'owner',
  });
  if (opts.active === false)
    await pool.query('UPDATE admins SET active = false, deactivated_at = now() WHERE id = $1', [row.id]);
  return { id: row.id, email };
}

export async function seedCustomer(pool: Pool, name = 'Customer') {
  const row = await customersRepo.insertCustomer(pool, { id: newId('cus'), name, now: new Date() });
  return { id: row.id };
}

export async function seedCustomerUser(
  pool: Pool,
  customerId: string,
  opts: { email?: string; password?: string; params?: ScryptParams; cheap?: boolean } = {},
) {
  const email = opts.email ?? uniqueEmail('user');
  const hash = await hashPassword(opts.password ?? TEST_PASSWORD, opts.params ?? (opts.cheap ? CHEAP : undefined));
  const row = await customerUsersRepo.insertCustomerUser(pool, {
    id: newId('usr'),
    customerId,
    email,
    displayName: '',
    passwordHash: hash,
    mustChangePassword: false,
    now: new Date(),
  });
  return { id: row.id, email, customerId };
}

/** A service account; by default with every scope a token may hold, and no expiry. */
export async function seedServiceAccount(
  pool: Pool,
  opts: { revoked?: boolean; scopes?: readonly ServiceScope[]; expiresAt?: Date } = {},
) {
  const token = newSecret('svc');
  const row = await serviceAccountsRepo.insertServiceAccount(pool, {
    id: newId('svcacct'),
    name: 'test',
    tokenHash: sha256Hex(token),
    tokenHint: token.slice(-4),
    scopes: opts.scopes ?? SERVICE_SCOPES,
    expiresAt: opts.expiresAt ?? null,
    createdBy: 'test',
    now: new Date(),
  });
  if (opts.revoked) await serviceAccountsRepo.revokeServiceAccount(pool, row.id, new Date());
  return { id: row.id, token };
}

/** A live session as if the account had just logged in; returns the Cookie header value. */
export async function mintSession(
  pool: Pool,
  kind: AccountKind,
  account: { id: string; customerId?: string },
  clock: Clock = systemClock,
): Promise<{ cookie: string; sessionId: string; token: string }> {
  const sessions = createSessionService({ pool, clock });
  const s = await withTransaction(pool, (tx) =>
    sessions.issue(tx, kind, {
      accountId: account.id,
      customerId: account.customerId ?? null,
      ip: null,
      userAgent: null,
    }),
  );
  return { cookie: `${kind === 'admin' ? ADMIN_COOKIE : PORTAL_COOKIE}=${s.token}`, sessionId: s.id, token: s.token };
}

/** Headers a same-origin browser fetch of JSON carries. */
export const SAME_ORIGIN = { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' } as const;

/** Set-Cookie → the `name=value` pair to send back. */
export function cookieFrom(setCookie: string | string[] | undefined): string {
  const first = [setCookie ?? []].flat()[0];
  if (!first) throw new Error('no Set-Cookie in the response');
  return first.split(';')[0]!;
}

let ipCounter = 0;
/** A distinct client address per call, so per-IP login limits do not couple unrelated tests. */
export function nextIp(): string {
  ipCounter += 1;
  return `10.${(process.pid >> 8) & 255}.${(ipCounter >> 8) & 255}.${ipCounter & 255}`;
}

type Injector = { inject: (opts: InjectOptions) => Promise<LightMyRequestResponse> };

/** Requests as a signed-in browser would make them: the session cookie, same-origin JSON for POSTs. */
export function asCookie(app: Injector, cookie: string) {
  return {
    get: (url: string) => app.inject({ method: 'GET', url, headers: { cookie } }),
    post: (url: string, payload: object = {}) =>
      app.inject({ method: 'POST', url, headers: { cookie, ...SAME_ORIGIN }, payload }),
  };
}

/** Requests as a script with a bearer token would make them. */
export function asBearer(app: Injector, token: string) {
  return {
    get: (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } }),
    post: (url: string, payload: object = {}) =>
      app.inject({
        method: 'POST',
        url,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        payload,
      }),
  };
}
