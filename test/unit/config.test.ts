import { appUrlFor, ConfigError, loadConfig } from '../../config';

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      temporal: { address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'agentina', uiPort: 8233 },
      logLevel: 'info',
    });
    expect(c.temporal.uiUrl).toBe('http://127.0.0.1:8233');
  });

  it('honours the interface variables', () => {
    const c = loadConfig({
      PORT: '3100',
      HOST: '0.0.0.0',
      TEMPORAL_ADDRESS: 'temporal:7233',
      TEMPORAL_NAMESPACE: 'lic',
      TEMPORAL_UI_PORT: '8300',
      AGENTINA_DATA_DIR: '/tmp/x y',
      AGENTINA_KEYS_DIR: '/tmp/k',
      LOG_LEVEL: 'warn',
      DATABASE_URL: 'postgres://owner:pw@db:5432/agentina',
    });
    expect(c.port).toBe(3100);
    expect(c.temporal).toMatchObject({
      address: 'temporal:7233',
      namespace: 'lic',
      uiPort: 8300,
      uiUrl: 'http://temporal:8300',
    });
    expect(c.dataDir).toBe('/tmp/x y');
    expect(c.keysDir).toBe('/tmp/k');
    expect(c.appDatabaseUrl).toBe('postgres://agentina_app@db:5432/agentina');
  });

  it('fails fast with a readable message naming every bad variable', () => {
    let err: unknown;
    try {
      loadConfig({ PORT: 'eighty', TEMPORAL_ADDRESS: 'no-port', LOG_LEVEL: 'loud' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/PORT/);
    expect(msg).toMatch(/TEMPORAL_ADDRESS: must be host:port/);
    expect(msg).toMatch(/LOG_LEVEL/);
  });

  it('serves /metrics nowhere and talks to Temporal in plaintext unless told otherwise', () => {
    const c = loadConfig({});
    expect(c.metrics).toEqual({
      token: undefined,
      listener: undefined,
      worker: undefined,
      auditVerifyIntervalMs: 3_600_000,
    });
    expect(loadConfig({ WORKER_METRICS_PORT: '9465', AUDIT_VERIFY_INTERVAL: '0' }).metrics).toMatchObject({
      worker: { host: '127.0.0.1', port: 9465 },
      auditVerifyIntervalMs: 0,
    });
    expect(() => loadConfig({ WORKER_METRICS_HOST: '0.0.0.0' })).toThrow(
      /WORKER_METRICS_HOST needs WORKER_METRICS_PORT/,
    );
    expect(c.temporal.tls).toBeUndefined();
    expect(c.temporal.apiKey).toBeUndefined();
    expect(loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }).metrics.listener).toEqual({
      host: '0.0.0.0',
      port: 9464,
    });
    expect(() => loadConfig({ METRICS_PORT: 'x' })).toThrow(/METRICS_PORT/);
    // A bad token is named, never echoed.
    let message = '';
    try {
      loadConfig({ METRICS_TOKEN: 'too-short-secret' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/METRICS_TOKEN/);
    expect(message).not.toContain('too-short-secret');
  });

  it('trusts no proxy by default; TRUST_PROXY takes a hop count or proxy addresses and CIDRs', () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: ' 10.0.0.0/8, 192.0.2.7 ,fd00::/8,loopback' }).trustProxy).toEqual([
      '10.0.0.0/8',
      '192.0.2.7',
      'fd00::/8',
      'loopback',
    ]);
    for (const bad of ['0', '11', 'true', '*', '10.0.0.0/33', 'fd00::/129', '10.0.0.1/8/8', 'proxy.example', '1,,2'])
      expect(() => loadConfig({ TRUST_PROXY: bad })).toThrow(/TRUST_PROXY: (a hop count|must be a hop count)/);
  });

  it('refuses half a TLS configuration', () => {
    expect(() => loadConfig({ TLS_CERT_FILE: '/c.pem' })).toThrow(
      /TLS_CERT_FILE and TLS_KEY_FILE must be set together/,
    );
  });

  it('derives the application-role URL without carrying the owner password', () => {
    expect(appUrlFor('postgres://postgres:secret@h:5/db?sslmode=require')).toBe(
      'postgres://agentina_app@h:5/db?sslmode=require',
    );
  });
});
