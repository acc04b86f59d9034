"""Signs a message with dkimpy, an implementation independent of spamgate's.

usage: sign.py KEYTYPE CANON DOMAIN SELECTOR [OPTION=VALUE...] < message > signed
KEYTYPE is rsa, rsa512 (a key too short to be valid) or ed25519, CANON is header/body canonicalization such as
relaxed/simple. The keys are the test keys beside this script (test data,
not secrets). Options: identity=ADDRESS (i=), length=1 (l=),
algorithm=rsa-sha1 (an RSA signature with SHA-1).
"""
import os
import sys

import dkim

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    keytype, canon, domain, selector = sys.argv[1:5]
    options = dict(arg.split("=", 1) for arg in sys.argv[5:])
    header_canon, body_canon = canon.split("/")
    key_file = {"rsa": "rsa.key", "rsa512": "rsa512.key", "ed25519": "ed25519.key"}[keytype]
    algorithm = b"ed25519-sha256" if keytype == "ed25519" else b"rsa-sha256"
    algorithm = options.get("algorithm", algorithm.decode()).encode()
    identity = options.get("identity")
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
        identity=identity.encode() if identity else None,
        length=options.get("length") == "1",
    )
    sys.stdout.buffer.write(signature + message)


if __name__ == "__main__":
    main()
