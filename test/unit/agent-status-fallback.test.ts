import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createControlPlaneClient } from '../../agent/http-client';
import { createSigner, generateKeyFile, newId, type StatusPayload } from '../../protocol';
import { makeSelfSignedCert } from '../support/tls';

/**
 * An agent of this release asks for batch-signed status answers (`signatures=batch`). A control
 * plane of an earlier release refuses the unknown query field with 400: the agent must then ask as
 * older agents do, not stop hearing its status (it would fail closed for want of an answer).
 */
describe('status requests to a control plane that does not know batch signatures', () => {
  const tls = makeSelfSignedCert();
  const signer = createSigner(generateKeyFile('license-a'));
  const payload: StatusPayload = {
    kind: 'agentina.status/v1',
    licenseId: newId('lic'),
    agentId: newId('agt'),
    licenseState: 'active',
    agentStatus: 'active',
    good: true,
    version: 2,
    serverTime: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
    graceDays: 7,
  };
  const answer = JSON.stringify({ status: { payload, signature: signer.sign(payload) }, changed: true });
  let server: Server;
  let url: string;
  let knowsBatch = false;
  const seen: string[] = [];

  beforeAll(async () => {
    server = createServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, (req, res) => {
      seen.push(req.url!);
      const q = new URL(req.url!, 'https://x').searchParams;
      if (q.has('signatures') && !knowsBatch) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: { code: 'BAD_REQUEST', message: 'querystring must NOT have additional properties' },
          }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(tls.dir, { recursive: true, force: true });
  });
  beforeEach(() => void seen.splice(0));

  const client = () =>
    createControlPlaneClient({
      server: url,
      tls: { ca: readFileSync(tls.certFile, 'utf8') },
      credential: `agc_${'a'.repeat(32)}`,
      agentKey: generateKeyPairSync('ed25519').privateKey,
    });

  it('asks again without the field after a 400, and from then on asks without it', async () => {
    knowsBatch = false;
    const c = client();
    expect((await c.status({ since: 1, wait: 0 })).status.payload).toEqual(payload);
    expect((await c.status({ since: 2, wait: 0 })).changed).toBe(true);
    expect(seen).toEqual([
      '/v1/agent/status?since=1&wait=0&signatures=batch',
      '/v1/agent/status?since=1&wait=0',
      '/v1/agent/status?since=2&wait=0',
    ]);
  });

  it('keeps asking for batch signatures where they are known', async () => {
    knowsBatch = true;
    const c = client();
    await c.status({ since: 1, wait: 0 });
    await c.status({ since: 2, wait: 0 });
    expect(seen).toEqual([
      '/v1/agent/status?since=1&wait=0&signatures=batch',
      '/v1/agent/status?since=2&wait=0&signatures=batch',
    ]);
  });
});
