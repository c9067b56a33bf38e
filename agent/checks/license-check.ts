import {
  agentFeatures,
  featureLimit,
  fingerprintCommitment,
  MAX_CONCURRENT_FEATURE,
  taskEntitlement,
  type EntitlementVerdict,
  verifySignedLicense,
  type FingerprintHashes,
  type KeySet,
  type SignedLicense,
} from '../../protocol';
import { fail, pass, type Check } from './check';

const DAY_MS = 86_400_000;

/**
 * Check 1: the license document. Re-verified from its bytes at every evaluation: signature
 * against the pinned license key set, validity window (notBefore … expiresAt + graceDays), and
 * the binding to this agent's id and its activation fingerprint commitment.
 */
export function createLicenseCheck(input: {
  keys: KeySet;
  agentId: string;
  licenseId: string;
  salt: string;
  recorded: FingerprintHashes;
  license: SignedLicense | null;
}) {
  const commitment = fingerprintCommitment(input.salt, input.recorded);
  let license: unknown = input.license;

  function bindingProblem(doc: SignedLicense['document']): string | null {
    if (doc.licenseId !== input.licenseId) return 'the license document names another license';
    if (doc.agentId !== input.agentId) return 'the license document is bound to another agent';
    if (doc.fingerprintCommitment !== commitment) return 'the license document is bound to another machine';
    return null;
  }

  const check: Check & {
    replace(next: SignedLicense): boolean;
    current(): unknown;
    version(): number | null;
    entitles(kind: string): EntitlementVerdict;
  } = {
    name: 'license',
    async evaluate(now) {
      if (license === null || license === undefined) return fail('LICENSE_MISSING', 'no license document is installed');
      const v = verifySignedLicense(license, input.keys);
      if (!v.ok) return fail('LICENSE_TAMPERED', `license document rejected: ${v.code}`);
      const doc = v.document;
      const problem = bindingProblem(doc);
      if (problem) return fail('LICENSE_BINDING', problem);
      const t = now.getTime();
      if (t < Date.parse(doc.notBefore))
        return fail('LICENSE_NOT_YET_VALID', `the license is valid from ${doc.notBefore}`);
      if (t > Date.parse(doc.expiresAt) + doc.graceDays * DAY_MS)
        return fail('LICENSE_EXPIRED', `the license expired at ${doc.expiresAt} (+${doc.graceDays} grace days)`);
      return pass;
    },
    /** Installs a newer authentic document bound to this agent (a renewal); refuses anything else. */
    replace(next) {
      const v = verifySignedLicense(next, input.keys);
      if (!v.ok || bindingProblem(v.document)) return false;
      const cur = verifySignedLicense(license, input.keys);
      if (cur.ok && v.document.version <= cur.document.version) return false;
      license = next;
      return true;
    },
    current: () => license,
    /**
     * Whether the document held grants a task of this kind, read from its verified, bound bytes
     * (a document issued before entitlements: see agentFeatures). `tasks.max_concurrent: 0`
     * grants none; the agent runs one at a time, inside any larger cap.
     */
    entitles(kind) {
      const v = verifySignedLicense(license, input.keys);
      if (!v.ok || bindingProblem(v.document))
        return {
          ok: false,
          code: 'NOT_ENTITLED',
          feature: 'license',
          message: 'no authentic license document is held',
        };
      const features = agentFeatures(v.document.features);
      if (featureLimit(features, MAX_CONCURRENT_FEATURE) === 0)
        return {
          ok: false,
          code: 'NOT_ENTITLED',
          feature: MAX_CONCURRENT_FEATURE,
          message: `the license grants ${MAX_CONCURRENT_FEATURE} = 0: no task may run`,
        };
      return taskEntitlement(features, kind);
    },
    /** The version of the authentic document held, or null. */
    version() {
      const v = verifySignedLicense(license, input.keys);
      return v.ok ? v.document.version : null;
    },
  };
  return check;
}
