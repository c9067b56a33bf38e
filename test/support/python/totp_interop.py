"""pyotp, the reference TOTP implementation, against Agentina's second factor.

  totp_interop.py code <otpauth-uri> <unix-time>          -> {"code": "123456"}
  totp_interop.py verify <otpauth-uri> <code> <unix-time> -> {"valid": true|false}

The URI is parsed by pyotp itself (issuer, secret, algorithm, digits, period), as an
authenticator app would scan it from the QR code.
"""
import json
import sys

import pyotp


def main() -> None:
    command, uri = sys.argv[1], sys.argv[2]
    totp = pyotp.parse_uri(uri)
    if command == "code":
        print(json.dumps({"code": totp.at(int(sys.argv[3]))}))
    elif command == "verify":
        # valid_window=0: the code must be for exactly that time step.
        print(json.dumps({"valid": totp.verify(sys.argv[3], for_time=int(sys.argv[4]), valid_window=0)}))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
