import { createPublicKey, verify } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as pkcs11js from 'pkcs11js';
import {
  generatePkcs11Ed25519Key,
  pkcs11ReleaseSigner,
  Pkcs11SignerError,
} from '../../services/releases/pkcs11-signer';
import { fileReleaseSigner, type ReleaseSigner } from '../../services/releases/signers';
import { createSoftHsmToken, SOFTHSM_MODULE } from '../support/softhsm';

function verifies(signer: ReleaseSigner, data: Buffer, sig: Buffer): boolean {
  const raw = Buffer.from(signer.publicKey.keyval.public, 'hex');
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]);
  return verify(null, data, createPublicKey({ key: spki, format: 'der', type: 'spki' }), sig);
}

describe('release signers', () => {
  const token = createSoftHsmToken();
  const opts = { module: SOFTHSM_MODULE, tokenLabel: token.tokenLabel, keyLabel: 'targets-1', pin: token.pin };

  it('a key file signs Ed25519 that verifies against its TUF public key', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'agentina-signer-'));
    const signer = fileReleaseSigner(path.join(dir, 'targets.key'), { create: true });
    const data = Buffer.from('release 1.2.3');
    expect(verifies(signer, data, signer.sign(data))).toBe(true);
    expect(signer.keyId).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a PKCS#11 token makes a non-extractable Ed25519 key and signs a release with it', () => {
    const keyId = generatePkcs11Ed25519Key(opts);
    const signer = pkcs11ReleaseSigner(opts);
    try {
      expect(signer.keyId).toBe(keyId);
      const data = Buffer.from('{"signed":{"_type":"targets"}}');
      const sig = signer.sign(data);
      expect(sig).toHaveLength(64);
      expect(verifies(signer, data, sig)).toBe(true);
      expect(verifies(signer, Buffer.from('something else'), sig)).toBe(false);
    } finally {
      signer.close();
    }
  });

  it('an operator logged in to the token cannot read the private key out of it', () => {
    const lib = new pkcs11js.PKCS11();
    lib.load(SOFTHSM_MODULE);
    // Another test in this worker may hold the module open: share it then.
    let ours = true;
    try {
      lib.C_Initialize();
    } catch {
      ours = false;
    }
    try {
      const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === token.tokenLabel)!;
      const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
      lib.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_LABEL, value: 'targets-1' },
      ]);
      const [key] = lib.C_FindObjects(session, 1);
      lib.C_FindObjectsFinal(session);
      const flags = lib.C_GetAttributeValue(session, key!, [
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_SENSITIVE },
      ]);
      expect(flags.map((a) => a.value[0])).toEqual([0, 1]);
      // The private scalar itself: refused (CKR_ATTRIBUTE_SENSITIVE).
      expect(() => lib.C_GetAttributeValue(session, key!, [{ type: pkcs11js.CKA_VALUE }])).toThrow(
        /CKR_ATTRIBUTE_SENSITIVE/,
      );
      // Nor may it be made extractable afterwards (PKCS#11: EXTRACTABLE can only go false).
      expect(() => lib.C_SetAttributeValue(session, key!, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }])).toThrow();
      // Nor wrapped out under a key the attacker knows.
      const wrapKey = lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_WRAP, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: false },
      ]);
      expect(() =>
        lib.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, wrapKey, key!, Buffer.alloc(4096)),
      ).toThrow();
      lib.C_CloseSession(session);
    } finally {
      if (ours) lib.C_Finalize();
    }
  });

  it('a wrong PIN is refused with the token code, never the PIN', () => {
    let caught: unknown;
    try {
      pkcs11ReleaseSigner({ ...opts, pin: 'guessed-pin-1234' });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(Pkcs11SignerError);
    expect(String(caught)).toMatch(/CKR_PIN_INCORRECT/);
    expect(String(caught)).not.toContain('guessed-pin-1234');
  });

  it('an unknown token or key label is refused clearly', () => {
    expect(() => pkcs11ReleaseSigner({ ...opts, tokenLabel: 'nope' })).toThrow(/no PKCS#11 token labelled "nope"/);
    expect(() => pkcs11ReleaseSigner({ ...opts, keyLabel: 'missing' })).toThrow(/no Ed25519 key pair labelled/);
    expect(() => generatePkcs11Ed25519Key(opts)).toThrow(/already holds a key/);
  });
});
