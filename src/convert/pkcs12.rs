//! Certificate-backed secrets stored as PKCS#12 (`application/x-pkcs12`, base64, empty password):
//! every private key as unencrypted PKCS#8, then the certificates, in the order of their bags
//! (README, "Object types").
//!
//! The reader is ours, on RustCrypto's ASN.1 types (`pkcs12`, `cms`, `pkcs8`) and ciphers. The one
//! maintained PKCS#12 crate we evaluated (`p12-keystore`) decrypts every scheme we need but only takes
//! a UTF-8 password, so it cannot open Key Vault's own files, whose MAC and keys use the *zero-length*
//! password rather than the empty BMPString; Go's `x/crypto/pkcs12` retries with it, and so do we.
//! Supported: pbeWithSHAAnd3-KeyTripleDES-CBC, pbeWithSHAAnd40BitRC2-CBC and 128-bit RC2 (what Key
//! Vault and Windows write, with SHA-1 MACs including iteration count 1) and PBES2 with PBKDF2 and
//! AES-CBC (what OpenSSL 3 writes, with SHA-256 MACs), which the Go provider cannot read. Iteration
//! counts are bounded so that a hostile file cannot pin a core. Keys are re-encoded the way Go's
//! `x509.MarshalPKCS8PrivateKey` does so that swapping providers changes no byte.

use super::kdf;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt, KeyInit, KeyIvInit};
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use der::asn1::{AnyRef, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _};
use hmac::Mac;
use pkcs8::PrivateKeyInfoRef;
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs12::{CertBag, MacData, Pfx, SafeBag};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use super::ConvertError;
use super::der_writer::{
    CONTEXT_1, EC_PUBLIC_KEY_OID, NULL, OCTET_STRING, RSA_ENCRYPTION_OID, bit_string, oid,
    sequence, tlv,
};
use super::ec::Curve;

pub(super) const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub(super) const ENCRYPTED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
pub(super) const SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
pub(super) const CERT_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
pub(super) const X509_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const PBE_SHA1_RC2_128: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5");
const PBE_SHA1_RC2_40: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
pub(super) const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
pub(super) const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Upper bound on KDF and MAC iterations (OpenSSL writes 2048; Key Vault 2000 or 1).
const MAX_ITERATIONS: u32 = 1_000_000;

/// The empty password, in the two forms files are written with: the empty BMPString with its
/// terminator (RFC 7292), and zero bytes (Windows, and so Key Vault).
const EMPTY_PASSWORDS: [&[u8]; 2] = [&[0, 0], &[]];

/// The decoded contents of a PFX, in bag order.
pub struct Decoded {
    /// Private keys as PKCS#8 DER, normalized.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// Certificates as DER.
    pub certs: Vec<Vec<u8>>,
}

fn err(what: impl std::fmt::Display) -> ConvertError {
    ConvertError::Pkcs12(what.to_string())
}

fn malformed(e: der::Error) -> ConvertError {
    err(format!("the value is not a valid PFX ({e})"))
}

/// Decodes a base64 PFX with the empty password.
pub fn decode(base64_pfx: &str) -> Result<Decoded, ConvertError> {
    // Go's decoder skips line breaks; wrapped base64 from other tools has them.
    let compact = Zeroizing::new(
        base64_pfx
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>(),
    );
    let der_bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_slice())
            .map_err(|e| err(format!("the value is not base64 ({e})")))?,
    );
    let pfx = Pfx::from_der(&der_bytes).map_err(malformed)?;
    if pfx.auth_safe.content_type != DATA {
        return Err(err(format!(
            "the PFX content is {} (public-key integrity mode), which is not supported; export it with a \
             password-based MAC",
            pfx.auth_safe.content_type
        )));
    }
    let auth_safe = OctetString::from_der(&pfx.auth_safe.content.to_der().map_err(malformed)?)
        .map_err(malformed)?;
    let auth_safe = auth_safe.as_bytes();
    match &pfx.mac_data {
        Some(mac) => {
            let mut matching = None;
            for password in EMPTY_PASSWORDS {
                // An unsupported MAC digest or iteration count is an error of its own, not a wrong password.
                if verify_mac(mac, password, auth_safe)? {
                    matching = Some(password);
                    break;
                }
            }
            let password = matching.ok_or_else(|| {
                err(
                    "MAC verification failed with the empty password: the PFX is protected by a password or \
                     corrupt. Key Vault stores certificates without a password; re-import the PFX without one",
                )
            })?;
            read_safes(auth_safe, password)
        }
        // Without a MAC nothing tells which form of the empty password was used: try both.
        None => read_safes(auth_safe, EMPTY_PASSWORDS[0])
            .or_else(|first| read_safes(auth_safe, EMPTY_PASSWORDS[1]).map_err(|_| first)),
    }
}

/// Reads the authenticated safe's contents with `password`.
fn read_safes(auth_safe: &[u8], password: &[u8]) -> Result<Decoded, ConvertError> {
    let safes: Vec<ContentInfo> = Vec::from_der(auth_safe).map_err(malformed)?;
    let mut decoded = Decoded {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    for safe in &safes {
        let content = safe.content.to_der().map_err(malformed)?;
        let plain = if safe.content_type == DATA {
            Zeroizing::new(
                OctetString::from_der(&content)
                    .map_err(malformed)?
                    .into_bytes()
                    .into_vec(),
            )
        } else if safe.content_type == ENCRYPTED_DATA {
            let encrypted = EncryptedData::from_der(&content).map_err(malformed)?;
            let info = &encrypted.enc_content_info;
            match &info.encrypted_content {
                Some(data) => decrypt(&info.content_enc_alg, data.as_bytes(), password)?,
                None => continue,
            }
        } else {
            return Err(err(format!(
                "the PFX holds content of type {}, which is not supported (only data and encryptedData)",
                safe.content_type
            )));
        };
        let bags: Vec<SafeBag> = Vec::from_der(&plain).map_err(malformed)?;
        for bag in &bags {
            read_bag(bag, password, &mut decoded)?;
        }
    }
    if decoded.keys.is_empty() && decoded.certs.is_empty() {
        return Err(err("the PFX holds neither a private key nor a certificate"));
    }
    Ok(decoded)
}

/// The inside of a bag's `[0] EXPLICIT` value.
fn bag_value(bag: &SafeBag) -> Result<&[u8], ConvertError> {
    Ok(AnyRef::from_der(&bag.bag_value).map_err(malformed)?.value())
}

fn read_bag(bag: &SafeBag, password: &[u8], out: &mut Decoded) -> Result<(), ConvertError> {
    if bag.bag_id == KEY_BAG {
        out.keys.push(normalize_key(bag_value(bag)?)?);
    } else if bag.bag_id == SHROUDED_KEY_BAG {
        let info = EncryptedPrivateKeyInfo::from_der(bag_value(bag)?).map_err(malformed)?;
        let plain = decrypt(
            &info.encryption_algorithm,
            info.encrypted_data.as_bytes(),
            password,
        )?;
        out.keys.push(normalize_key(&plain)?);
    } else if bag.bag_id == CERT_BAG {
        let cert = CertBag::from_der(bag_value(bag)?).map_err(malformed)?;
        if cert.cert_id == X509_CERTIFICATE {
            out.certs.push(cert.cert_value.into_bytes().into_vec());
        }
    }
    // CRL and secret bags carry nothing the Go provider writes.
    Ok(())
}

/// `Ok(true)` when the MAC matches with `password`.
fn verify_mac(mac: &MacData, password: &[u8], data: &[u8]) -> Result<bool, ConvertError> {
    let iterations = u32::try_from(mac.iterations).unwrap_or(0);
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(err(format!(
            "the PFX MAC iteration count {} is out of range (1 to {MAX_ITERATIONS})",
            mac.iterations
        )));
    }
    let salt = mac.mac_salt.as_bytes();
    let expected = mac.mac.digest.as_bytes();
    let algorithm = mac.mac.algorithm.oid;
    // RFC 7292 B.2 derives a key as long as the digest output, then HMACs with the same digest.
    macro_rules! verify {
        ($digest:ty, key $key:expr) => {{
            let key = $key;
            let mut hmac = hmac::Hmac::<$digest>::new_from_slice(&key)
                .map_err(|_| err("the PFX MAC key could not be derived"))?;
            hmac.update(data);
            Ok(hmac.verify_slice(expected).is_ok())
        }};
        ($digest:ty, $len:expr) => {
            verify!($digest, key Zeroizing::new(derive_key::<$digest>(
                password,
                salt,
                Pkcs12KeyType::Mac,
                mac.iterations,
                $len,
            )))
        };
    }
    if algorithm == SHA1 {
        // Key Vault's MAC: SHA-1, derived by `kdf` (see there why not the generic one).
        verify!(sha1::Sha1, key kdf::derive_sha1(password, salt, 3, iterations, 20))
    } else if algorithm == SHA256 {
        verify!(sha2::Sha256, 32)
    } else if algorithm == SHA384 {
        verify!(sha2::Sha384, 48)
    } else if algorithm == SHA512 {
        verify!(sha2::Sha512, 64)
    } else {
        Err(err(format!(
            "the PFX MAC uses digest {algorithm}, which is not supported (SHA-1, SHA-256, SHA-384 and \
             SHA-512 are); re-export the PFX with -macalg sha256"
        )))
    }
}

fn decrypt(
    alg: &AlgorithmIdentifierOwned,
    data: &[u8],
    password: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ConvertError> {
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| err("an encryption algorithm in the PFX has no parameters"))?
        .to_der()
        .map_err(malformed)?;
    let wrong_password = || {
        err(
            "the PFX could not be decrypted with the empty password: Key Vault stores certificates without \
             a password; re-import the PFX without one",
        )
    };
    if alg.oid == PBES2 {
        let params = pkcs5::pbes2::Parameters::from_der(&params).map_err(malformed)?;
        match &params.kdf {
            pkcs5::pbes2::Kdf::Pbkdf2(p) if p.iteration_count <= MAX_ITERATIONS => {}
            pkcs5::pbes2::Kdf::Pbkdf2(p) => {
                return Err(err(format!(
                    "the PFX PBKDF2 iteration count {} is too large (at most {MAX_ITERATIONS})",
                    p.iteration_count
                )));
            }
            _ => {
                return Err(err(
                    "the PFX is encrypted with scrypt, which is not supported; use PBKDF2",
                ));
            }
        }
        // PBES2 takes the password as UTF-8: the empty password is zero bytes.
        return params
            .decrypt(b"", data)
            .map(Zeroizing::new)
            .map_err(|_| wrong_password());
    }
    let pbe = Pkcs12PbeParams::from_der(&params).map_err(malformed)?;
    let iterations = u32::try_from(pbe.iterations).unwrap_or(0);
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(err(format!(
            "the PFX encryption iteration count {} is out of range (1 to {MAX_ITERATIONS})",
            pbe.iterations
        )));
    }
    let salt = pbe.salt.as_bytes();
    // The PKCS#12 key (1) and IV (2) derivations, always with SHA-1 for these schemes.
    let derive = |id, len| kdf::derive_sha1(password, salt, id, iterations, len);
    let plain = if alg.oid == PBE_SHA1_3DES {
        let (key, iv) = (derive(1, 24), derive(2, 8));
        cbc_decrypt::<des::TdesEde3>(&key, &iv, data)
    } else if alg.oid == PBE_SHA1_RC2_40 || alg.oid == PBE_SHA1_RC2_128 {
        let len = if alg.oid == PBE_SHA1_RC2_40 { 5 } else { 16 };
        let (key, iv) = (derive(1, len), derive(2, 8));
        // RC2's effective key length is the key length (40 or 128 bits), which `new_from_slice` uses.
        cbc_decrypt::<rc2::Rc2>(&key, &iv, data)
    } else {
        return Err(err(format!(
            "the PFX is encrypted with {}, which is not supported (3DES, RC2 and PBES2/AES are); re-export it \
             with AES-256-CBC",
            alg.oid
        )));
    };
    plain.ok_or_else(wrong_password)
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>>
where
    C: BlockCipherDecrypt + KeyInit,
{
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
    decryptor
        .decrypt_padded_vec::<Pkcs7>(data)
        .ok()
        .map(Zeroizing::new)
}

/// Re-encodes a PKCS#8 key as Go's `x509.MarshalPKCS8PrivateKey` does after parsing it: version 0, no
/// attributes; RSA with NULL parameters and the RSAPrivateKey unchanged (DER has one encoding of it);
/// EC with the named curve in the algorithm identifier and an inner ECPrivateKey holding the scalar
/// padded to the curve size and the public point derived from the scalar (Go ignores the stored one,
/// so we do too: a file without it, or with a compressed one, gives Go's bytes).
pub fn normalize_key(pkcs8: &[u8]) -> Result<Zeroizing<Vec<u8>>, ConvertError> {
    normalize_key_in(pkcs8, "in the PFX").map_err(ConvertError::Pkcs12)
}

/// [`normalize_key`] for a key found `place` (`"in the PFX"`, `"in the PEM"`): the error is the
/// reason alone, for the caller to frame.
pub(super) fn normalize_key_in(pkcs8: &[u8], place: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let info = PrivateKeyInfoRef::from_der(pkcs8)
        .map_err(|e| format!("a private key {place} is not valid PKCS#8 ({e})"))?;
    let version = [0x02, 0x01, 0x00];
    match info.algorithm.oid.as_bytes() {
        RSA_ENCRYPTION_OID => {
            check_rsa_private_key(info.private_key.as_bytes(), place)?;
            let algorithm = sequence(&[&oid(info.algorithm.oid.as_bytes()), &tlv(NULL, &[])]);
            let inner = Zeroizing::new(tlv(OCTET_STRING, info.private_key.as_bytes()));
            Ok(Zeroizing::new(sequence(&[&version, &algorithm, &inner])))
        }
        EC_PUBLIC_KEY_OID => {
            let ec = sec1::EcPrivateKey::from_der(info.private_key.as_bytes()).map_err(|e| {
                format!("an EC private key {place} is not a valid ECPrivateKey ({e})")
            })?;
            let curve_oid = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .or_else(|| ec.parameters.and_then(|p| p.named_curve()))
                .ok_or_else(|| {
                    format!(
                        "an EC private key {place} names no curve (explicit curve parameters are not \
                         supported); re-export it with a named curve"
                    )
                })?;
            let curve = Curve::from_oid(curve_oid.as_bytes()).ok_or_else(|| {
                format!(
                    "an EC private key {place} is on curve {curve_oid}, which is not supported (P-256, \
                     P-384 and P-521 are)"
                )
            })?;
            let invalid = || {
                format!(
                    "an EC private key {place} is invalid (its scalar is zero or out of range for the \
                     curve)"
                )
            };
            // Like Go: leading zero bytes beyond the curve size are tolerated, a short scalar is padded.
            let padded = curve.fixed_size(ec.private_key).ok_or_else(invalid)?;
            let public_point = curve.public_point(&padded).ok_or_else(invalid)?;
            let ec_version = [0x02, 0x01, 0x01];
            let inner = Zeroizing::new(sequence(&[
                &ec_version,
                &tlv(OCTET_STRING, &padded),
                &tlv(CONTEXT_1, &bit_string(&public_point)),
            ]));
            let algorithm = sequence(&[&oid(EC_PUBLIC_KEY_OID), &oid(curve.oid())]);
            let wrapped = Zeroizing::new(tlv(OCTET_STRING, &inner));
            Ok(Zeroizing::new(sequence(&[&version, &algorithm, &wrapped])))
        }
        _ => Err(format!(
            "a private key {place} uses algorithm {}; only RSA and EC keys are supported",
            info.algorithm.oid
        )),
    }
}

/// Go parses the RSAPrivateKey before re-encoding it, so a malformed one fails there; so it does here,
/// instead of being written out for the workload to trip on.
fn check_rsa_private_key(der_bytes: &[u8], place: &str) -> Result<(), String> {
    let elements: Vec<AnyRef<'_>> = Vec::from_der(der_bytes)
        .map_err(|e| format!("an RSA private key {place} is not a valid RSAPrivateKey ({e})"))?;
    // version, n, e, d, p, q, dp, dq, qinv (then, for multi-prime keys, otherPrimeInfos).
    let integers = elements
        .iter()
        .take(9)
        .filter(|a| der::asn1::UintRef::try_from(**a).is_ok())
        .count();
    if integers == 9 {
        Ok(())
    } else {
        Err(format!(
            "an RSA private key {place} is not a valid RSAPrivateKey (it needs nine non-negative \
             integers)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::convert::{ObjectFormat, SecretOptions, pem, secret_contents};

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/src/convert/testdata/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn to_pem(b64: &str, construct_pem_chain: bool) -> Result<(String, bool), ConvertError> {
        let options = SecretOptions {
            format: ObjectFormat::Pem,
            construct_pem_chain,
        };
        secret_contents(b64, Some("application/x-pkcs12"), true, options).map(|out| {
            (
                String::from_utf8(out.contents.to_vec()).unwrap(),
                out.warning.is_some(),
            )
        })
    }

    /// Fixtures from `testdata/gen.py` (OpenSSL 3): every PBE scheme we claim (3DES, RC2-40, RC2-128,
    /// PBES2 AES-128/256, none), SHA-1/256/512 MACs, MAC iteration 1, no MAC, RSA and P-256/384/521
    /// leaves, certificates bagged out of order, and an incomplete chain.
    #[test]
    fn generated_pfx_files_decode_to_key_then_ordered_chain() {
        let dir = format!("{}/src/convert/testdata", env!("CARGO_MANIFEST_DIR"));
        let mut cases: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".pfx.b64").map(str::to_owned)
            })
            .collect();
        cases.sort();
        assert!(cases.len() >= 9, "{cases:?}");
        for case in &cases {
            let input = fixture(&format!("{case}.pfx.b64"));
            let (out, warned) = to_pem(&input, true).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(out, fixture(&format!("{case}.expected.pem")), "{case}");
            assert_eq!(warned, case == "missing-intermediate", "{case}");
            let bag_order = format!(
                "{}/src/convert/testdata/{case}.bag-order.expected.pem",
                env!("CARGO_MANIFEST_DIR")
            );
            if let Ok(expected) = std::fs::read_to_string(bag_order) {
                let (out, warned) = to_pem(&input, false).unwrap();
                assert_eq!(out, expected, "{case} without --construct-pem-chain");
                assert!(!warned);
            }
        }
    }

    /// Key Vault's own PFX files, recorded by the Azure SDK test suites: the derived expectation in
    /// each vector (key as PKCS#8, then the certificates) byte for byte.
    #[test]
    fn recorded_key_vault_pfx_files_decode() {
        let dir = format!(
            "{}/tests/data/vectors/keyvault/c_get_secret_pkcs12",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let body = &v["response"]["body"];
            assert_eq!(body["contentType"], "application/x-pkcs12");
            let (out, warned) = to_pem(body["value"].as_str().unwrap(), true)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let expected = v["test_vector"]["derived_expected_pem_NOT_RECORDED"]
                .as_str()
                .unwrap();
            assert_eq!(out, expected, "{}", path.display());
            assert!(!warned);
            checked += 1;
        }
        assert_eq!(checked, 6);
    }

    /// Index into `EMPTY_PASSWORDS` of the form that verifies the MAC.
    fn mac_password(b64: &str) -> usize {
        let der_bytes = B64.decode(b64.trim()).unwrap();
        let pfx = Pfx::from_der(&der_bytes).unwrap();
        let auth_safe = OctetString::from_der(&pfx.auth_safe.content.to_der().unwrap()).unwrap();
        let mac = pfx.mac_data.unwrap();
        (0..2)
            .find(|&i| verify_mac(&mac, EMPTY_PASSWORDS[i], auth_safe.as_bytes()).unwrap())
            .unwrap()
    }

    /// Windows (and so Key Vault) writes some files with the zero-length password, OpenSSL with the
    /// empty BMPString: the vectors cover both, so both code paths are exercised.
    #[test]
    fn both_forms_of_the_empty_password_occur() {
        let vectors = format!("{}/tests/data/vectors/keyvault", env!("CARGO_MANIFEST_DIR"));
        let mut seen = [false; 2];
        for entry in std::fs::read_dir(format!("{vectors}/c_get_secret_pkcs12")).unwrap() {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap())
                    .unwrap();
            seen[mac_password(v["response"]["body"]["value"].as_str().unwrap())] = true;
        }
        for case in ["case1", "case2"] {
            let b64 = std::fs::read_to_string(format!(
                "{vectors}/go-provider-vectors/decodePKCS12/{case}/input.pfx.b64"
            ))
            .unwrap();
            seen[mac_password(&b64)] = true;
        }
        seen[mac_password(&fixture("pbes2-aes256.pfx.b64"))] = true;
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn a_tampered_pfx_fails_its_mac() {
        let b64 = fixture("pbes2-aes256.pfx.b64");
        let mut der = B64.decode(b64.trim()).unwrap();
        let last = der.len() - 1;
        der[last] ^= 0x01; // inside the MAC digest
        let err = decode(&B64.encode(&der)).err().unwrap();
        assert!(err.to_string().contains("MAC verification failed"), "{err}");
        assert!(err.to_string().contains("without a password"), "{err}");
        let middle = der.len() / 2;
        der[middle] ^= 0xff;
        assert!(decode(&B64.encode(&der)).is_err());
        for cut in [1, 10, der.len() / 3, der.len() - 1] {
            assert!(decode(&B64.encode(&der[..cut])).is_err(), "{cut}");
        }
    }

    /// A PFX whose MAC was computed with a real password: the message says what to do.
    #[test]
    fn a_password_protected_pfx_is_refused_with_advice() {
        let dir = tempdir();
        let key = format!("{dir}/key.pem");
        let cert = format!("{dir}/cert.pem");
        let out = format!("{dir}/out.pfx");
        let run = |args: &[&str]| {
            std::process::Command::new("openssl")
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        // openssl is a test-time convenience here; without it the case is covered by the MAC test.
        if !run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=pw",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "1",
        ]) {
            return;
        }
        assert!(run(&[
            "pkcs12",
            "-export",
            "-inkey",
            &key,
            "-in",
            &cert,
            "-passout",
            "pass:secret",
            "-out",
            &out,
        ]));
        let b64 = B64.encode(std::fs::read(&out).unwrap());
        let err = decode(&b64).err().unwrap().to_string();
        assert!(
            err.contains("MAC verification failed with the empty password"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempdir() -> String {
        let dir = std::env::temp_dir().join(format!(
            "akv-convert-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.to_string_lossy().into_owned()
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in ["", "!!!", "AAAA", "MIIBAAAA", "MAA=", "MIAwgAAA"] {
            assert!(decode(input).is_err(), "{input}");
        }
        assert!(normalize_key(&[0x30, 0x00]).is_err());
    }

    /// The expected P-256 key of a fixture, re-encoded by hand in the forms other tools write: the
    /// normalized output is always OpenSSL's (and Go's) form.
    #[test]
    fn ec_keys_are_normalized_whatever_their_form() {
        let expected_pem = fixture("legacy-mac-iter-1.expected.pem");
        let blocks = pem::decode_all(expected_pem.as_bytes());
        assert_eq!(blocks[0].label, "PRIVATE KEY");
        let expected = blocks[0].der.to_vec();
        let info = PrivateKeyInfoRef::from_der(&expected).unwrap();
        let ec = sec1::EcPrivateKey::from_der(info.private_key.as_bytes()).unwrap();
        let scalar = ec.private_key.to_vec();
        let public = ec.public_key.unwrap().to_vec();
        let p256 = oid(Curve::P256.oid());
        let algorithm = sequence(&[&oid(EC_PUBLIC_KEY_OID), &p256]);
        let bare_algorithm = sequence(&[&oid(EC_PUBLIC_KEY_OID)]);
        let pkcs8 = |algorithm: &[u8], inner: &[&[u8]]| {
            sequence(&[
                &[0x02, 0x01, 0x00],
                algorithm,
                &tlv(OCTET_STRING, &sequence(inner)),
            ])
        };
        let v1 = [0x02, 0x01, 0x01];
        let params = tlv(0xa0, &p256);
        let public_field = tlv(CONTEXT_1, &bit_string(&public));
        let mut compressed = vec![0x02 | (public[64] & 1)];
        compressed.extend_from_slice(&public[1..33]);
        let compressed_field = tlv(CONTEXT_1, &bit_string(&compressed));
        let mut padded = vec![0u8];
        padded.extend_from_slice(&scalar);
        let skip = scalar.iter().take_while(|b| **b == 0).count();
        let variants: Vec<(&str, Vec<u8>)> = vec![
            ("as OpenSSL writes it", expected.clone()),
            (
                "without the public key",
                pkcs8(&algorithm, &[&v1, &tlv(OCTET_STRING, &scalar)]),
            ),
            (
                "with curve parameters inside (Java, old OpenSSL)",
                pkcs8(
                    &algorithm,
                    &[&v1, &tlv(OCTET_STRING, &scalar), &params, &public_field],
                ),
            ),
            (
                "with the curve only inside",
                pkcs8(
                    &bare_algorithm,
                    &[&v1, &tlv(OCTET_STRING, &scalar), &params],
                ),
            ),
            (
                "with a compressed public key",
                pkcs8(
                    &algorithm,
                    &[&v1, &tlv(OCTET_STRING, &scalar), &compressed_field],
                ),
            ),
            (
                "with a zero byte before the scalar",
                pkcs8(&algorithm, &[&v1, &tlv(OCTET_STRING, &padded)]),
            ),
            (
                "with the scalar's leading zeros stripped",
                pkcs8(&algorithm, &[&v1, &tlv(OCTET_STRING, &scalar[skip..])]),
            ),
            (
                "with attributes",
                sequence(&[
                    &[0x02, 0x01, 0x00],
                    &algorithm,
                    &tlv(OCTET_STRING, &sequence(&[&v1, &tlv(OCTET_STRING, &scalar)])),
                    &tlv(0xa0, &[]),
                ]),
            ),
        ];
        for (what, der_bytes) in variants {
            match normalize_key(&der_bytes) {
                Ok(out) => assert_eq!(out.as_slice(), expected.as_slice(), "{what}"),
                Err(e) => panic!("{what}: {e}"),
            }
        }
        let mut too_big = vec![0xffu8; 32];
        too_big[0] = 0xff;
        for (what, der_bytes) in [
            (
                "a zero scalar",
                pkcs8(&algorithm, &[&v1, &tlv(OCTET_STRING, &[0u8; 32])]),
            ),
            (
                "a scalar above the order",
                pkcs8(&algorithm, &[&v1, &tlv(OCTET_STRING, &too_big)]),
            ),
            (
                "a scalar too long",
                pkcs8(&algorithm, &[&v1, &tlv(OCTET_STRING, &[1u8; 33])]),
            ),
            (
                "no curve",
                pkcs8(&bare_algorithm, &[&v1, &tlv(OCTET_STRING, &scalar)]),
            ),
            (
                "an unknown curve",
                pkcs8(
                    &sequence(&[
                        &oid(EC_PUBLIC_KEY_OID),
                        &oid(&[0x2b, 0x81, 0x04, 0x00, 0x0a]),
                    ]),
                    &[&v1, &tlv(OCTET_STRING, &scalar)],
                ),
            ),
        ] {
            assert!(normalize_key(&der_bytes).is_err(), "{what}");
        }
    }

    #[test]
    fn rsa_keys_lose_their_attributes_and_must_be_well_formed() {
        let expected_pem = fixture("pbes2-aes256.expected.pem");
        let blocks = pem::decode_all(expected_pem.as_bytes());
        let expected = blocks[0].der.to_vec();
        let info = PrivateKeyInfoRef::from_der(&expected).unwrap();
        let rsa = info.private_key.as_bytes();
        let algorithm = sequence(&[
            &oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]),
            &tlv(NULL, &[]),
        ]);
        let with_attributes = sequence(&[
            &[0x02, 0x01, 0x00],
            &algorithm,
            &tlv(OCTET_STRING, rsa),
            &tlv(0xa0, &[]),
        ]);
        assert_eq!(
            normalize_key(&with_attributes).unwrap().as_slice(),
            expected.as_slice()
        );
        let garbage = sequence(&[
            &[0x02, 0x01, 0x00],
            &algorithm,
            &tlv(OCTET_STRING, &sequence(&[&[0x02, 0x01, 0x00]])),
        ]);
        assert!(
            normalize_key(&garbage)
                .unwrap_err()
                .to_string()
                .contains("RSAPrivateKey")
        );
        let ed25519 = sequence(&[
            &[0x02, 0x01, 0x00],
            &sequence(&[&oid(&[0x2b, 0x65, 0x70])]),
            &tlv(OCTET_STRING, &tlv(OCTET_STRING, &[0u8; 32])),
        ]);
        assert!(
            normalize_key(&ed25519)
                .unwrap_err()
                .to_string()
                .contains("1.3.101.112")
        );
    }
}
