"""Signs a message with dkimpy, an implementation independent of spamgate's.

usage: sign.py KEYTYPE CANON DOMAIN SELECTOR < message > signed
KEYTYPE is rsa, rsa512 (a key too short to be valid) or ed25519, CANON is header/body canonicalization such as
relaxed/simple. The keys are the test keys beside this script (test data,
not secrets).
"""
import os
import sys

import dkim

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    keytype, canon, domain, selector = sys.argv[1:5]
    header_canon, body_canon = canon.split("/")
    key_file = {"rsa": "rsa.key", "rsa512": "rsa512.key", "ed25519": "ed25519.key"}[keytype]
    algorithm = b"ed25519-sha256" if keytype == "ed25519" else b"rsa-sha256"
    with open(os.path.join(HERE, key_file), "rb") as f:
        key = f.read()
    message = sys.stdin.buffer.read()
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        canonicalize=(header_canon.encode(), body_canon.encode()),
        signature_algorithm=algorithm,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    sys.stdout.buffer.write(signature + message)


if __name__ == "__main__":
    main()
