//! A PKCS#12 (PFX) writer for one private key and its certificates, empty password, in the layout
//! OpenSSL 3's `openssl pkcs12 -export` writes by default (README, "Object types"): PFX version 3;
//! an authenticated safe of two contents, the certificates in one PBES2-encrypted SafeContents and
//! the key in a PKCS8ShroudedKeyBag (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC, 2048 iterations) in a
//! plain one; a SHA-256 MAC (2048 iterations) keyed with the empty password as RFC 7292 spells it
//! (the empty BMPString with its terminator, two zero bytes). The key and the leaf certificate carry
//! the same `localKeyId` (the leaf's SHA-1, as OpenSSL sets it), which Windows and .NET use to pair
//! them.
//!
//! Salts and IVs are derived from the certificates instead of drawn at random. With an empty password
//! they protect nothing (anyone holding the file derives the keys), and determinism is what keeps the
//! file byte-identical across the Mounts of one certificate version: the driver rewrites a file whose
//! bytes changed, and re-patches a synced Kubernetes Secret whose data changed, on every rotation
//! poll. A password source, if one is ever added, must switch to random salts.

use der::Encode as _;
use der::asn1::ObjectIdentifier;
use hmac::{KeyInit as _, Mac as _};
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::der_writer::{NULL, OCTET_STRING, oid, sequence, tlv, unsigned_integer};
use super::pkcs12::{
    CERT_BAG, DATA, ENCRYPTED_DATA, PBES2, SHA256, SHROUDED_KEY_BAG, X509_CERTIFICATE,
};

/// PKCS#9 localKeyId (1.2.840.113549.1.9.21).
const LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
/// OpenSSL 3's default iteration count for the PBKDF2 of both encryptions and for the MAC.
const ITERATIONS: u32 = 2048;
/// The empty password for the PKCS#12 MAC KDF: the empty BMPString and its two-byte terminator.
const MAC_PASSWORD: &[u8] = &[0, 0];
/// The empty password for PBES2, which takes the password's bytes as they are: none.
const PBES2_PASSWORD: &[u8] = b"";
/// Universal tag: SET (constructed).
const SET: u8 = 0x31;
/// `[0] EXPLICIT` (constructed): ContentInfo's content, SafeBag's value, CertBag's value.
const CONTEXT_0: u8 = 0xa0;
/// `[0] IMPLICIT OCTET STRING` (primitive): EncryptedContentInfo's encryptedContent.
const CONTEXT_0_PRIMITIVE: u8 = 0x80;
/// Label of the derivation, so that no other use of the certificates' hash collides with it.
const SEED_LABEL: &[u8] = b"akv-csi-provider PKCS#12 salts and IVs, v1";

/// A PFX holding `key` (PKCS#8 DER) and `certs` (DER, leaf first; the key is the leaf's). The error
/// is the reason (an encryption step failed), never key material.
pub fn write(key: &[u8], certs: &[Vec<u8>]) -> Result<Zeroizing<Vec<u8>>, String> {
    let leaf = certs
        .first()
        .ok_or("a PKCS#12 file needs at least one certificate")?;
    let local_key_id = sha1::Sha1::digest(leaf);
    let seed = Seed::new(certs);

    let bags: Vec<Vec<u8>> = certs
        .iter()
        .enumerate()
        .map(|(i, cert)| cert_bag(cert, (i == 0).then_some(local_key_id.as_slice())))
        .collect();
    let bag_refs: Vec<&[u8]> = bags.iter().map(Vec::as_slice).collect();
    let cert_safe = sequence(&bag_refs);
    let cert_info = encrypted_data_info(&cert_safe, &seed.derive(b"certificates"))?;

    let key_bag = shrouded_key_bag(key, &local_key_id, &seed.derive(b"key"))?;
    let key_safe = zsequence(&[&key_bag]);
    let key_info = data_info(&key_safe);

    let auth_safe = zsequence(&[&cert_info, &key_info]);
    let mac = mac_data(&auth_safe, &seed.derive(b"mac").salt)?;
    Ok(zsequence(&[
        &unsigned_integer(&[3]),
        &data_info(&auth_safe),
        &mac,
    ]))
}

/// The per-file value salts and IVs are derived from: a hash of the certificates (public data, so
/// nothing about the key shows in the file's salts).
struct Seed([u8; 32]);

/// A salt and an IV for one encryption.
struct SaltIv {
    salt: [u8; 16],
    iv: [u8; 16],
}

impl Seed {
    fn new(certs: &[Vec<u8>]) -> Self {
        let mut hash = Sha256::new();
        hash.update(SEED_LABEL);
        for cert in certs {
            // Length-prefixed so that two lists of certificates never hash alike.
            hash.update((cert.len() as u64).to_be_bytes());
            hash.update(cert);
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&hash.finalize());
        Self(seed)
    }

    fn derive(&self, purpose: &[u8]) -> SaltIv {
        let part = |what: &[u8]| {
            let digest = Sha256::new()
                .chain_update(self.0)
                .chain_update(purpose)
                .chain_update(what)
                .finalize();
            let mut out = [0u8; 16];
            out.copy_from_slice(&digest[..16]);
            out
        };
        SaltIv {
            salt: part(b" salt"),
            iv: part(b" iv"),
        }
    }
}

/// A SEQUENCE whose contents (a key, or what holds one) are zeroized, the temporary too.
fn zsequence(parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let content = Zeroizing::new(parts.concat());
    Zeroizing::new(tlv(super::der_writer::SEQUENCE, &content))
}

/// One TLV whose contents are zeroized.
fn ztlv(tag: u8, content: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(tlv(tag, content))
}

/// A SafeBag, with a `localKeyId` attribute when given.
fn safe_bag(
    bag_id: ObjectIdentifier,
    value: &[u8],
    local_key_id: Option<&[u8]>,
) -> Zeroizing<Vec<u8>> {
    let attributes = local_key_id
        .map(|id| {
            let attribute = sequence(&[
                &oid(LOCAL_KEY_ID.as_bytes()),
                &tlv(SET, &tlv(OCTET_STRING, id)),
            ]);
            tlv(SET, &attribute)
        })
        .unwrap_or_default();
    zsequence(&[
        &oid(bag_id.as_bytes()),
        &ztlv(CONTEXT_0, value),
        &attributes,
    ])
}

/// A CertBag holding an X.509 certificate.
fn cert_bag(der: &[u8], local_key_id: Option<&[u8]>) -> Vec<u8> {
    let value = sequence(&[
        &oid(X509_CERTIFICATE.as_bytes()),
        &tlv(CONTEXT_0, &tlv(OCTET_STRING, der)),
    ]);
    safe_bag(CERT_BAG, &value, local_key_id).to_vec()
}

/// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) with the empty password: the AlgorithmIdentifier and the
/// ciphertext.
fn pbes2(plain: &[u8], salt_iv: &SaltIv) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), String> {
    let params = pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
        ITERATIONS,
        &salt_iv.salt,
        salt_iv.iv,
    )
    .map_err(|e| format!("the PBES2 parameters could not be built ({e})"))?;
    let ciphertext = params
        .encrypt(PBES2_PASSWORD, plain)
        .map(Zeroizing::new)
        .map_err(|e| format!("AES-256-CBC encryption failed ({e})"))?;
    let params = params
        .to_der()
        .map_err(|e| format!("the PBES2 parameters could not be encoded ({e})"))?;
    Ok((sequence(&[&oid(PBES2.as_bytes()), &params]), ciphertext))
}

/// A PKCS8ShroudedKeyBag: the key encrypted with PBES2.
fn shrouded_key_bag(
    key: &[u8],
    local_key_id: &[u8],
    salt_iv: &SaltIv,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let (algorithm, ciphertext) = pbes2(key, salt_iv)?;
    let info = zsequence(&[&algorithm, &ztlv(OCTET_STRING, &ciphertext)]);
    Ok(safe_bag(SHROUDED_KEY_BAG, &info, Some(local_key_id)))
}

/// A ContentInfo of type data holding `content`.
fn data_info(content: &[u8]) -> Zeroizing<Vec<u8>> {
    zsequence(&[
        &oid(DATA.as_bytes()),
        &ztlv(CONTEXT_0, &ztlv(OCTET_STRING, content)),
    ])
}

/// A ContentInfo of type encryptedData holding `content` encrypted with PBES2.
fn encrypted_data_info(content: &[u8], salt_iv: &SaltIv) -> Result<Vec<u8>, String> {
    let (algorithm, ciphertext) = pbes2(content, salt_iv)?;
    let encrypted_content_info = sequence(&[
        &oid(DATA.as_bytes()),
        &algorithm,
        &tlv(CONTEXT_0_PRIMITIVE, &ciphertext),
    ]);
    let version = unsigned_integer(&[0]);
    let encrypted_data = sequence(&[&version, &encrypted_content_info]);
    Ok(sequence(&[
        &oid(ENCRYPTED_DATA.as_bytes()),
        &tlv(CONTEXT_0, &encrypted_data),
    ]))
}

/// MacData: HMAC-SHA256 of the authenticated safe's contents, keyed by RFC 7292 B.2's KDF.
fn mac_data(auth_safe: &[u8], salt: &[u8]) -> Result<Vec<u8>, String> {
    let key = Zeroizing::new(derive_key::<Sha256>(
        MAC_PASSWORD,
        salt,
        Pkcs12KeyType::Mac,
        ITERATIONS as i32,
        32,
    ));
    let mut hmac = hmac::Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| "the MAC key could not be used".to_owned())?;
    hmac.update(auth_safe);
    let digest = hmac.finalize().into_bytes();
    let algorithm = sequence(&[&oid(SHA256.as_bytes()), &tlv(NULL, &[])]);
    Ok(sequence(&[
        &sequence(&[&algorithm, &tlv(OCTET_STRING, &digest)]),
        &tlv(OCTET_STRING, salt),
        &unsigned_integer(&ITERATIONS.to_be_bytes()),
    ]))
}
