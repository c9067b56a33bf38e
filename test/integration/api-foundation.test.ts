import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { newSecret, safeString } from '../../protocol';
import { buildTestApp, readMetrics } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';

/** The API skeleton's promises: one error shape, no internals in 5xx, redacted logs, helmet, docs. */
describe('API foundation', () => {
  let db: TestDatabase;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  const dbPassword = 'pg-password-Zq81xx';

  beforeAll(async () => {
    db = await createTestDatabase('apifoundation');
    t = await buildTestApp({
      pool: db.pool,
      register(app) {
        app.post(
          '/test/echo',
          {
            config: { access: ['anonymous'] },
            schema: { body: z.strictObject({ name: safeString(10).min(1), count: z.number().int().min(0) }) },
          },
          async (req) => ({ got: req.body }),
        );
        app.get('/test/boom', { config: { access: ['anonymous'] } }, async () => {
          throw new Error(`connect ECONNREFUSED 10.0.0.5:5432 password=${dbPassword}`);
        });
      },
    });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const expectErrorShape = (body: unknown, code: string) => {
    expect(body).toMatchObject({
      error: { code, message: expect.any(String), requestId: expect.stringMatching(/^req_/) },
    });
  };

  it('answers an unknown route with 404 in the one error shape', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/nothing-here' });
    expect(res.statusCode).toBe(404);
    expectErrorShape(res.json(), 'NOT_FOUND');
  });

  it('answers invalid input with 400 and field details', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/test/echo',
      payload: { name: 'far too long a name', count: -1, extra: true },
    });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expectErrorShape(body, 'VALIDATION_FAILED');
    expect(body.error.details.length).toBeGreaterThan(0);
    expect(JSON.stringify(body.error.details)).toMatch(/name|count|extra/);
  });

  it('answers malformed JSON, a wrong content type and an oversized body with clear 4xx', async () => {
    const bad = await t.app.inject({
      method: 'POST',
      url: '/test/echo',
      headers: { 'content-type': 'application/json' },
      payload: '{"name":',
    });
    expect(bad.statusCode).toBe(400);
    expectErrorShape(bad.json(), 'BAD_REQUEST');
    const type = await t.app.inject({
      method: 'POST',
      url: '/test/echo',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'name=a',
    });
    expect(type.statusCode).toBe(415);
    expectErrorShape(type.json(), 'UNSUPPORTED_MEDIA_TYPE');
    const big = await t.app.inject({
      method: 'POST',
      url: '/test/echo',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024), count: 1 }),
    });
    expect(big.statusCode).toBe(413);
    expectErrorShape(big.json(), 'PAYLOAD_TOO_LARGE');
  });

  it('accepts valid input', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/test/echo', payload: { name: 'ann', count: 2 } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ got: { name: 'ann', count: 2 } });
  });

  it('answers an unexpected error with 500 that says nothing internal, and logs it redacted', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/test/boom' });
    expect(res.statusCode).toBe(500);
    expectErrorShape(res.json(), 'INTERNAL');
    expect(res.body).not.toMatch(/ECONNREFUSED|10\.0\.0\.5|password/);
    const logged = t.logs.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'unhandled error');
    expect(logged).toBeDefined();
    expect(JSON.stringify(logged)).toContain('ECONNREFUSED');
    expect(t.logs.text()).not.toContain(dbPassword);
  });

  it('never writes planted secrets to the log', async () => {
    const svc = newSecret('svc');
    const act = newSecret('act');
    const sess = newSecret('sess');
    const queryToken = 'qtok-8d7f6e5a4b3c';
    await t.app.inject({
      method: 'POST',
      url: `/test/echo?token=${queryToken}&note=${act}`,
      headers: {
        authorization: `Bearer ${svc}`,
        cookie: `__Host-agentina_admin=${sess}`,
        'x-request-id': 'req-plant-secrets-1',
      },
      payload: { name: 'ann', count: 1, password: 'hunter2hunter2' },
    });
    t.app.log.info({ password: 'hunter2hunter2', nested: { token: act, ok: 'visible' } }, `login attempt with ${svc}`);
    const text = t.logs.text();
    expect(text).toContain('req-plant-secrets-1');
    expect(text).toContain('visible');
    for (const secret of [svc, act, sess, queryToken, 'hunter2hunter2']) expect(text).not.toContain(secret);
  });

  it('echoes a well-formed request id and replaces a hostile one', async () => {
    const ok = await t.app.inject({ method: 'GET', url: '/livez', headers: { 'x-request-id': 'client-req-0001' } });
    expect(ok.headers['x-request-id']).toBe('client-req-0001');
    const hostile = await t.app.inject({ method: 'GET', url: '/livez', headers: { 'x-request-id': 'a\nb<script>' } });
    expect(hostile.headers['x-request-id']).toMatch(/^req_/);
  });

  it('sends security headers (helmet)', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/livez' });
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['strict-transport-security']).toMatch(/max-age=/);
    expect(res.headers['x-frame-options']).toBeDefined();
  });

  it('serves security.txt with the disclosure contact and an expiry', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/.well-known/security.txt' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/^Contact: mailto:security@digcub-lab\.com$/m);
    expect(res.body).toMatch(/^Expires: \d{4}-/m);
    // The disclosure terms of SECURITY.md, in its words.
    for (const term of [
      /2 business days/,
      /through resolution/,
      /credit with your permission/,
      /written acknowledgement on request/,
      /No paid bounty/,
    ])
      expect(res.body).toMatch(term);
    const policy = readFileSync(path.join(__dirname, '..', '..', 'SECURITY.md'), 'utf8');
    expect(policy).toContain('security@digcub-lab.com');
  });

  it('serves the OpenAPI document generated from the zod schemas, and its UI', async () => {
    const doc = await t.app.inject({ method: 'GET', url: '/docs/json' });
    expect(doc.statusCode).toBe(200);
    const spec = doc.json();
    expect(spec.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/livez', '/readyz']));
    expect(JSON.stringify(spec.paths['/readyz'])).toContain('503');
    const ui = await t.app.inject({ method: 'GET', url: '/docs' });
    expect([200, 302]).toContain(ui.statusCode);
  });

  it('serves Prometheus metrics to the holder of the metrics token', async () => {
    expect(await readMetrics(t.app)).toMatch(/agentina_http_requests_total\{.*status="200".*\} \d+/);
  });
});

describe('API foundation: refusals', () => {
  let db: TestDatabase;
  let t: Awaited<ReturnType<typeof buildTestApp>>;
  beforeAll(async () => {
    db = await createTestDatabase('apirefusals');
    t = await buildTestApp({ pool: db.pool });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('sends the security headers and a request id on a 401 too', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/admin/me' });
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(res.headers['x-request-id']).toBe(res.json().error.requestId);
  });
});
