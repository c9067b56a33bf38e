import { readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { SecureVersion } from 'node:tls';
import { startApi } from '../../api/server';
import { loadConfig } from '../../config';
import { freePort } from '../../scripts/stack/ports';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import { makeSelfSignedCert } from '../support/tls';

function get(url: string, ca: Buffer, maxVersion: SecureVersion): Promise<{ status: number; protocol: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, maxVersion, minVersion: 'TLSv1.2', agent: false }, (res) => {
      const protocol = (res.socket as import('node:tls').TLSSocket).getProtocol() ?? '';
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, protocol }));
    });
    req.on('error', reject);
  });
}

/** With TLS_CERT_FILE/TLS_KEY_FILE set the API speaks TLS 1.3 only. */
describe('API over TLS', () => {
  let db: TestDatabase;
  const cert = makeSelfSignedCert();
  beforeAll(async () => {
    db = await createTestDatabase('apitls');
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(cert.dir, { recursive: true, force: true });
  });

  it('serves TLS 1.3 and refuses a TLS 1.2-only client', async () => {
    const port = await freePort();
    const config = loadConfig({
      DATABASE_URL: db.adminUrl,
      PORT: String(port),
      TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
      TLS_CERT_FILE: cert.certFile,
      TLS_KEY_FILE: cert.keyFile,
      LOG_LEVEL: 'silent',
      AGENTINA_KEYS_DIR: `${cert.dir}/keys`,
    });
    const api = await startApi(config);
    try {
      expect(api.url).toBe(`https://127.0.0.1:${port}`);
      const ca = readFileSync(cert.certFile);
      await expect(get(`${api.url}/readyz`, ca, 'TLSv1.3')).resolves.toEqual({ status: 200, protocol: 'TLSv1.3' });
      await expect(get(`${api.url}/livez`, ca, 'TLSv1.2')).rejects.toThrow(/protocol|version|alert/i);
    } finally {
      await api.close();
    }
  });
});
