import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

function run(bin: string, args: string[]) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', bin), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
    timeout: 30000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A newcomer's first command is `--help`: both CLIs answer it with their usage and exit 0. */
describe('--help and -h', () => {
  jest.setTimeout(60000);

  it.each([['--help'], ['-h'], ['(no arguments)']])('agentina %s prints the usage on stdout', (arg) => {
    const r = run('agentina.js', arg.startsWith('(') ? [] : [arg]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: agentina <command>/);
    expect(r.out).toContain('audit export');
    expect(r.err).toBe('');
  });

  it.each([
    ['audit', /agentina audit verify/],
    ['keys', /agentina keys generate/],
    ['backup', /agentina backup --out FILE --passphrase-file P\|-/],
    ['restore', /agentina restore FILE --passphrase-file P\|- \[--force\]/],
    ['reconcile', /agentina reconcile \[--dry-run\]/],
  ])('agentina %s --help shows that command without running it', (cmd, usage) => {
    const r = run('agentina.js', [cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(usage);
  });

  it('an unknown command is a usage error on stderr', () => {
    const r = run('agentina.js', ['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^unknown command: frobnicate/);
  });

  it.each([['--help'], ['-h']])('agentina-agent %s prints the usage', (flag) => {
    const r = run('agentina-agent.js', [flag]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usage:/);
    expect(r.out).toContain('Development mode');
  });

  it('agentina-agent activate --help shows the usage instead of activating', () => {
    const r = run('agentina-agent.js', ['activate', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/agentina-agent activate --token/);
  });
});
