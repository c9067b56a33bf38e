import {
  appendFileSync,
  chownSync,
  existsSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { hashFile, RELEASE_LAYOUT, RELEASE_NODE } from '../../agent/integrity';
import { createRuntimeHasher } from '../../agent/runtime-hash';
import { buildAgentRelease } from '../../scripts/build-agent-manifest';
import { PINNED } from '../../scripts/node-runtime';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { makeSelfSignedCert, makeTestKeys, startFakeControlPlane, type FakeControlPlane } from '../support/agent-fakes';
import { ensureAgentUser, makePublicDir, makeUserDir, runAgentCommand, type AgentUser } from '../support/agent-user';
import { startTestServer } from '../support/server';
import { makeRelease } from '../support/tuf';

/**
 * `agentina-agent run` updating itself, as a real process of an unprivileged user: the check at
 * start installs the newer release from the TUF repository, the pinned runtime starts it, and a
 * release that fails its start is rolled back to the previous one, which then runs. The releases
 * here are small stand-ins that record that they ran and exit (0, or 3 for a failed start); the
 * last one carries the real pinned Node interpreter, which runs it.
 */
jest.setTimeout(120_000);

const cert = makeSelfSignedCert();
const keys = makeTestKeys();
let db: TestDatabase;
let repo: Awaited<ReturnType<typeof startTestServer>>;
let server: FakeControlPlane;
let user: AgentUser;
let home: string;
let pub: string;
let prefix: string;
let entry: string;

beforeAll(async () => {
  user = ensureAgentUser();
  server = await startFakeControlPlane({ keys, cert });
  db = await createTestDatabase('agent_self_update');
  repo = await startTestServer({ pool: db.pool, env: { AGENTINA_KEYS_DIR: keys.dir } });
  await repo.services.releases.repository.init();
  home = makeUserDir(user, 'selfupdate-home');
  pub = makePublicDir('selfupdate-pub');
  prefix = path.join(home, 'prefix');
  const release = buildAgentRelease({ keysDir: keys.dir, outDir: pub });
  entry = release.entry;
  writeFileSync(path.join(pub, 'ca.pem'), cert.cert, { mode: 0o644 });
  writeFileSync(
    path.join(pub, 'tuf-root.json'),
    await (await fetch(`${repo.baseUrl}/v1/dist/metadata/1.root.json`)).text(),
    { mode: 0o644 },
  );
  const activated = await runAgentCommand(
    user,
    home,
    [
      'activate',
      '--user',
      ...Object.entries({
        server: server.url,
        token: server.issueToken(),
        prefix,
        keys: release.trustedKeysFile,
        ca: path.join(pub, 'ca.pem'),
        manifest: release.manifestFile,
        'tuf-root': path.join(pub, 'tuf-root.json'),
      }).flatMap(([flag, value]) => [`--${flag}`, value]),
    ],
    { entry },
  );
  expect(activated.code).toBe(0);
  // Development mode: the prefix's settings are the user's; the repository here is plain HTTP.
  const settingsFile = path.join(prefix, 'settings.json');
  const settings = JSON.parse(readFileSync(settingsFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(settingsFile, JSON.stringify({ ...settings, distUrl: `${repo.baseUrl}/v1/dist` }), { mode: 0o600 });
  chownSync(settingsFile, user.uid, user.gid);
});

afterAll(async () => {
  await repo?.close();
  await server?.close();
  await db?.drop();
  if (home) rmSync(home, { recursive: true, force: true });
  if (pub) rmSync(pub, { recursive: true, force: true });
  keys.remove();
});

/** A stand-in release: records its version and arguments in the prefix, then exits with `code`. */
async function publish(version: string, code: number) {
  const runtime =
    `#!/usr/bin/env node\nconst fs = require('node:fs');\nconst p = process.argv[process.argv.indexOf('--prefix') + 1];\n` +
    `fs.appendFileSync(p + '/ran.log', '${version} ' + process.argv.slice(2).join(' ') + '\\n');\nprocess.exit(${code});\n`;
  await repo.services.releases.publish(
    { kind: 'system', id: 'self-update-test' },
    makeRelease(keys.release, version, {
      'runtime/agentina-agent.js': runtime,
    }),
  );
}

const run = () => runAgentCommand(user, home, ['run', '--user', '--prefix', prefix], { entry });
const ran = () => (existsSync(path.join(prefix, 'ran.log')) ? readFileSync(path.join(prefix, 'ran.log'), 'utf8') : '');
const events = () =>
  readFileSync(path.join(prefix, 'journal', 'journal.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; version?: string; to?: string | null });

it('installs the newer release at start and hands over to it', async () => {
  await publish('9.0.0', 0);
  const r = await run();
  expect(r.code).toBe(0);
  expect(ran()).toBe('9.0.0 run --user --prefix ' + prefix + '\n');
  expect(readlinkSync(path.join(prefix, 'versions', 'current'))).toBe('9.0.0');
  expect(
    events()
      .filter((e) => e.event.startsWith('update.'))
      .map((e) => [e.event, e.version]),
  ).toEqual([
    ['update.installed', '9.0.0'],
    ['update.starting', '9.0.0'],
  ]);
});

it('a release that fails its start is rolled back, and the previous one runs', async () => {
  rmSync(path.join(prefix, 'ran.log'));
  await publish('9.1.0', 3);
  const r = await run();
  expect(r.code).toBe(0);
  expect(
    ran()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ')[0]),
  ).toEqual(['9.1.0', '9.0.0']);
  expect(readlinkSync(path.join(prefix, 'versions', 'current'))).toBe('9.0.0');
  expect(events().find((e) => e.event === 'update.rolled_back')).toMatchObject({ version: '9.1.0', to: '9.0.0' });
  // The failed release is not installed again.
  rmSync(path.join(prefix, 'ran.log'));
  expect((await run()).code).toBe(0);
  expect(
    ran()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ')[0]),
  ).toEqual(['9.0.0']);
});

it('a release carrying the pinned Node runs on that interpreter, and its runtime hash covers it', async () => {
  rmSync(path.join(prefix, 'ran.log'), { force: true });
  // The interpreter `npm run agent:build` put into the pinned runtime: the project's own Node.
  const pinnedNode = path.join(pub, RELEASE_NODE);
  const runtime =
    `#!/usr/bin/env node\nconst fs = require('node:fs');\nconst p = process.argv[process.argv.indexOf('--prefix') + 1];\n` +
    `fs.appendFileSync(p + '/ran.log', '9.2.0 ' + process.execPath + ' ' + process.version + '\\n');\n`;
  await repo.services.releases.publish(
    { kind: 'system', id: 'self-update-test' },
    makeRelease(keys.release, '9.2.0', {
      'runtime/agentina-agent.js': runtime,
      [RELEASE_NODE]: readFileSync(pinnedNode),
    }),
  );
  // The pinned runtime itself runs on the interpreter it carries, as the systemd unit starts it.
  const r = await runAgentCommand(user, home, ['run', '--user', '--prefix', prefix], { entry, node: pinnedNode });
  expect(r.code).toBe(0);
  const dir = path.join(prefix, 'versions', '9.2.0');
  expect(readlinkSync(path.join(prefix, 'versions', 'current'))).toBe('9.2.0');
  expect(ran()).toBe(`9.2.0 ${realpathSync(path.join(dir, RELEASE_NODE))} v${PINNED.version}\n`);
  expect(hashFile(path.join(dir, RELEASE_NODE))).toEqual(hashFile(pinnedNode));

  // The runtime hash heartbeats report, over the running version's files, is the signed one...
  const signed = JSON.parse(readFileSync(path.join(dir, RELEASE_LAYOUT.manifest), 'utf8')) as {
    manifest: { runtimeHash: string; files: Array<{ path: string }> };
  };
  expect(signed.manifest.files.map((f) => f.path)).toContain(RELEASE_NODE);
  const hasher = createRuntimeHasher({ root: dir, layout: RELEASE_LAYOUT });
  expect(hasher.current()).toBe(signed.manifest.runtimeHash);
  // ...until one byte of the interpreter changes: then the hash differs, and the pinned runtime
  // refuses to start the release again (rolled back to the previous one, which runs).
  appendFileSync(path.join(dir, RELEASE_NODE), Buffer.from([0]));
  expect(hasher.current()).not.toBe(signed.manifest.runtimeHash);
  rmSync(path.join(prefix, 'ran.log'));
  expect(
    (await runAgentCommand(user, home, ['run', '--user', '--prefix', prefix], { entry, node: pinnedNode })).code,
  ).toBe(0);
  expect(ran().split(' ')[0]).toBe('9.0.0');
  expect(events().find((e) => e.event === 'update.rolled_back' && e.version === '9.2.0')).toBeDefined();
});
