import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../../config';
import { AppError } from '../errors';
import { pkcs11ReleaseSigner } from './pkcs11-signer';
import { fileReleaseSigner, type ReleaseSigner } from './signers';
import type { TufKeys } from './tuf-repository';

/**
 * The repository's keys from the configuration. Key files sit in the keys directory
 * (`tuf-root-<n>.key`, `tuf-targets.key`, `tuf-online.key`, 0600) and are made on first use in
 * development; with RELEASE_SIGNER=pkcs11 the targets key is on the token and only its label and
 * the PIN (from RELEASE_PKCS11_PIN_FILE, or RELEASE_PKCS11_PIN) are held here. Root keys belong
 * offline in production: they are read only by `agentina release init` (and root rotation).
 */
export function releaseKeysFromConfig(
  config: Pick<Config, 'releases' | 'keysDir'>,
  opts: { create?: boolean } = {},
): TufKeys {
  const file = (name: string) => path.join(config.keysDir, name);
  const create = opts.create ?? true;
  let targets: ReleaseSigner | undefined;
  let online: ReleaseSigner | undefined;
  return {
    root: () =>
      Array.from({ length: config.releases.rootKeys }, (_, i) =>
        fileReleaseSigner(file(`tuf-root-${i + 1}.key`), { create, kid: `tuf-root-${i + 1}` }),
      ),
    rootThreshold: config.releases.rootThreshold,
    autoInit: config.releases.signer.kind === 'file' && create,
    targets: () => {
      if (targets) return targets;
      const s = config.releases.signer;
      try {
        targets =
          s.kind === 'pkcs11'
            ? pkcs11ReleaseSigner({
                module: s.module,
                tokenLabel: s.tokenLabel,
                keyLabel: s.keyLabel,
                pin: s.pin ?? readFileSync(s.pinFile!, 'utf8').trim(),
              })
            : fileReleaseSigner(file('tuf-targets.key'), { create, kid: 'tuf-targets' });
      } catch (e) {
        throw new AppError('UNAVAILABLE', `The release signing key is not usable: ${(e as Error).message}`);
      }
      return targets;
    },
    online: () => (online ??= fileReleaseSigner(file('tuf-online.key'), { create, kid: 'tuf-online' })),
    close: () => {
      targets?.close();
      targets = undefined;
    },
  };
}
