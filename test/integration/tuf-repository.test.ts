import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mkdirSync, readdirSync } from 'node:fs';
import { releaseAction } from '../../cli/release';
import { loadPurposeSigner } from '../../protocol';
import { generatePkcs11Ed25519Key } from '../../services/releases/pkcs11-signer';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestKeysDir } from '../support/license-helpers';
import { startTestServer } from '../support/server';
import { createSoftHsmToken, SOFTHSM_MODULE } from '../support/softhsm';
import { makeRelease, pythonTufDownload } from '../support/tuf';

const SYSTEM = { kind: 'system' as const, id: 'release-test' };

describe('the release repository: TUF metadata served by the control plane, read by the reference client', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let dist: string;
  const work = mkdtempSync(path.join(tmpdir(), 'agentina-tuf-'));

  beforeAll(async () => {
    db = await createTestDatabase('tuf_repository');
    keys = createTestKeysDir();
    server = await startTestServer({ pool: db.pool, env: { AGENTINA_KEYS_DIR: keys.dir } });
    dist = `${server.baseUrl}/v1/dist`;
  });

  afterAll(async () => {
    await server?.close();
    await db?.drop();
    keys?.remove();
  });

  const releases = () => server.services.releases;

  it('publishes a release as targets; anonymous clients get versioned, cacheable metadata', async () => {
    const signer = loadPurposeSigner(keys.dir, 'release');
    const r = makeRelease(signer, '1.0.0');
    const { release, created } = await releases().publish(SYSTEM, r);
    expect(created).toBe(true);
    expect(release).toMatchObject({ version: '1.0.0', tarballTarget: 'agentina-agent-1.0.0.tar.gz', yankedAt: null });

    const ts = await fetch(`${dist}/metadata/timestamp.json`);
    expect(ts.status).toBe(200);
    expect(ts.headers.get('cache-control')).toBe('public, max-age=10');
    const tsJson = (await ts.json()) as { signed: { meta: Record<string, { version: number }> } };
    const snapVersion = tsJson.signed.meta['snapshot.json']!.version;
    const snap = await fetch(`${dist}/metadata/${snapVersion}.snapshot.json`);
    expect(snap.headers.get('cache-control')).toContain('immutable');
    const snapJson = (await snap.json()) as { signed: { meta: Record<string, { version: number }> } };
    const targets = (await (
      await fetch(`${dist}/metadata/${snapJson.signed.meta['targets.json']!.version}.targets.json`)
    ).json()) as { signed: { targets: Record<string, { hashes: { sha256: string }; length: number }> } };
    const t = targets.signed.targets['agentina-agent-1.0.0.tar.gz']!;
    expect(t.length).toBe(r.tarball.length);
    const blob = await fetch(`${dist}/targets/${t.hashes.sha256}.agentina-agent-1.0.0.tar.gz`);
    expect(blob.status).toBe(200);
    expect(Buffer.from(await blob.arrayBuffer()).equals(r.tarball)).toBe(true);
    // Other names, traversal attempts and unknown versions are plain 404s in the one error shape.
    for (const bad of ['../1.root.json', '0.root.json', '1.root.json.bak', 'x'.repeat(90), '%2e%2e%2fetc']) {
      const res = await fetch(`${dist}/metadata/${bad}`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    }
    expect((await fetch(`${dist}/targets/${'f'.repeat(64)}.agentina-agent-1.0.0.tar.gz`)).status).toBe(404);
  });

  it('python-tuf (the reference implementation) verifies the chain and downloads the release tarball', async () => {
    const rootFile = path.join(work, 'root.json');
    writeFileSync(rootFile, await (await fetch(`${dist}/metadata/1.root.json`)).text());
    const got = await pythonTufDownload({
      baseUrl: dist,
      trustedRoot: rootFile,
      target: 'agentina-agent-1.0.0.tar.gz',
      workdir: path.join(work, 'client-1'),
    });
    expect(got).toMatchObject({ ok: true, found: true, custom: { agentina: { kind: 'agent', version: '1.0.0' } } });
    if (got.ok && got.found) {
      const signer = loadPurposeSigner(keys.dir, 'release');
      expect(readFileSync(got.path).length).toBe(makeRelease(signer, '1.0.0').tarball.length);
    }
  });

  it('refuses a tarball that does not hold exactly the signed files, and a second manifest for a version', async () => {
    const signer = loadPurposeSigner(keys.dir, 'release');
    const good = makeRelease(signer, '1.1.0');
    const other = makeRelease(signer, '1.1.0', { 'runtime/agentina-agent.js': 'console.log("backdoor")' });
    await expect(releases().publish(SYSTEM, { signed: good.signed, tarball: other.tarball })).rejects.toMatchObject({
      code: 'UNPROCESSABLE',
    });
    const extra = makeRelease(signer, '1.1.0', { 'runtime/extra.js': 'x' });
    await expect(releases().publish(SYSTEM, { signed: good.signed, tarball: extra.tarball })).rejects.toMatchObject({
      code: 'UNPROCESSABLE',
    });
    await expect(
      releases().publish(SYSTEM, { signed: good.signed, tarball: Buffer.from('not a tarball') }),
    ).rejects.toMatchObject({ code: 'UNPROCESSABLE' });
    const targets = await releases().repository.currentTargets();
    expect(Object.keys(targets).some((n) => n.includes('1.1.0'))).toBe(false);
    await releases().publish(SYSTEM, good);
    await expect(releases().publish(SYSTEM, other)).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('a yanked version leaves the signed targets: the reference client no longer finds it', async () => {
    const yanked = await releases().yank({ kind: 'system', id: 'release-test' }, '1.1.0', 'bad build');
    expect(yanked.version).toBe('1.1.0');
    const got = await pythonTufDownload({
      baseUrl: dist,
      trustedRoot: path.join(work, 'root.json'),
      target: 'agentina-agent-1.1.0.tar.gz',
      workdir: path.join(work, 'client-1'),
    });
    expect(got).toEqual({ ok: true, found: false });
    await expect(releases().yank(SYSTEM, '1.1.0')).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(releases().yank(SYSTEM, '9.9.9')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const { rows } = await db.pool.query<{ action: string }>(
      `SELECT action FROM audit_events WHERE action LIKE 'release.%' ORDER BY seq`,
    );
    expect(rows.map((r) => r.action)).toEqual(['release.published', 'release.published', 'release.yanked']);
  });

  it('`agentina release publish DIR` publishes what the build wrote; `release export DIR` writes the served tree', async () => {
    const signer = loadPurposeSigner(keys.dir, 'release');
    const r = makeRelease(signer, '1.2.0');
    const dir = path.join(work, 'build-1.2.0');
    for (const [rel, body] of Object.entries(r.files)) {
      mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      writeFileSync(path.join(dir, rel), body);
    }
    writeFileSync(path.join(dir, 'agent-release.json'), JSON.stringify(r.signed));
    const out: string[] = [];
    expect(await releaseAction(server.services, 'publish', [dir], (l) => out.push(l))).toBe(0);
    expect(out.join('\n')).toContain('published 1.2.0 as agentina-agent-1.2.0.tar.gz');
    const exported = path.join(work, 'export');
    expect(await releaseAction(server.services, 'export', [exported], (l) => out.push(l))).toBe(0);
    for (const name of readdirSync(path.join(exported, 'metadata'))) {
      const res = await fetch(`${dist}/metadata/${name}`);
      expect(Buffer.from(await res.arrayBuffer()).equals(readFileSync(path.join(exported, 'metadata', name)))).toBe(
        true,
      );
    }
    const { items } = await releases().list({});
    expect(items.map((i) => [i.version, i.yankedAt === null])).toEqual([
      ['1.2.0', true],
      ['1.1.0', false],
      ['1.0.0', true],
    ]);
  });

  it('the export is the same tree a static origin serves', async () => {
    const files = await releases().repository.exportFiles();
    for (const [rel, body] of files) {
      const res = await fetch(`${dist}/${rel}`);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
    }
    expect(files.map(([p]) => p)).toEqual(expect.arrayContaining(['metadata/1.root.json', 'metadata/timestamp.json']));
  });
});

describe('the release repository with its targets key on a PKCS#11 token', () => {
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let server: Awaited<ReturnType<typeof startTestServer>>;
  const work = mkdtempSync(path.join(tmpdir(), 'agentina-tuf-hsm-'));

  afterAll(async () => {
    await server?.close();
    await db?.drop();
    keys?.remove();
  });

  it('signs targets on the token; the control plane holds only the token label and a PIN file; python-tuf accepts it', async () => {
    const token = createSoftHsmToken();
    const pinFile = path.join(work, 'pin');
    writeFileSync(pinFile, `${token.pin}\n`, { mode: 0o600 });
    generatePkcs11Ed25519Key({
      module: SOFTHSM_MODULE,
      tokenLabel: token.tokenLabel,
      keyLabel: 'agentina-targets',
      pin: token.pin,
    });
    db = await createTestDatabase('tuf_hsm');
    keys = createTestKeysDir();
    server = await startTestServer({
      pool: db.pool,
      env: {
        AGENTINA_KEYS_DIR: keys.dir,
        RELEASE_SIGNER: 'pkcs11',
        RELEASE_PKCS11_MODULE: SOFTHSM_MODULE,
        RELEASE_PKCS11_TOKEN: token.tokenLabel,
        RELEASE_PKCS11_PIN_FILE: pinFile,
      },
    });
    const releases = server.services.releases;
    // With an HSM the root keys are offline: nothing is published before `release init`.
    const signer = loadPurposeSigner(keys.dir, 'release');
    await expect(releases.publish(SYSTEM, makeRelease(signer, '2.0.0'))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await releases.repository.init();
    await releases.publish(SYSTEM, makeRelease(signer, '2.0.0'));
    const dist = `${server.baseUrl}/v1/dist`;
    const root = JSON.parse(await (await fetch(`${dist}/metadata/1.root.json`)).text()) as {
      signed: { roles: Record<string, { keyids: string[] }> };
    };
    const targetsKeyId = root.signed.roles.targets!.keyids[0]!;
    expect(readFileSync(path.join(keys.dir, 'tuf-online.key'), 'utf8')).not.toContain(targetsKeyId);
    const rootFile = path.join(work, 'root.json');
    writeFileSync(rootFile, JSON.stringify(root));
    const got = await pythonTufDownload({
      baseUrl: dist,
      trustedRoot: rootFile,
      target: 'agentina-agent-2.0.0.tar.gz',
      workdir: path.join(work, 'client'),
    });
    expect(got).toMatchObject({ ok: true, found: true });
    expect(server.logs.text()).not.toContain(token.pin);
  });
});
