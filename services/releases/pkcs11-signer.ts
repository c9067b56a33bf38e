import * as pkcs11js from 'pkcs11js';
import { tufKeyId, tufPublicKey, type ReleaseSigner } from './signers';

/**
 * A release signer whose Ed25519 private key lives on a PKCS#11 token (an HSM; SoftHSM in tests)
 * and never leaves it: the control plane holds the module path, the token label, the key label
 * and the user PIN, and asks the token for signatures. Keys are made on the token as sensitive
 * and non-extractable (`generatePkcs11Ed25519Key`, for `agentina release keys` and tests).
 */
export type Pkcs11Options = {
  /** Path to the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  tokenLabel: string;
  keyLabel: string;
  /** The user PIN; read from a file or the environment by the caller, never logged. */
  pin: string;
};

// PKCS#11 3.0 values for Ed25519 (not named by pkcs11js 2.1).
const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;
/** DER of the curve name OID 1.3.101.112 (Ed25519), as CKA_EC_PARAMS. */
const ED25519_OID_DER = Buffer.from('06032b6570', 'hex');

export class Pkcs11SignerError extends Error {}

type Session = { lib: pkcs11js.PKCS11; session: Buffer; close(): void };

/**
 * A PKCS#11 module is initialised once per process (a second C_Initialize is refused), so every
 * session of a module shares one loaded library, finalised when its last session closes.
 */
const loaded = new Map<string, { lib: pkcs11js.PKCS11; refs: number }>();

function acquire(module: string): pkcs11js.PKCS11 {
  let entry = loaded.get(module);
  if (!entry) {
    const lib = new pkcs11js.PKCS11();
    lib.load(module);
    try {
      lib.C_Initialize();
    } catch (e) {
      // Initialised by other code in this process: share it, and leave finalising to that code.
      if (!(e instanceof Error && e.message.includes('CKR_CRYPTOKI_ALREADY_INITIALIZED'))) throw e;
      entry = { lib, refs: Number.POSITIVE_INFINITY };
    }
    entry ??= { lib, refs: 0 };
    loaded.set(module, entry);
  }
  entry.refs += 1;
  return entry.lib;
}

function release(module: string): void {
  const entry = loaded.get(module);
  if (!entry || (entry.refs -= 1) > 0) return;
  loaded.delete(module);
  entry.lib.C_Finalize();
  entry.lib.close();
}

function openSession(opts: Pkcs11Options, readWrite: boolean): Session {
  const lib = acquire(opts.module);
  let session: Buffer | undefined;
  const close = () => {
    try {
      if (session) lib.C_CloseSession(session);
    } finally {
      release(opts.module);
    }
  };
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === opts.tokenLabel);
    if (!slot) throw new Pkcs11SignerError(`no PKCS#11 token labelled ${JSON.stringify(opts.tokenLabel)}`);
    session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | (readWrite ? pkcs11js.CKF_RW_SESSION : 0));
    try {
      lib.C_Login(session, pkcs11js.CKU_USER, opts.pin);
    } catch (e) {
      // The token's code only (e.g. CKR_PIN_INCORRECT): the PIN itself never reaches a message.
      throw new Pkcs11SignerError(`PKCS#11 login to ${JSON.stringify(opts.tokenLabel)} failed: ${codeOf(e)}`);
    }
    return { lib, session, close };
  } catch (e) {
    close();
    throw e;
  }
}

function codeOf(e: unknown): string {
  return e instanceof Error ? (e.message.split(':')[0] ?? 'error') : 'error';
}

function findOne(s: Session, cls: number, label: string): Buffer | null {
  s.lib.C_FindObjectsInit(s.session, [
    { type: pkcs11js.CKA_CLASS, value: cls },
    { type: pkcs11js.CKA_LABEL, value: label },
  ]);
  const found = s.lib.C_FindObjects(s.session, 2);
  s.lib.C_FindObjectsFinal(s.session);
  if (found.length > 1) throw new Pkcs11SignerError(`more than one key labelled ${JSON.stringify(label)}`);
  return found[0] ?? null;
}

/** CKA_EC_POINT of an Ed25519 public key: the 32 bytes, DER-wrapped in an OCTET STRING or bare. */
function rawPoint(point: Buffer): Buffer {
  if (point.length === 34 && point[0] === 0x04 && point[1] === 32) return point.subarray(2);
  if (point.length === 32) return point;
  throw new Pkcs11SignerError('the token returned an Ed25519 public point of unexpected length');
}

export function pkcs11ReleaseSigner(opts: Pkcs11Options): ReleaseSigner {
  const s = openSession(opts, false);
  try {
    const priv = findOne(s, pkcs11js.CKO_PRIVATE_KEY, opts.keyLabel);
    const pub = findOne(s, pkcs11js.CKO_PUBLIC_KEY, opts.keyLabel);
    if (!priv || !pub)
      throw new Pkcs11SignerError(`no Ed25519 key pair labelled ${JSON.stringify(opts.keyLabel)} on the token`);
    const [point] = s.lib.C_GetAttributeValue(s.session, pub, [{ type: pkcs11js.CKA_EC_POINT }]);
    const publicKey = tufPublicKey(Buffer.from(rawPoint(point!.value)));
    return {
      keyId: tufKeyId(publicKey),
      publicKey,
      sign(data: Buffer): Buffer {
        s.lib.C_SignInit(s.session, { mechanism: CKM_EDDSA }, priv);
        return Buffer.from(s.lib.C_Sign(s.session, data, Buffer.alloc(64)));
      },
      close: () => s.close(),
    };
  } catch (e) {
    s.close();
    throw e;
  }
}

/** Generates a sensitive, non-extractable Ed25519 key pair on the token; returns its TUF key id. */
export function generatePkcs11Ed25519Key(opts: Pkcs11Options): string {
  const s = openSession(opts, true);
  try {
    if (findOne(s, pkcs11js.CKO_PRIVATE_KEY, opts.keyLabel))
      throw new Pkcs11SignerError(`the token already holds a key labelled ${JSON.stringify(opts.keyLabel)}`);
    const { publicKey } = s.lib.C_GenerateKeyPair(
      s.session,
      { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
      [
        { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_VERIFY, value: true },
        { type: pkcs11js.CKA_LABEL, value: opts.keyLabel },
        { type: pkcs11js.CKA_EC_PARAMS, value: ED25519_OID_DER },
      ],
      [
        { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SIGN, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_LABEL, value: opts.keyLabel },
      ],
    );
    const [point] = s.lib.C_GetAttributeValue(s.session, publicKey, [{ type: pkcs11js.CKA_EC_POINT }]);
    return tufKeyId(tufPublicKey(Buffer.from(rawPoint(point!.value))));
  } finally {
    s.close();
  }
}
