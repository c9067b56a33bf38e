import {
  loadPurposeKeySet,
  loadPurposeSigner,
  readPublicKeySetFile,
  readSecretKeys,
  type KeyPurpose,
  type SecretKey,
  type SecretPurpose,
  type KeySet,
  type Signature,
  type Signer,
} from '../protocol';
import { AppError } from './errors';

/**
 * The signing keys of this process, read from AGENTINA_KEYS_DIR and nowhere else. Private keys
 * never leave this object: workflow payloads, logs and answers carry key ids at most.
 */
export type KeyStore = {
  readonly dir: string;
  /**
   * The `license` signer (licenses, status answers, revocation lists), loaded on first use: a
   * server started without keys still serves everything else, and what must sign refuses with
   * UNAVAILABLE and a clear message instead.
   */
  readonly license: Signer;
  /** A purpose's signer, read at each call so a rotated key is used at once (audit checkpoints). */
  signer(purpose: KeyPurpose): Signer;
  /** A purpose's trusted public keys (current and retired), read at each call so rotations apply. */
  keySet(purpose: KeyPurpose): KeySet;
  /** A purpose's published public key file, as served at /.well-known/agentina-keys.json. */
  publicKeySet(purpose: KeyPurpose): ReturnType<typeof readPublicKeySetFile>;
  /**
   * A symmetric purpose's secrets, the one in use last; read at each call so a rotation applies at
   * once. UNAVAILABLE (with what to run) when the keys directory has none.
   */
  secrets(purpose: SecretPurpose): SecretKey[];
};

export function createKeyStore(dir: string): KeyStore {
  let license: Signer | undefined;
  const getLicense = (): Signer => {
    if (license) return license;
    try {
      license = loadPurposeSigner(dir, 'license');
    } catch {
      throw new AppError('UNAVAILABLE', 'This server has no license signing key; run `agentina keys ensure`.');
    }
    return license;
  };
  return {
    dir,
    license: {
      get kid() {
        return getLicense().kid;
      },
      get publicKeyPem() {
        return getLicense().publicKeyPem;
      },
      sign(value: unknown): Signature {
        return getLicense().sign(value);
      },
    },
    signer: (purpose) => loadPurposeSigner(dir, purpose),
    keySet: (purpose) => loadPurposeKeySet(dir, purpose),
    publicKeySet: (purpose) => readPublicKeySetFile(dir, purpose),
    secrets(purpose) {
      try {
        return readSecretKeys(dir, purpose);
      } catch {
        throw new AppError(
          'UNAVAILABLE',
          `This server has no usable ${purpose} secret; run \`agentina keys ensure\` (the file must be mode 0600).`,
        );
      }
    },
  };
}
