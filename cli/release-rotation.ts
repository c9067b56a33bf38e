import { existsSync, renameSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from '../config';
import type { Actor } from '../protocol';
import type { Services } from '../services';
import { AppError } from '../services/errors';
import { releaseKeysFromConfig } from '../services/releases/release-keys';
import { fileReleaseSigner } from '../services/releases/signers';

/**
 * `agentina release rotate-root` and `rotate-targets`: run where the root key files are (they are
 * offline in production). New keys are made beside the old ones as `<name>.next`; the repository
 * writes root N+1 signed by the current root keys and by the new ones (both thresholds), audited;
 * only then are the old files renamed `<name>.retired-v<N>` and the new ones put in their place, so
 * the next open of the repository signs with the keys root N+1 names. A `.next` file left over (a
 * rotation that failed between the commit and the renames) stops the command: it may hold the keys
 * the repository now names.
 */
export async function rotateAction(
  services: Services,
  config: Pick<Config, 'keysDir' | 'releases'>,
  what: 'root' | 'targets',
  rest: string[],
  actor: Actor,
  out: (line: string) => void,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args: rest,
    options: { keys: { type: 'string' }, threshold: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0 || (what === 'targets' && (values.keys || values.threshold))) return -2;
  const count = Number(values.keys ?? config.releases.rootKeys);
  const threshold = Number(values.threshold ?? config.releases.rootThreshold);
  if (!Number.isInteger(count) || count < 1 || count > 15 || !Number.isInteger(threshold) || threshold < 1)
    throw new AppError('BAD_REQUEST', '--keys and --threshold must be whole numbers from 1 to 15.');
  if (threshold > count) throw new AppError('BAD_REQUEST', '--threshold must not exceed --keys.');
  if (what === 'targets' && config.releases.signer.kind !== 'file')
    throw new AppError(
      'BAD_REQUEST',
      'With RELEASE_SIGNER=pkcs11 the targets key lives on the token: rotate-targets rotates only a key file.',
    );

  const file = (name: string) => path.join(config.keysDir, name);
  const names =
    what === 'root' ? Array.from({ length: count }, (_, i) => `tuf-root-${i + 1}.key`) : ['tuf-targets.key'];
  const leftOver = names.map((n) => `${n}.next`).find((n) => existsSync(file(n)));
  if (leftOver)
    throw new AppError(
      'CONFLICT',
      `${file(leftOver)} is left from an earlier rotation; see which keys the newest root names before removing it.`,
    );
  const current = releaseKeysFromConfig(config, { create: false });
  const fresh = names.map((n) => fileReleaseSigner(file(`${n}.next`), { create: true, kid: n.replace(/\.key$/, '') }));
  const { rootVersion } = await services.releases.rotateRoot(
    actor,
    what === 'root'
      ? { root: fresh, rootThreshold: threshold }
      : { root: current.root(), rootThreshold: config.releases.rootThreshold, targets: fresh[0]! },
  );
  // Committed: the files follow. The old keys are kept aside (retired), never overwritten.
  const retiring =
    what === 'root'
      ? Array.from({ length: config.releases.rootKeys }, (_, i) => `tuf-root-${i + 1}.key`)
      : ['tuf-targets.key'];
  for (const n of retiring) if (existsSync(file(n))) renameSync(file(n), file(`${n}.retired-v${rootVersion - 1}`));
  for (const n of names) renameSync(file(`${n}.next`), file(n));
  out(
    what === 'root'
      ? `root rotated to version ${rootVersion}: ${threshold} of ${count} new root keys (${fresh.map((k) => k.keyId.slice(0, 12)).join(', ')})`
      : `targets key rotated in root version ${rootVersion} (${fresh[0]!.keyId.slice(0, 12)})`,
  );
  if (what === 'root' && (count !== config.releases.rootKeys || threshold !== config.releases.rootThreshold))
    out(`set RELEASE_ROOT_KEYS=${count} and RELEASE_ROOT_THRESHOLD=${threshold} for the next rotation`);
  return 0;
}
