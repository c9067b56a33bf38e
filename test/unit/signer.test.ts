import { mkdtempSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  createKeySet,
  createSigner,
  generateKeyFile,
  readKeyFile,
  verifySignature,
  writeNewKeyFile,
  ensureKeys,
  loadPurposeSigner,
  loadPurposeKeySet,
  generatePurposeKey,
} from '../../protocol';

describe('Ed25519 signer', () => {
  const keyA = generateKeyFile('key-a');
  const keyB = generateKeyFile('key-b');
  const signerA = createSigner(keyA);
  const keys = createKeySet([keyA, keyB]);

  it('signs canonical JSON: key order does not change the signature', () => {
    expect(signerA.sign({ a: 1, b: 2 })).toEqual(signerA.sign({ b: 2, a: 1 }));
  });

  it('verifies its own signature and names the key id', () => {
    const sig = signerA.sign({ licenseId: 'lic_x', v: 1 });
    expect(sig.kid).toBe('key-a');
    expect(verifySignature({ v: 1, licenseId: 'lic_x' }, sig, keys)).toEqual({ ok: true });
  });

  it('refuses a changed payload', () => {
    const sig = signerA.sign({ state: 'revoked' });
    expect(verifySignature({ state: 'active' }, sig, keys)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('refuses a signature under an unknown key id, and one relabelled with another known kid', () => {
    const sig = signerA.sign({ x: 1 });
    expect(verifySignature({ x: 1 }, { ...sig, kid: 'key-z' }, keys)).toEqual({ ok: false, code: 'UNKNOWN_KEY' });
    expect(verifySignature({ x: 1 }, { ...sig, kid: 'key-b' }, keys)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('refuses malformed signatures without throwing', () => {
    expect(verifySignature({ x: 1 }, { alg: 'Ed25519', kid: 'key-a', sig: 'AAAA' }, keys).ok).toBe(false);
    expect(verifySignature({ x: 1 }, { alg: 'RS256' as 'Ed25519', kid: 'key-a', sig: '' }, keys).ok).toBe(false);
    expect(verifySignature({ x: undefined }, signerA.sign({}), keys)).toEqual({ ok: false, code: 'MALFORMED' });
  });

  it('refuses key ids that could confuse file names or logs', () => {
    expect(() => generateKeyFile('../etc/passwd')).toThrow();
    expect(() => generateKeyFile('')).toThrow();
  });
});

describe('key files', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentina-keys-'));

  it('writes new key files readable by the owner only and never overwrites one', () => {
    const file = path.join(dir, 'one.key');
    writeNewKeyFile(file, 'one');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(() => writeNewKeyFile(file, 'two')).toThrow();
    expect(readKeyFile(file).kid).toBe('one');
  });

  it('refuses to load a key file others can read', () => {
    const file = path.join(dir, 'loose.key');
    writeFileSync(file, JSON.stringify(generateKeyFile('loose')));
    chmodSync(file, 0o644);
    expect(() => readKeyFile(file)).toThrow(/chmod 600/);
  });

  it('rotates a purpose key and keeps old public keys so old signatures still verify', () => {
    const kdir = path.join(dir, 'ring');
    ensureKeys(kdir, ['audit']);
    const before = loadPurposeSigner(kdir, 'audit');
    const oldSig = before.sign({ n: 1 });
    const newKid = generatePurposeKey(kdir, 'audit');
    const after = loadPurposeSigner(kdir, 'audit');
    expect(after.kid).toBe(newKid);
    expect(after.kid).not.toBe(before.kid);
    const set = loadPurposeKeySet(kdir, 'audit');
    expect(verifySignature({ n: 1 }, oldSig, set)).toEqual({ ok: true });
    expect(verifySignature({ n: 2 }, after.sign({ n: 2 }), set)).toEqual({ ok: true });
  });

  it('ensureKeys never replaces an existing key', () => {
    const kdir = path.join(dir, 'stable');
    ensureKeys(kdir, ['license']);
    const kid = loadPurposeSigner(kdir, 'license').kid;
    ensureKeys(kdir, ['license']);
    expect(loadPurposeSigner(kdir, 'license').kid).toBe(kid);
  });
});
