import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/**
 * SoftHSM reads SOFTHSM2_CONF from the real process environment when its module initialises, and
 * Jest gives each test file a copy of process.env, so the global setup points it at a token
 * directory of the test run (inherited by every Jest worker) and each test makes its own token.
 */
export function prepareSoftHsm(): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentina-hsm-'));
  mkdirSync(path.join(dir, 'tokens'));
  const conf = path.join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${path.join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  process.env.SOFTHSM2_CONF = conf;
  process.env.AGENTINA_TEST_SOFTHSM_DIR = dir;
}

export function removeSoftHsm(): void {
  const dir = process.env.AGENTINA_TEST_SOFTHSM_DIR;
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** A new token (unique label) in the test run's SoftHSM directory. */
export function createSoftHsmToken(): { tokenLabel: string; pin: string; soPin: string } {
  if (!process.env.SOFTHSM2_CONF) throw new Error('SOFTHSM2_CONF is not set (test/support/global-setup.ts sets it)');
  const tokenLabel = `agentina-${randomBytes(4).toString('hex')}`;
  const pin = `user-pin-${randomBytes(4).toString('hex')}`;
  const soPin = `so-pin-${randomBytes(4).toString('hex')}`;
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', tokenLabel, '--pin', pin, '--so-pin', soPin], {
    stdio: 'ignore',
  });
  return { tokenLabel, pin, soPin };
}
