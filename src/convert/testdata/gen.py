#!/usr/bin/env python3
"""Generates the PKCS#12 fixtures for src/convert/pkcs12.rs tests with OpenSSL 3 and python-cryptography,
independently of the provider's code. Run from this folder: python3 gen.py [--force]

For each case: <case>.pfx.b64 (the Key Vault secret value), <case>.expected.pem (what the provider must
write: the key as PKCS#8, then the certificates leaf -> root; for an incomplete chain, in PFX order) and
<case>.bag-order.expected.pem (the same without --construct-pem-chain: certificates in PFX order).
Keys are random, so existing cases are kept unless --force is given (delete a case's files to redo it)."""
import base64
import datetime
import os
import subprocess
import sys
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def cert(subject, key, issuer=None, issuer_key=None, ca=False):
    issuer = issuer or subject
    issuer_key = issuer_key or key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def pem(c):
    return c.public_bytes(serialization.Encoding.PEM)


def pkcs8(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def pfx(key, leaf, extra, args, legacy=False):
    """openssl pkcs12 -export with the empty password; openssl bags the -in certificate first, then the
    -certfile ones in file order."""
    with tempfile.TemporaryDirectory() as d:
        open(f"{d}/key.pem", "wb").write(pkcs8(key))
        open(f"{d}/leaf.pem", "wb").write(pem(leaf))
        open(f"{d}/extra.pem", "wb").write(b"".join(pem(c) for c in extra))
        cmd = ["openssl", "pkcs12", "-export", "-inkey", f"{d}/key.pem", "-in", f"{d}/leaf.pem",
               "-passout", "pass:", "-out", f"{d}/out.pfx"]
        if extra:
            cmd += ["-certfile", f"{d}/extra.pem"]
        if legacy:
            cmd.append("-legacy")
        subprocess.run(cmd + args, check=True)
        return base64.b64encode(open(f"{d}/out.pfx", "rb").read())


root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
int_key = ec.generate_private_key(ec.SECP384R1())
rsa_leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_leaf_key = ec.generate_private_key(ec.SECP256R1())
p384_leaf_key = ec.generate_private_key(ec.SECP384R1())
p521_leaf_key = ec.generate_private_key(ec.SECP521R1())
root = cert("Test Root CA", root_key, ca=True)
inter = cert("Test Intermediate CA", int_key, "Test Root CA", root_key, ca=True)
rsa_leaf = cert("rsa.example", rsa_leaf_key, "Test Intermediate CA", int_key)
ec_leaf = cert("ec.example", ec_leaf_key, "Test Intermediate CA", int_key)
p384_leaf = cert("p384.example", p384_leaf_key, "Test Intermediate CA", int_key)
p521_leaf = cert("p521.example", p521_leaf_key, "Test Intermediate CA", int_key)

CASES = {
    # Key Vault's own scheme: 3DES keys, RC2-40 certificates, SHA-1 MAC.
    "legacy-3des-rc2": (rsa_leaf_key, rsa_leaf, [root, inter], ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-RC2-40", "-macalg", "sha1"], True),
    # ... with MAC iteration count 1 (the 2016-2018 Key Vault files).
    "legacy-mac-iter-1": (ec_leaf_key, ec_leaf, [inter, root], ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1", "-nomaciter"], True),
    # User imports: PBES2 (PBKDF2-HMAC-SHA256) with AES-256 and AES-128, SHA-256 MAC.
    "pbes2-aes256": (rsa_leaf_key, rsa_leaf, [root, inter], ["-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha256"], False),
    "pbes2-aes128": (ec_leaf_key, ec_leaf, [inter, root], ["-keypbe", "AES-128-CBC", "-certpbe", "AES-128-CBC", "-macalg", "sha256"], False),
    # Incomplete chain (no intermediate): certificates stay in PFX order.
    "missing-intermediate": (rsa_leaf_key, rsa_leaf, [root], ["-macalg", "sha256"], False),
    # 128-bit RC2 for both bags (older Windows exports), P-384 key.
    "legacy-rc2-128-p384": (p384_leaf_key, p384_leaf, [root, inter], ["-keypbe", "PBE-SHA1-RC2-128", "-certpbe", "PBE-SHA1-RC2-128", "-macalg", "sha1"], True),
    # PBES2 AES-256 with a SHA-512 MAC, P-521 key (its scalar is 66 bytes).
    "pbes2-sha512-mac-p521": (p521_leaf_key, p521_leaf, [root, inter], ["-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha512"], False),
    # No MAC at all: nothing to pick the form of the empty password by.
    "legacy-no-mac": (rsa_leaf_key, rsa_leaf, [inter, root], ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-nomac"], True),
    # Nothing encrypted: a plain keyBag and a plain certificate safe.
    "unencrypted": (ec_leaf_key, ec_leaf, [root, inter], ["-keypbe", "NONE", "-certpbe", "NONE", "-macalg", "sha256"], False),
}

force = "--force" in sys.argv[1:]
for name, (key, leaf, extra, args, legacy) in CASES.items():
    if not force and os.path.exists(f"{name}.pfx.b64"):
        continue
    open(f"{name}.pfx.b64", "wb").write(pfx(key, leaf, extra, args, legacy))
    bag_order = [leaf] + extra
    chain = bag_order if name == "missing-intermediate" else [leaf, inter, root]
    open(f"{name}.expected.pem", "wb").write(pkcs8(key) + b"".join(pem(c) for c in chain))
    open(f"{name}.bag-order.expected.pem", "wb").write(pkcs8(key) + b"".join(pem(c) for c in bag_order))

# Two CA certificates that name each other as issuer (cross-signed): the key identifiers form a cycle,
# which must end in "incomplete chain, original order", not a hang.
if force or not os.path.exists("chain-cycle.pem"):
    a_key = ec.generate_private_key(ec.SECP256R1())
    b_key = ec.generate_private_key(ec.SECP256R1())
    a = cert("Cycle A", a_key, "Cycle B", b_key, ca=True)
    b = cert("Cycle B", b_key, "Cycle A", a_key, ca=True)
    open("chain-cycle.pem", "wb").write(pem(a) + pem(b))
