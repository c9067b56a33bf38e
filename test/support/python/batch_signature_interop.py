"""Agentina's batch-signed status answers, verified from the published format alone.

  batch_signature_interop.py < {"publicKey": "<32-byte Ed25519 key, hex>", "answers": [{payload, signature}, ...]}
  -> {"valid": [true|false, ...]}

Written from RFC 9162 (Merkle tree hashing, inclusion proof verification, section 2.1.3.2),
RFC 8785 (canonical JSON; the payloads hold only strings, integers and booleans, for which
sorted keys and no whitespace is the whole of it) and RFC 8032 (Ed25519), with Python's hashlib
and the pure-Python Ed25519 that securesystemslib (pinned for the TUF tests) vendors: nothing
of Agentina's own code.
"""
import base64
import hashlib
import json
import sys

from securesystemslib._vendor.ed25519.ed25519 import checkvalid


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(leaf: bytes, index: int, size: int, path: list) -> bytes | None:
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def valid(public_key: bytes, answer: dict) -> bool:
    payload, signature = answer["payload"], answer["signature"]
    sig = base64.b64decode(signature["sig"])
    batch = signature.get("batch")
    if batch is None:
        message = canonical(payload)
    else:
        path = [base64.urlsafe_b64decode(h + "=") for h in batch["path"]]
        leaf = hashlib.sha256(b"\x00" + canonical(payload)).digest()
        root = root_from_path(leaf, batch["index"], batch["size"], path)
        if root is None:
            return False
        message = canonical({"kind": "agentina.signature-batch/v1", "root": root.hex(), "size": batch["size"]})
    try:
        checkvalid(sig, message, public_key)
        return True
    except Exception:
        return False


def main() -> None:
    order = json.load(sys.stdin)
    key = bytes.fromhex(order["publicKey"])
    print(json.dumps({"valid": [valid(key, a) for a in order["answers"]]}))


if __name__ == "__main__":
    main()
