import { loadPurposeSigner, type Signature, type Signer } from '../protocol';
import { AppError } from './errors';

/**
 * The `license` purpose signer (licenses, status answers, revocation lists), read from the key
 * files on first use: an API started without keys still serves everything else, and the routes
 * that must sign answer 503 with a clear message instead.
 */
export function createLazyLicenseSigner(keysDir: string): Signer {
  let signer: Signer | undefined;
  const get = (): Signer => {
    if (signer) return signer;
    try {
      signer = loadPurposeSigner(keysDir, 'license');
    } catch {
      throw new AppError('UNAVAILABLE', 'The license signing key is not configured on this server.');
    }
    return signer;
  };
  return {
    get kid() {
      return get().kid;
    },
    get publicKeyPem() {
      return get().publicKeyPem;
    },
    sign(value: unknown): Signature {
      return get().sign(value);
    },
  };
}
