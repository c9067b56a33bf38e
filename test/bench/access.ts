import { URI } from 'otpauth';
import type { InjectOptions } from 'fastify';
import type { App } from '../../api/app';
import { createFixedClock } from '../../protocol';
import { buildTestApp } from '../support/app';
import { createTestDatabase } from '../support/db';
import { SAME_ORIGIN, mintSession, nextIp, seedAdmin, seedServiceAccount, TEST_PASSWORD } from '../support/identity';
import { startTestStack } from '../support/stack';

/**
 * `npm run bench:access`: what roles, scopes and the second factor cost, in process (app.inject)
 * against a real PostgreSQL. Baseline: GET /livez in the same run. Figures: an owner's and a
 * viewer's session request (role and second-factor policy read with the session), a scoped
 * token's request, a viewer refused for want of a permission; and sign-in with a TOTP code against
 * sign-in with the password alone (both run one scrypt; the ratio is the second factor's cost).
 * Options: --requests N (2000), --logins N (20).
 */
function arg(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}

async function rate(app: App, n: number, request: () => InjectOptions, expect: number) {
  const concurrency = 16;
  let next = 0;
  let errors = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next += 1;
        // Each from its own address, so the per-address request limit does not answer instead.
        const res = await app.inject({ ...request(), remoteAddress: nextIp() });
        if (res.statusCode !== expect) errors += 1;
      }
    }),
  );
  const s = (performance.now() - started) / 1000;
  return { perS: Math.round(n / s), errors };
}

export async function main(args: string[]): Promise<object> {
  const requests = arg(args, 'requests', 2000);
  const logins = arg(args, 'logins', 20);
  const log = (line: string) => console.log(`[bench:access] ${line}`);
  const stack = await startTestStack(log);
  const db = await createTestDatabase('benchaccess');
  // Each TOTP sign-in needs a fresh time step (a code is accepted once): the clock moves 30 s a login.
  const clock = createFixedClock(new Date());
  let built: Awaited<ReturnType<typeof buildTestApp>> | undefined;
  try {
    built = await buildTestApp({ pool: db.pool, clock });
    const app = built.app;
    const owner = await seedAdmin(db.pool, { cheap: true });
    const viewer = await seedAdmin(db.pool, { cheap: true, role: 'viewer' });
    const ownerCookie = (await mintSession(db.pool, 'admin', owner)).cookie;
    const viewerCookie = (await mintSession(db.pool, 'admin', viewer)).cookie;
    const token = (await seedServiceAccount(db.pool, { scopes: ['audit:read', 'customers:read'] })).token;

    const livez = await rate(app, requests, () => ({ method: 'GET', url: '/livez' }), 200);
    const policyRead = (cookie: string) => () =>
      ({ method: 'GET', url: '/v1/admin/totp-policy', headers: { cookie } }) satisfies InjectOptions;
    const ownerRead = await rate(app, requests, policyRead(ownerCookie), 200);
    const viewerRead = await rate(app, requests, policyRead(viewerCookie), 200);
    const tokenRead = await rate(
      app,
      requests,
      () => ({ method: 'GET', url: '/v1/admin/customers', headers: { authorization: `Bearer ${token}` } }),
      200,
    );
    const refused = await rate(
      app,
      requests,
      () => ({
        method: 'POST',
        url: '/v1/admin/totp-policy',
        headers: { cookie: viewerCookie, ...SAME_ORIGIN },
        payload: { owner: true, operator: true, viewer: true },
      }),
      403,
    );

    // Sign-in: one admin with the password alone, one with a second factor (real scrypt for both).
    const plain = await seedAdmin(db.pool);
    const enrolled = await seedAdmin(db.pool);
    const cookie = (await mintSession(db.pool, 'admin', enrolled)).cookie;
    const begun = await app.inject({
      method: 'POST',
      url: '/v1/admin/me/totp',
      headers: { cookie, ...SAME_ORIGIN },
      payload: {},
    });
    if (begun.statusCode !== 201) throw new Error(`enrolment answered ${begun.statusCode}: ${begun.body}`);
    const uri = URI.parse(begun.json<{ otpauthUri: string }>().otpauthUri);
    const codeNow = () => uri.generate({ timestamp: clock.now().getTime() });
    await app.inject({
      method: 'POST',
      url: '/v1/admin/me/totp/confirm',
      remoteAddress: nextIp(),
      headers: { cookie, ...SAME_ORIGIN },
      payload: { code: codeNow() },
    });
    const timeLogin = async (email: string, code?: string) => {
      clock.advance(30_000);
      const started = performance.now();
      const res = await app.inject({
        method: 'POST',
        url: '/v1/admin/login',
        remoteAddress: nextIp(),
        headers: { 'content-type': 'application/json' },
        payload: { email, password: TEST_PASSWORD, ...(code ? { code: code } : {}) },
      });
      if (res.statusCode !== 200) throw new Error(`login answered ${res.statusCode}: ${res.body}`);
      return performance.now() - started;
    };
    const plainMs: number[] = [];
    const totpMs: number[] = [];
    for (let i = 0; i < logins; i++) {
      plainMs.push(await timeLogin(plain.email));
      clock.advance(30_000);
      totpMs.push(await timeLogin(enrolled.email, uri.generate({ timestamp: clock.now().getTime() + 30_000 })));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const ratio = (x: number, base: number) => Number((x / Math.max(1, base)).toFixed(3));
    return {
      livez_per_s: livez.perS,
      owner_session_read_per_s: ownerRead.perS,
      owner_session_read_vs_livez: ratio(ownerRead.perS, livez.perS),
      viewer_session_read_per_s: viewerRead.perS,
      scoped_token_read_per_s: tokenRead.perS,
      scoped_token_read_vs_livez: ratio(tokenRead.perS, livez.perS),
      role_refusal_per_s: refused.perS,
      login_password_median_ms: Math.round(median(plainMs)),
      login_totp_median_ms: Math.round(median(totpMs)),
      login_totp_vs_password: ratio(median(totpMs), median(plainMs)),
      errors: livez.errors + ownerRead.errors + viewerRead.errors + tokenRead.errors + refused.errors,
    };
  } finally {
    await built?.close();
    await db.drop();
    await stack.stop();
  }
}
