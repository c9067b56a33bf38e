import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildReleaseManifest, hashFile, RELEASE_LAYOUT } from '../../agent/integrity';
import { createRuntimeHasher } from '../../agent/runtime-hash';

let root: string;
let reads: string[];
const bundle = () => path.join(root, 'runtime', 'agentina-agent.js');
const hasher = () =>
  createRuntimeHasher({
    root,
    layout: RELEASE_LAYOUT,
    hash: (f) => {
      reads.push(path.relative(root, f));
      return hashFile(f);
    },
  });

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'agentina-runtime-hash-'));
  mkdirSync(path.join(root, 'runtime'));
  writeFileSync(bundle(), 'console.log("agent");\n');
  writeFileSync(path.join(root, 'runtime', 'helper.js'), 'module.exports = 1;\n');
  writeFileSync(path.join(root, 'agent-release.json'), '{}');
  reads = [];
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('the runtime hash, computed on every call', () => {
  it('equals the hash a signed manifest of the same files carries', () => {
    const expected = buildReleaseManifest(root, '1.0.0', new Date(), RELEASE_LAYOUT).runtimeHash;
    expect(hasher().current()).toBe(expected);
  });

  it('re-reads no file whose identity is unchanged', () => {
    const h = hasher();
    const first = h.current();
    expect(reads.sort()).toEqual(['runtime/agentina-agent.js', 'runtime/helper.js']);
    reads = [];
    expect(h.current()).toBe(first);
    expect(reads).toEqual([]);
  });

  it('changes when a file is rewritten, and re-reads only that file', () => {
    const h = hasher();
    const first = h.current();
    reads = [];
    writeFileSync(bundle(), 'console.log("patched");\n');
    expect(h.current()).not.toBe(first);
    expect(reads).toEqual(['runtime/agentina-agent.js']);
  });

  it('catches a same-size rewrite with the mtime set back (ctime moves)', () => {
    const h = hasher();
    const first = h.current();
    const before = statSync(bundle());
    writeFileSync(bundle(), 'console.log("agenT");\n');
    utimesSync(bundle(), before.atime, before.mtime);
    expect(statSync(bundle()).size).toBe(before.size);
    expect(h.current()).not.toBe(first);
  });

  it('catches a file replaced by another (new inode) and a file added or removed', () => {
    const h = hasher();
    const first = h.current();
    const other = path.join(root, 'other.js');
    writeFileSync(other, 'console.log("agent");\n');
    renameSync(other, bundle());
    expect(h.current()).toBe(first); // same bytes: same hash, though it was read again
    expect(reads.filter((r) => r === 'runtime/agentina-agent.js')).toHaveLength(2);
    writeFileSync(path.join(root, 'runtime', 'extra.js'), '1;\n');
    const added = h.current();
    expect(added).not.toBe(first);
    rmSync(path.join(root, 'runtime', 'extra.js'));
    rmSync(path.join(root, 'runtime', 'helper.js'));
    const removed = h.current();
    expect(removed).not.toBe(first);
    expect(removed).not.toBe(added);
  });
});
