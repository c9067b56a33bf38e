import { createTemporal } from '../../services/temporal';
import { createPool } from '../../db';
import { freePort } from '../../scripts/stack/ports';
import { buildTestApp, testConfig } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';

/** (c) /readyz checks the real PostgreSQL and the real Temporal server, and says which is down. */
describe('GET /readyz', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('readyz');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('is 200 when PostgreSQL and Temporal both answer', async () => {
    const t = await buildTestApp({ pool: db.pool });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ status: 'ready', checks: { postgres: { ok: true }, temporal: { ok: true } } });
    } finally {
      await t.close();
    }
  });

  it('is 503 naming Temporal when Temporal does not answer', async () => {
    const deadPort = await freePort();
    const config = testConfig({ TEMPORAL_ADDRESS: `127.0.0.1:${deadPort}` });
    const temporal = createTemporal(config);
    const t = await buildTestApp({ pool: db.pool, temporal, config });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      const body = res.json();
      expect(body.error.code).toBe('NOT_READY');
      expect(body.error.message).toMatch(/Temporal is not answering/);
      expect(body.error.details).toEqual([{ path: 'temporal', message: 'Temporal is not answering' }]);
      expect(body.error.requestId).toBe(res.headers['x-request-id']);
    } finally {
      await t.close();
      await temporal.close();
    }
  });

  it('is 503 naming PostgreSQL when PostgreSQL does not answer', async () => {
    const deadPort = await freePort();
    const deadPool = createPool(`postgres://agentina_app@127.0.0.1:${deadPort}/nothing`);
    const t = await buildTestApp({ pool: deadPool });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.details).toEqual([{ path: 'postgres', message: 'PostgreSQL is not answering' }]);
      expect(res.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
    } finally {
      await t.close();
      await deadPool.end();
    }
  });
});
