import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { CONFIG_ENV_NAMES } from '../../config';
import { SEARCH_ATTRIBUTES } from '../../scripts/stack/temporal';

/**
 * There is no Docker engine on the development machines, so docker-compose.yml is checked here
 * against what the code expects: every service, port, dependency and environment variable.
 */
type Service = {
  image?: string;
  build?: string;
  command?: string[];
  entrypoint?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
};

const ROOT = path.resolve(__dirname, '..', '..');
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const svc = (name: string): Service => {
  const s = compose.services[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
};

describe('docker-compose.yml', () => {
  it('has the whole stack', () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      [
        'agentina-api',
        'agentina-keys',
        'agentina-migrate',
        'agentina-worker',
        'postgresql',
        'temporal',
        'temporal-schema',
        'temporal-setup',
        'temporal-ui',
      ].sort(),
    );
  });

  it('runs PostgreSQL 16 with a health check and a named volume', () => {
    const pg = svc('postgresql');
    expect(pg.image).toBe('postgres:16');
    expect(pg.volumes).toContain('pgdata:/var/lib/postgresql/data');
    expect(compose.volumes).toHaveProperty('pgdata');
  });

  it('sets up Temporal on PostgreSQL: schema job, then server, then namespace + search attributes', () => {
    expect(svc('temporal-schema').image).toMatch(/^temporalio\/admin-tools:/);
    expect(svc('temporal-schema').depends_on).toEqual({ postgresql: { condition: 'service_healthy' } });
    const server = svc('temporal');
    expect(server.image).toMatch(/^temporalio\/server:/);
    expect(server.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql' });
    // The frontend is admin power over every lifecycle: reachable on the compose network only.
    expect(server.ports ?? []).toEqual([]);
    for (const [name, s] of Object.entries(compose.services))
      expect([name, (s.ports ?? []).filter((p) => /(^|:)7233($|:)/.test(p))]).toEqual([name, []]);
    expect(server.depends_on).toEqual({ 'temporal-schema': { condition: 'service_completed_successfully' } });
    expect(svc('temporal-setup').depends_on).toEqual({ temporal: { condition: 'service_healthy' } });
    const setupScript = readFileSync(path.join(ROOT, 'scripts/compose/temporal-setup.sh'), 'utf8');
    for (const attr of SEARCH_ATTRIBUTES) expect(setupScript).toContain(attr);
    expect(setupScript).toMatch(/--type Keyword/);
    for (const s of ['temporal-schema', 'temporal-setup']) {
      const script = svc(s).entrypoint?.[1]?.replace('/scripts/', 'scripts/compose/');
      expect(script && existsSync(path.join(ROOT, script))).toBe(true);
    }
  });

  it('serves the Temporal UI on the host loopback :8080 only', () => {
    expect(svc('temporal-ui').ports).toEqual(['127.0.0.1:8080:8080']);
    expect(svc('temporal-ui').environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
  });

  it('builds the API and worker from the repository Dockerfile, in order after migrate, keys and Temporal setup', () => {
    expect(existsSync(path.join(ROOT, 'Dockerfile'))).toBe(true);
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/ENTRYPOINT \["node", "bin\/agentina.js"\]/);
    // Both stages on the Node 24 LTS image.
    expect(dockerfile.match(/^FROM .*/gm)).toEqual([
      'FROM node:24-bookworm-slim AS deps',
      'FROM node:24-bookworm-slim',
    ]);
    expect(dockerfile).toMatch(/^USER agentina$/m);
    for (const name of ['agentina-api', 'agentina-worker']) {
      const s = svc(name);
      expect(s.build).toBe('.');
      expect(s.depends_on).toEqual({
        'agentina-migrate': { condition: 'service_completed_successfully' },
        'agentina-keys': { condition: 'service_completed_successfully' },
        'temporal-setup': { condition: 'service_completed_successfully' },
      });
    }
    expect(svc('agentina-api').command).toEqual(['serve']);
    expect(svc('agentina-worker').command).toEqual(['worker']);
    expect(svc('agentina-migrate').command).toEqual(['migrate']);
    expect(svc('agentina-api').ports).toContain('3000:3000');
  });

  it('gives the agentina services only environment variables the code reads, with the names it expects', () => {
    for (const name of ['agentina-api', 'agentina-worker', 'agentina-migrate', 'agentina-keys']) {
      const env = svc(name).environment ?? {};
      for (const key of Object.keys(env)) expect(CONFIG_ENV_NAMES).toContain(key);
      expect(env.TEMPORAL_ADDRESS).toBe('temporal:7233');
      expect(env.AGENTINA_KEYS_DIR).toBe('/var/lib/agentina/keys');
    }
    expect(svc('agentina-api').environment).toMatchObject({ HOST: '0.0.0.0', PORT: '3000' });
  });

  it('serves /metrics on its own unpublished port, and passes the Temporal TLS settings through', () => {
    const api = svc('agentina-api');
    expect(api.environment).toMatchObject({ METRICS_HOST: '0.0.0.0', METRICS_PORT: '9464' });
    expect(api.ports).toEqual(['3000:3000']);
    const worker = svc('agentina-worker');
    expect(worker.environment).toMatchObject({ WORKER_METRICS_HOST: '0.0.0.0', WORKER_METRICS_PORT: '9465' });
    expect(worker.ports).toBeUndefined();
    for (const name of ['agentina-api', 'agentina-worker'])
      for (const key of ['TEMPORAL_TLS_CERT_FILE', 'TEMPORAL_TLS_KEY_FILE', 'TEMPORAL_TLS_CA_FILE', 'TEMPORAL_API_KEY'])
        expect([name, key, svc(name).environment?.[key]]).toEqual([name, key, expect.stringMatching(/^\$\{/)]);
  });

  it('keeps the superuser URL away from the long-running API and worker', () => {
    expect(svc('agentina-migrate').environment?.DATABASE_URL).toMatch(/^postgres:\/\/postgres:/);
    for (const name of ['agentina-api', 'agentina-worker']) {
      const env = svc(name).environment ?? {};
      expect(env.DATABASE_URL).toBeUndefined();
      expect(env.APP_DATABASE_URL).toMatch(/^postgres:\/\/agentina_app:/);
    }
    expect(svc('agentina-worker').volumes).toContain('keys:/var/lib/agentina/keys:ro');
  });
});
