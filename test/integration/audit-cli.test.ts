import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../config';
import { ROOT } from '../../scripts/stack/tools';

/** `agentina keys generate` and the audit settings, through the real CLI entry point. */
function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin', 'agentina.js'), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'agentina-keys-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('keys generate --purpose audit writes a 0600 key, prints its id and public key path, never the private key', async () => {
  const first = await cli(['keys', 'generate', '--purpose', 'audit'], { AGENTINA_KEYS_DIR: dir });
  expect(first.code).toBe(0);
  const kid = /audit: key id (\S+)/.exec(first.stdout)?.[1];
  expect(kid).toMatch(/^audit-\d{8}-[0-9a-f]{8}$/);
  expect(first.stdout).toContain(path.join(dir, 'audit.pub.json'));
  expect(first.stdout + first.stderr).not.toMatch(/PRIVATE KEY|privateKeyPem/);
  expect(statSync(path.join(dir, 'audit.key')).mode & 0o777).toBe(0o600);
  // Rotation keeps the old public key so old checkpoints still verify.
  const second = await cli(['keys', 'generate', '--purpose', 'audit'], { AGENTINA_KEYS_DIR: dir });
  const kid2 = /audit: key id (\S+)/.exec(second.stdout)?.[1];
  expect(kid2).not.toBe(kid);
  const set = JSON.parse(readFileSync(path.join(dir, 'audit.pub.json'), 'utf8')) as { keys: Array<{ kid: string }> };
  expect(set.keys.map((k) => k.kid)).toEqual([kid, kid2]);
  // Without --purpose: only the purposes that have no key yet.
  const rest = await cli(['keys', 'generate'], { AGENTINA_KEYS_DIR: dir });
  expect(rest.stdout).toMatch(/license: key id/);
  expect(rest.stdout).toMatch(/release: key id/);
  expect(rest.stdout).not.toMatch(/audit: key id/);
  // The symmetric secrets (origin proofs, sealed task headers): 0600, never printed.
  for (const p of ['update-origin', 'task-secrets', 'totp-secrets', 'webhook-secrets', 'agent-sessions']) {
    expect(rest.stdout).toMatch(new RegExp(`${p}: secret id ${p}-\\d{8}-[0-9a-f]{8}`));
    const file = path.join(dir, `${p}.secret.json`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const { secret } = (JSON.parse(readFileSync(file, 'utf8')) as { keys: Array<{ secret: string }> }).keys[0]!;
    expect(rest.stdout + rest.stderr).not.toContain(secret);
  }
  const rotated = await cli(['keys', 'generate', '--purpose', 'update-origin'], { AGENTINA_KEYS_DIR: dir });
  expect(rotated.code).toBe(0);
  const origin = JSON.parse(readFileSync(path.join(dir, 'update-origin.secret.json'), 'utf8')) as { keys: unknown[] };
  expect(origin.keys).toHaveLength(2);
  // `keys ensure` (the compose job) is idempotent.
  const ensured = await cli(['keys', 'ensure'], { AGENTINA_KEYS_DIR: dir });
  expect(ensured).toMatchObject({ code: 0 });
  expect(ensured.stdout).toContain('every purpose already has a key');
  expect((await cli(['keys', 'generate', '--purpose', 'nuclear'], { AGENTINA_KEYS_DIR: dir })).code).toBe(2);
  expect((await cli(['audit', 'verify', '--from', 'x'], { AGENTINA_KEYS_DIR: dir })).code).toBe(2);
});

it('AUDIT_CHECKPOINT_INTERVAL is a bounded duration, 10 minutes by default', () => {
  expect(loadConfig({}).audit.checkpointIntervalMs).toBe(600_000);
  expect(loadConfig({ AUDIT_CHECKPOINT_INTERVAL: '30s' }).audit.checkpointIntervalMs).toBe(30_000);
  expect(loadConfig({ AUDIT_CHECKPOINT_INTERVAL: '2h' }).audit.checkpointIntervalMs).toBe(7_200_000);
  expect(loadConfig({ AUDIT_CHECKPOINT_INTERVAL: '90' }).audit.checkpointIntervalMs).toBe(90_000);
  for (const bad of ['0s', '10 minutes', '-5m', '25h', ''])
    expect(() => loadConfig({ AUDIT_CHECKPOINT_INTERVAL: bad })).toThrow(/AUDIT_CHECKPOINT_INTERVAL/);
  expect(loadConfig({}).audit.checkpointDir).toBeUndefined();
  expect(loadConfig({ AUDIT_CHECKPOINT_DIR: 'held/checkpoints' }).audit.checkpointDir).toBe(
    path.resolve('held/checkpoints'),
  );
});
