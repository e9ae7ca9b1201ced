#!/usr/bin/env python3
"""Decrypt a Herald webhook sent to an endpoint with `encryption_public_key`.

The body is a JWE compact string (RFC 7516): RSA-OAEP-256 wraps a content
key, A256GCM seals the payload. Verify the Standard Webhooks signature over
the body as received first, then decrypt:

    python3 decrypt_webhook.py receiver.key.pem < body.jwe

Needs the `cryptography` package (pip install cryptography, or Debian's
python3-cryptography).
"""

import base64
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decrypt(jwe: str, private_key_pem: bytes) -> bytes:
    header_b64, wrapped, iv, ciphertext, tag = jwe.strip().split(".")
    header = json.loads(b64url(header_b64))
    if header.get("alg") != "RSA-OAEP-256" or header.get("enc") != "A256GCM":
        raise ValueError(f"unexpected JWE header {header}")
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    cek = key.decrypt(
        b64url(wrapped),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    # The protected header, as sent, is the additional authenticated data.
    return AESGCM(cek).decrypt(b64url(iv), b64url(ciphertext) + b64url(tag), header_b64.encode())


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        pem = f.read()
    sys.stdout.write(decrypt(sys.stdin.read(), pem).decode())
