#!/usr/bin/env python3
"""Generates the expected files for tests/it/objects.rs from the shared Key Vault vectors, independently
of the provider's code: python-cryptography (OpenSSL) encodes each recorded JWK as a SubjectPublicKeyInfo
PEM (what Go's x509.MarshalPKIXPublicKey gives) and each recorded certificate `cer` as a CERTIFICATE PEM.

Run from this folder: python3 gen_expected.py  (needs the `cryptography` package)."""
import base64
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

VECTORS = os.path.join(os.path.dirname(__file__), "../../../tests/data/vectors/keyvault")
KEYS = {
    "rsa": "d_get_key_rsa/cpp__KeyVaultKeyClient.CreateRsaKey__001.json",
    "rsa-hsm": "d_get_key_rsa/cpp__KeyVaultKeyClient.CreateRsaHsmKey__001.json",
    "ec-p256": "d_get_key_ec/cpp__KeyVaultKeyClient.BackupKey__008.json",
    "ec-hsm-p256": "d_get_key_ec/cpp__KeyVaultKeyClient.CreateEcHsmKey__001.json",
    "ec-p384": "d_get_key_ec/cpp__KeyVaultKeyClient.CreateEcKeyWithCurve__001.json",
    "ec-p521": "d_get_key_ec/net__DownloadECDsaCertificateSignRemoteVerifyLocal_application_x-pem-file_P-521___001.json",
}
CERTS = {
    "cert-xyz": "e_get_certificate/cpp__KeyVaultCertificateClientTest.GetCertificate__003.json",
}
CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


def b64url(s):
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


for name, path in KEYS.items():
    jwk = json.load(open(os.path.join(VECTORS, path)))["response"]["body"]["key"]
    if jwk["kty"].startswith("RSA"):
        key = rsa.RSAPublicNumbers(b64url(jwk["e"]), b64url(jwk["n"])).public_key()
    else:
        key = ec.EllipticCurvePublicNumbers(b64url(jwk["x"]), b64url(jwk["y"]), CURVES[jwk["crv"]]).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    open(f"{name}.pem", "wb").write(pem)

for name, path in CERTS.items():
    body = json.load(open(os.path.join(VECTORS, path)))["response"]["body"]
    cert = x509.load_der_x509_certificate(base64.b64decode(body["cer"]))
    open(f"{name}.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
