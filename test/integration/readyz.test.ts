import { createTemporal } from '../../services/temporal';
import { createPool } from '../../db';
import { freePort } from '../../scripts/stack/ports';
import { buildTestApp, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';

/**
 * /readyz checks the real PostgreSQL and the real Temporal server. It is anonymous, so it says
 * up or down and nothing else: which part is down (and how slow the others were) goes to the log.
 */
describe('GET /readyz', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('readyz');
  });
  afterAll(async () => {
    await db?.drop();
  });

  /** Nothing an anonymous caller need not know: no component names, versions, timings or addresses. */
  const revealsNothing = (body: string) =>
    expect(body).not.toMatch(/postgres|temporal|ECONNREFUSED|127\.0\.0\.1|version|"ms"|latenc|\d+\.\d+\.\d+/i);

  it('is 200 {status: ready} when PostgreSQL and Temporal both answer', async () => {
    const t = await buildTestApp({ pool: db.pool });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ready' });
      revealsNothing(res.body);
    } finally {
      await t.close();
    }
  });

  it('is a bare 503 when Temporal does not answer; the log names Temporal', async () => {
    const deadPort = await freePort();
    const config = testConfig({ TEMPORAL_ADDRESS: `127.0.0.1:${deadPort}` });
    const temporal = createTemporal(config);
    const t = await buildTestApp({ pool: db.pool, temporal, config });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({
        error: { code: 'NOT_READY', message: 'Not ready.', requestId: res.headers['x-request-id'] },
      });
      revealsNothing(res.body);
      expect(t.logs.lines.find((l) => l.includes('"not ready"'))).toMatch(/Temporal is not answering/);
    } finally {
      await t.close();
      await temporal.close();
    }
  });

  it('is a bare 503 when PostgreSQL does not answer; the log names PostgreSQL', async () => {
    const deadPort = await freePort();
    const deadPool = createPool(`postgres://agentina_app@127.0.0.1:${deadPort}/nothing`);
    const t = await buildTestApp({ pool: deadPool });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json().error).toMatchObject({ code: 'NOT_READY', message: 'Not ready.' });
      expect(res.json().error.details).toBeUndefined();
      revealsNothing(res.body);
      expect(t.logs.lines.find((l) => l.includes('"not ready"'))).toMatch(/PostgreSQL is not answering/);
    } finally {
      await t.close();
      await deadPool.end();
    }
  });
});
