import { rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../../config';
import { createTemporal, temporalConnectionOptions } from '../../services/temporal';
import { testEnv } from '../support/env';
import { quietTemporalRuntime } from '../support/temporal';
import { makeTestCa } from '../support/tls';

/**
 * A Temporal frontend that demands mutual TLS (as a production cluster should): the dev server
 * behind a TLS terminator that requires a client certificate from the test CA. The API's client,
 * its health probe and the worker's native connection reach it with TEMPORAL_TLS_* set, and are
 * turned away without a client certificate or without the CA.
 */
describe('Temporal over mutual TLS', () => {
  const ca = makeTestCa();
  let proxy: tls.Server;
  let address: string;
  const handshakes = { ok: 0, refused: 0 };

  beforeAll(async () => {
    quietTemporalRuntime();
    const [host, port] = testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS').split(':') as [string, string];
    proxy = tls.createServer(
      {
        cert: readFileSync(ca.server.certFile),
        key: readFileSync(ca.server.keyFile),
        ca: readFileSync(ca.caFile),
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: ['h2'],
      },
      (socket) => {
        handshakes.ok++;
        const upstream = net.connect(Number(port), host);
        socket.pipe(upstream).pipe(socket);
        const end = () => {
          socket.destroy();
          upstream.destroy();
        };
        socket.on('error', end).on('close', end);
        upstream.on('error', end).on('close', end);
      },
    );
    proxy.on('tlsClientError', () => handshakes.refused++);
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    address = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((r) => proxy.close(() => r()));
    rmSync(ca.dir, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string>) => loadConfig({ TEMPORAL_ADDRESS: address, ...extra });
  const mtls = {
    TEMPORAL_TLS_CERT_FILE: ca.client.certFile,
    TEMPORAL_TLS_KEY_FILE: ca.client.keyFile,
    TEMPORAL_TLS_CA_FILE: ca.caFile,
  };

  it('the API client and its health probe connect with the client certificate and CA from config', async () => {
    const temporal = createTemporal(env(mtls));
    try {
      await temporal.ping(5000);
      const info = await temporal.client.workflowService.getSystemInfo({});
      expect(info.capabilities).toBeDefined();
    } finally {
      await temporal.close();
    }
  });

  it('the worker’s native connection connects with the same options', async () => {
    const connection = await NativeConnection.connect(temporalConnectionOptions(env(mtls)));
    try {
      const info = await connection.workflowService.getSystemInfo({});
      expect(info.capabilities).toBeDefined();
    } finally {
      await connection.close();
    }
  });

  it('is refused without a client certificate, without the CA, and in plaintext', async () => {
    const refusedBefore = handshakes.refused;
    const attempts: Array<Record<string, string>> = [
      { TEMPORAL_TLS_CA_FILE: ca.caFile }, // server-authenticated TLS only: no client certificate
      { TEMPORAL_TLS_CERT_FILE: ca.client.certFile, TEMPORAL_TLS_KEY_FILE: ca.client.keyFile }, // unknown server CA
      {}, // plaintext gRPC to a TLS port
    ];
    for (const extra of attempts) {
      const temporal = createTemporal(env(extra));
      try {
        await expect(temporal.ping(3000)).rejects.toThrow();
      } finally {
        await temporal.close();
      }
    }
    expect(handshakes.refused).toBeGreaterThan(refusedBefore);
  });
});

describe('Temporal connection options from config', () => {
  it('plaintext by default; TLS files read once; an API key sent and TLS implied', () => {
    const ca = makeTestCa();
    try {
      expect(temporalConnectionOptions(loadConfig({}))).toEqual({ address: '127.0.0.1:7233' });
      const full = temporalConnectionOptions(
        loadConfig({
          TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233',
          TEMPORAL_TLS_CERT_FILE: ca.client.certFile,
          TEMPORAL_TLS_KEY_FILE: ca.client.keyFile,
          TEMPORAL_TLS_CA_FILE: ca.caFile,
          TEMPORAL_API_KEY: 'tmprl-key-0123456789',
        }),
      );
      expect(full).toEqual({
        address: 'ns.acct.tmprl.cloud:7233',
        tls: {
          serverRootCACertificate: readFileSync(ca.caFile),
          clientCertPair: { crt: readFileSync(ca.client.certFile), key: readFileSync(ca.client.keyFile) },
        },
        apiKey: 'tmprl-key-0123456789',
      });
      // An API key alone: the SDK turns TLS on for it, so the key never travels in clear.
      expect(temporalConnectionOptions(loadConfig({ TEMPORAL_API_KEY: 'k' }))).toEqual({
        address: '127.0.0.1:7233',
        apiKey: 'k',
      });
      expect(temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_CA_FILE: ca.caFile }))).toEqual({
        address: '127.0.0.1:7233',
        tls: { serverRootCACertificate: readFileSync(ca.caFile) },
      });
      expect(() => loadConfig({ TEMPORAL_TLS_CERT_FILE: ca.client.certFile })).toThrow(
        /TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE must be set together/,
      );
      // Empty values (docker-compose's `${VAR:-}`) count as unset.
      expect(temporalConnectionOptions(loadConfig({ TEMPORAL_API_KEY: '', TEMPORAL_TLS_CA_FILE: '' }))).toEqual({
        address: '127.0.0.1:7233',
      });
    } finally {
      rmSync(ca.dir, { recursive: true, force: true });
    }
  });
});
