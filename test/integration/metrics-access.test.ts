import { startApi } from '../../api/server';
import { loadConfig } from '../../config';
import { freePort } from '../../scripts/stack/ports';
import { buildTestApp, TEST_METRICS_TOKEN, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import { createTestKeysDir } from '../support/license-helpers';

/**
 * /metrics names routes, pool sizes and quarantine counts: reconnaissance for an attacker on the
 * internet. It answers only the holder of METRICS_TOKEN, or only on METRICS_HOST:METRICS_PORT;
 * with neither configured the public port answers 404, exactly as for a route that does not exist.
 */
describe('who may read /metrics', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('metricsaccess');
  });
  afterAll(async () => {
    await db?.drop();
  });

  const get = (app: { inject: Awaited<ReturnType<typeof buildTestApp>>['app']['inject'] }, headers = {}) =>
    app.inject({ method: 'GET', url: '/metrics', headers });

  it('with neither token nor port configured, the public port answers 404 like an unknown route', async () => {
    const t = await buildTestApp({ pool: db.pool, config: testConfig({ METRICS_TOKEN: '' }) });
    try {
      for (const headers of [{}, { authorization: `Bearer ${TEST_METRICS_TOKEN}` }, { authorization: 'Bearer x' }]) {
        const res = await get(t.app, headers);
        expect(res.statusCode).toBe(404);
        const unknown = await t.app.inject({ method: 'GET', url: '/metricz' });
        expect(res.json().error.code).toBe(unknown.json().error.code);
        expect(res.body).not.toMatch(/agentina_/);
      }
    } finally {
      await t.close();
    }
  });

  it('with METRICS_TOKEN, answers only the bearer of that exact token (401 otherwise)', async () => {
    const t = await buildTestApp({ pool: db.pool });
    try {
      const wrong = [
        {},
        { authorization: 'Bearer' },
        { authorization: 'Bearer wrong' },
        { authorization: `Bearer ${TEST_METRICS_TOKEN}x` },
        { authorization: `Bearer ${TEST_METRICS_TOKEN.slice(0, -1)}` },
        { authorization: `Bearer ${TEST_METRICS_TOKEN.toUpperCase()}` },
        { authorization: `Basic ${Buffer.from(`x:${TEST_METRICS_TOKEN}`).toString('base64')}` },
        { authorization: `Bearer ${TEST_METRICS_TOKEN} ${TEST_METRICS_TOKEN}` },
        { cookie: `token=${TEST_METRICS_TOKEN}` },
        { 'x-metrics-token': TEST_METRICS_TOKEN },
      ];
      for (const headers of wrong) {
        const res = await get(t.app, headers);
        expect([headers, res.statusCode]).toEqual([headers, 401]);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(res.json().error.code).toBe('UNAUTHENTICATED');
        expect(res.body).not.toMatch(/agentina_/);
      }
      const inQuery = await t.app.inject({ method: 'GET', url: `/metrics?token=${TEST_METRICS_TOKEN}` });
      expect(inQuery.statusCode).toBe(401);
      const ok = await get(t.app, { authorization: `Bearer ${TEST_METRICS_TOKEN}` });
      expect(ok.statusCode).toBe(200);
      expect(ok.body).toMatch(/agentina_http_requests_total/);
      // The token itself never reaches the log.
      expect(t.logs.text()).not.toContain(TEST_METRICS_TOKEN);
    } finally {
      await t.close();
    }
  });

  it('refuses a METRICS_TOKEN shorter than 32 characters, and METRICS_HOST without a port', () => {
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: must be at least 32 characters/);
    expect(() => loadConfig({ METRICS_HOST: '0.0.0.0' })).toThrow(/METRICS_HOST needs METRICS_PORT/);
    expect(loadConfig({}).metrics).toMatchObject({ token: undefined, listener: undefined, worker: undefined });
    expect(loadConfig({ METRICS_PORT: '9464' }).metrics.listener).toEqual({ host: '127.0.0.1', port: 9464 });
  });

  it('with METRICS_PORT, serves them on a listener of their own; the public port answers 404 even to the token', async () => {
    const keys = createTestKeysDir();
    const [port, metricsPort] = [await freePort(), await freePort()];
    const config = loadConfig({
      DATABASE_URL: db.adminUrl,
      PORT: String(port),
      TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
      LOG_LEVEL: 'silent',
      AGENTINA_KEYS_DIR: keys.dir,
      METRICS_PORT: String(metricsPort),
      METRICS_TOKEN: TEST_METRICS_TOKEN,
    });
    const api = await startApi(config);
    const bearer = { authorization: `Bearer ${TEST_METRICS_TOKEN}` };
    try {
      expect(api.metricsUrl).toBe(`http://127.0.0.1:${metricsPort}`);
      expect((await fetch(`${api.url}/livez`)).status).toBe(200);
      const onPublic = await fetch(`${api.url}/metrics`, { headers: bearer });
      expect(onPublic.status).toBe(404);
      expect(await onPublic.text()).not.toMatch(/agentina_/);

      const scraped = await fetch(`${api.metricsUrl}/metrics`, { headers: bearer });
      expect(scraped.status).toBe(200);
      expect(scraped.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await scraped.text()).toMatch(/agentina_http_requests_total\{.*route="\/livez"/);
      const anonymous = await fetch(`${api.metricsUrl}/metrics`);
      expect(anonymous.status).toBe(401);
      expect(await anonymous.json()).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
      // Nothing else is served there.
      for (const p of ['/', '/livez', '/v1/admin/me', '/metrics/../v1/admin/me'])
        expect([p, (await fetch(`${api.metricsUrl}${p}`, { headers: bearer })).status]).toEqual([p, 404]);
      expect((await fetch(`${api.metricsUrl}/metrics`, { method: 'POST', headers: bearer })).status).toBe(404);
    } finally {
      await api.close();
      keys.remove();
    }
    // Closed with the API: the port is free again.
    await expect(fetch(`http://127.0.0.1:${metricsPort}/metrics`)).rejects.toThrow();
  });
});
