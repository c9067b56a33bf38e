import { createPrivateKey } from 'node:crypto';
import nacl from 'tweetnacl';
import { licenseDocumentFor } from '../../services/licenses/license-views';
import type { LicenseRow } from '../../db/licenses-repo';
import {
  canonicalBytes,
  generatePurposeKey,
  keyFilePaths,
  loadPurposeKeySet,
  loadPurposeSigner,
  readKeyFile,
  signLicense,
  verifySignedLicense,
  type SignedLicense,
} from '../../protocol';
import { createTestKeysDir } from '../support/license-helpers';

/** Signed license documents: node:crypto signs, tweetnacl (the browser's check) agrees byte for byte. */
describe('signed license documents', () => {
  let keys: ReturnType<typeof createTestKeysDir>;
  beforeAll(() => {
    keys = createTestKeysDir();
  });
  afterAll(() => keys.remove());

  const row: LicenseRow = {
    id: 'lic_signaturetest00000001',
    customer_id: 'cus_signaturetest00000001',
    plan: 'enterprise',
    features: { seats: 50, sso: true, region: 'eu-west' },
    max_agents: 10,
    state: 'active',
    version: 4,
    not_before: new Date('2026-01-01T00:00:00.000Z'),
    expires_at: new Date('2027-01-01T00:00:00.000Z'),
    trial_ends_at: null,
    trial_end_state: 'expired',
    grace_days: 7,
    state_reason: null,
    policy_id: null,
    policy_version: null,
    created_at: new Date('2026-01-01T00:00:00.000Z'),
    updated_at: new Date('2026-06-01T00:00:00.000Z'),
  };
  const binding = { agentId: 'agt_signaturetest00000001', fingerprintCommitment: 'ab'.repeat(32) };
  const issuedAt = new Date('2026-06-02T00:00:00.000Z');

  /** The tweetnacl secret key (seed ‖ public key) of the `license` key file. */
  function naclKeyPair() {
    const file = readKeyFile(keyFilePaths(keys.dir, 'license').privateKey);
    const jwk = createPrivateKey(file.privateKeyPem).export({ format: 'jwk' });
    return nacl.sign.keyPair.fromSeed(new Uint8Array(Buffer.from(jwk.d!, 'base64url')));
  }

  it('signs with the key from the key files and verifies against the key set', () => {
    const signed = signLicense(loadPurposeSigner(keys.dir, 'license'), licenseDocumentFor(row, issuedAt, binding));
    expect(signed.document).toMatchObject({
      licenseId: row.id,
      customerId: row.customer_id,
      maxAgents: 10,
      graceDays: 7,
      version: 4,
      agentId: binding.agentId,
      fingerprintCommitment: binding.fingerprintCommitment,
    });
    expect(signed.signature.kid).toBe(readKeyFile(keyFilePaths(keys.dir, 'license').privateKey).kid);
    expect(verifySignedLicense(signed, loadPurposeKeySet(keys.dir, 'license'))).toEqual({
      ok: true,
      document: signed.document,
    });
  });

  it('tweetnacl produces the same signature bytes for the same key and accepts node:crypto signatures', () => {
    const signed = signLicense(loadPurposeSigner(keys.dir, 'license'), licenseDocumentFor(row, issuedAt, binding));
    const pair = naclKeyPair();
    const message = new Uint8Array(canonicalBytes(signed.document));
    const naclSig = nacl.sign.detached(message, pair.secretKey);
    expect(Buffer.from(naclSig).toString('base64')).toBe(signed.signature.sig);
    expect(
      nacl.sign.detached.verify(message, new Uint8Array(Buffer.from(signed.signature.sig, 'base64')), pair.publicKey),
    ).toBe(true);
  });

  it('node:crypto accepts a document signed by tweetnacl, and both reject a tampered one', () => {
    const pair = naclKeyPair();
    const document = licenseDocumentFor(row, issuedAt);
    const kid = loadPurposeSigner(keys.dir, 'license').kid;
    const naclSigned: SignedLicense = {
      document,
      signature: {
        alg: 'Ed25519',
        kid,
        sig: Buffer.from(nacl.sign.detached(new Uint8Array(canonicalBytes(document)), pair.secretKey)).toString(
          'base64',
        ),
      },
    };
    const keySet = loadPurposeKeySet(keys.dir, 'license');
    expect(verifySignedLicense(naclSigned, keySet).ok).toBe(true);
    const tampered = { ...naclSigned, document: { ...document, expiresAt: '2099-01-01T00:00:00.000Z' } };
    expect(verifySignedLicense(tampered, keySet)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
    const sig = new Uint8Array(Buffer.from(naclSigned.signature.sig, 'base64'));
    expect(nacl.sign.detached.verify(new Uint8Array(canonicalBytes(tampered.document)), sig, pair.publicKey)).toBe(
      false,
    );
  });

  it('rejects unknown fields, unknown keys, and keeps verifying old documents after a rotation', () => {
    const keySet = loadPurposeKeySet(keys.dir, 'license');
    const signed = signLicense(loadPurposeSigner(keys.dir, 'license'), licenseDocumentFor(row, issuedAt));
    expect(
      verifySignedLicense({ ...signed, document: { ...signed.document, maxAgents: 1000, extra: 'x' } }, keySet),
    ).toEqual({ ok: false, code: 'MALFORMED' });
    expect(verifySignedLicense({ ...signed, signature: { ...signed.signature, kid: 'someone-else' } }, keySet)).toEqual(
      { ok: false, code: 'UNKNOWN_KEY' },
    );
    expect(() =>
      signLicense(loadPurposeSigner(keys.dir, 'license'), {
        ...licenseDocumentFor(row, issuedAt),
        plan: 'x'.repeat(101),
      }),
    ).toThrow();
    generatePurposeKey(keys.dir, 'license');
    const rotated = loadPurposeSigner(keys.dir, 'license');
    expect(rotated.kid).not.toBe(signed.signature.kid);
    const after = loadPurposeKeySet(keys.dir, 'license');
    expect(verifySignedLicense(signed, after).ok).toBe(true);
    expect(verifySignedLicense(signLicense(rotated, licenseDocumentFor(row, issuedAt)), after).ok).toBe(true);
  });

  it('an unconverted trial that ends expired carries no grace days in its document', () => {
    const trial = {
      ...row,
      trial_ends_at: new Date('2026-02-01T00:00:00.000Z'),
      expires_at: new Date('2026-02-01T00:00:00.000Z'),
      state: 'trial' as const,
    };
    expect(licenseDocumentFor(trial, issuedAt)).toMatchObject({ expiresAt: '2026-02-01T00:00:00.000Z', graceDays: 0 });
    expect(licenseDocumentFor({ ...trial, trial_end_state: 'grace' }, issuedAt).graceDays).toBe(7);
  });
});
