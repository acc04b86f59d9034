#!/usr/bin/env python3
"""Writes a benchmark message of about SIZE bytes, DKIM-signed for the local
bench zone, so that SPF, DKIM and DMARC all do real work and pass.

usage: make_message.py SIZE KEY.pem OUT.eml

The body is ordinary business prose (none of the generated rules' spam
phrases), wrapped at 72 columns, so the rules scan it without refusing it.
Signed with dkimpy (relaxed/relaxed, rsa-sha256) as selector `s1` of
`sender.bench.test`; the From domain is the MAIL FROM domain, so SPF and
DKIM are both aligned for DMARC.
"""
import sys

import dkim

WORDS = (
    "the quarterly report shows steady growth in our regional offices and the "
    "team would like to thank everyone for the careful work on the budget review "
    "please find the agenda for next week attached below together with notes from "
    "the planning meeting we discussed the schedule for deliveries and the new "
    "supplier contracts as well as training for staff in the spring"
).split()


def body(size):
    lines, line, n = [], [], 0
    while sum(len(x) + 2 for x in lines) < size:
        word = WORDS[(n * 7 + n // len(WORDS)) % len(WORDS)]
        n += 1
        if len(" ".join(line + [word])) > 72:
            lines.append(" ".join(line))
            line = []
        line.append(word)
    return "\r\n".join(lines) + "\r\n"


def main():
    size, key_path, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    headers = (
        "From: Bench Sender <sender@sender.bench.test>\r\n"
        "To: Bench User <user@sink.bench.test>\r\n"
        "Subject: Quarterly report and meeting notes\r\n"
        "Date: Fri, 27 Nov 2026 06:00:00 +0000\r\n"
        "Message-ID: <bench-%d@sender.bench.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n" % size
    )
    header_bytes = len(headers) + 600  # the signature header
    message = (headers + body(max(size - header_bytes, 100))).encode()
    with open(key_path, "rb") as f:
        key = f.read()
    signature = dkim.sign(
        message,
        b"s1",
        b"sender.bench.test",
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id",
                         b"mime-version", b"content-type"],
    )
    signed = signature + message
    if not dkim.verify(signed, dnsfunc=lambda name, timeout=5: dns_txt(name, key_path)):
        sys.exit("make_message: the signature does not verify")
    with open(out, "wb") as f:
        f.write(signed)


def dns_txt(name, key_path):
    """The record knot will serve, computed from the key, for a self-check."""
    import base64
    import subprocess

    der = subprocess.run(
        ["openssl", "pkey", "-in", key_path, "-pubout", "-outform", "DER"],
        check=True, capture_output=True,
    ).stdout
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


if __name__ == "__main__":
    main()
