#!/usr/bin/env python3
"""Generates the expectations for the recorded Key Vault responses, independently of the provider's code.

jwk-expected.json (src/convert/jwk.rs tests): for every GET key response recorded in
tests/data/vectors/keyvault/d_get_key_{rsa,ec}, the SubjectPublicKeyInfo PEM that Go's
x509.MarshalPKIXPublicKey gives (rsaEncryption with NULL parameters; id-ecPublicKey with the named curve
and the uncompressed point), built by python-cryptography and checked with the openssl CLI, independently
of the provider's code. Keys Go cannot write (P-256K, oct) map to null.

cert-expected.json (src/convert/mod.rs tests): for every GET certificate response in e_get_certificate,
the `cer` as `openssl x509 -inform DER -outform PEM` writes it (Go's pem.EncodeToMemory gives the same).

Run from this folder: python3 gen_vectors.py"""
import base64
import glob
import json
import os
import subprocess

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.normpath(os.path.join(HERE, "../../../tests/data/vectors/keyvault"))
CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


def b64url(s):
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


def openssl_roundtrip(pem):
    """openssl parses the key (for EC: checks the point) and writes it back unchanged."""
    out = subprocess.run(["openssl", "pkey", "-pubin", "-pubcheck", "-outform", "PEM"], input=pem,
                         capture_output=True, check=True).stdout
    assert out.startswith(b"Key is valid\n") and out[len(b"Key is valid\n"):] == pem, (out, pem)


expected = {}
for path in sorted(glob.glob(f"{VECTORS}/d_get_key_*/*.json")):
    key = json.load(open(path))["response"]["body"].get("key")
    if key is None:
        continue
    kty, crv = key.get("kty", ""), key.get("crv")
    if kty in ("RSA", "RSA-HSM"):
        public = rsa.RSAPublicNumbers(b64url(key["e"]), b64url(key["n"])).public_key()
    elif kty in ("EC", "EC-HSM") and crv in CURVES:
        public = ec.EllipticCurvePublicNumbers(b64url(key["x"]), b64url(key["y"]), CURVES[crv]).public_key()
    else:
        expected[os.path.relpath(path, VECTORS)] = None
        continue
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    openssl_roundtrip(pem)
    expected[os.path.relpath(path, VECTORS)] = pem.decode()

with open(os.path.join(HERE, "jwk-expected.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
    f.write("\n")
certs = {}
for path in sorted(glob.glob(f"{VECTORS}/e_get_certificate/*.json")):
    cer = json.load(open(path))["response"]["body"].get("cer")
    if cer is None:
        continue
    pem = subprocess.run(["openssl", "x509", "-inform", "DER", "-outform", "PEM"], input=base64.b64decode(cer),
                         capture_output=True, check=True).stdout
    certs[os.path.relpath(path, VECTORS)] = pem.decode()

with open(os.path.join(HERE, "cert-expected.json"), "w") as f:
    json.dump(certs, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"{len(certs)} certificates")
print(f"{sum(v is not None for v in expected.values())} keys, {sum(v is None for v in expected.values())} unsupported")
