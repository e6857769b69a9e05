//! Certificate-backed secrets stored as PKCS#12 (`application/x-pkcs12`, base64, empty password):
//! every private key as unencrypted PKCS#8, then the certificates, in the order of their bags
//! (spec 5.1).
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
use super::der_writer::{CONTEXT_1, NULL, OCTET_STRING, bit_string, oid, sequence, tlv};

/// OIDs (dotted) of the key algorithms we re-encode.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const PBE_SHA1_RC2_128: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5");
const PBE_SHA1_RC2_40: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

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
    let der_bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(base64_pfx.trim())
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
    let password = match &pfx.mac_data {
        Some(mac) => EMPTY_PASSWORDS
            .into_iter()
            .find(|pw| verify_mac(mac, pw, auth_safe).unwrap_or(false))
            .ok_or_else(|| {
                // Distinguish an unsupported MAC from a wrong password.
                match verify_mac(mac, EMPTY_PASSWORDS[0], auth_safe) {
                    Err(e) => e,
                    Ok(_) => err(
                        "MAC verification failed with the empty password: Key Vault stores certificates \
                         without a password; re-import the PFX without one",
                    ),
                }
            })?,
        None => EMPTY_PASSWORDS[0],
    };
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
            "the PFX MAC iteration count {} is out of range",
            mac.iterations
        )));
    }
    let salt = mac.mac_salt.as_bytes();
    let expected = mac.mac.digest.as_bytes();
    let algorithm = mac.mac.algorithm.oid;
    if algorithm == SHA1 {
        let key = Zeroizing::new(derive_key::<sha1::Sha1>(
            password,
            salt,
            Pkcs12KeyType::Mac,
            mac.iterations,
            20,
        ));
        let mut hmac =
            hmac::Hmac::<sha1::Sha1>::new_from_slice(&key).map_err(|_| err("bad MAC key"))?;
        hmac.update(data);
        Ok(hmac.verify_slice(expected).is_ok())
    } else if algorithm == SHA256 {
        let key = Zeroizing::new(derive_key::<sha2::Sha256>(
            password,
            salt,
            Pkcs12KeyType::Mac,
            mac.iterations,
            32,
        ));
        let mut hmac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|_| err("bad MAC key"))?;
        hmac.update(data);
        Ok(hmac.verify_slice(expected).is_ok())
    } else {
        Err(err(format!(
            "the PFX MAC uses digest {algorithm}, which is not supported (SHA-1 and SHA-256 are); re-export \
             the PFX"
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
                    "the PFX PBKDF2 iteration count {} is too large",
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
            "the PFX encryption iteration count {} is out of range",
            pbe.iterations
        )));
    }
    let salt = pbe.salt.as_bytes();
    let derive = |id, len| {
        Zeroizing::new(derive_key::<sha1::Sha1>(
            password,
            salt,
            id,
            pbe.iterations,
            len,
        ))
    };
    let plain = if alg.oid == PBE_SHA1_3DES {
        let (key, iv) = (
            derive(Pkcs12KeyType::EncryptionKey, 24),
            derive(Pkcs12KeyType::Iv, 8),
        );
        cbc_decrypt::<des::TdesEde3>(&key, &iv, data)
    } else if alg.oid == PBE_SHA1_RC2_40 || alg.oid == PBE_SHA1_RC2_128 {
        let len = if alg.oid == PBE_SHA1_RC2_40 { 5 } else { 16 };
        let (key, iv) = (
            derive(Pkcs12KeyType::EncryptionKey, len),
            derive(Pkcs12KeyType::Iv, 8),
        );
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

/// Re-encodes a PKCS#8 key as Go does: version 0, no attributes; RSA with NULL parameters and the
/// RSAPrivateKey unchanged; EC with the named curve in the algorithm identifier and an inner
/// ECPrivateKey that carries the public key and no curve parameters.
pub fn normalize_key(pkcs8: &[u8]) -> Result<Zeroizing<Vec<u8>>, ConvertError> {
    let info = PrivateKeyInfoRef::from_der(pkcs8).map_err(|e| {
        ConvertError::Pkcs12(format!(
            "a private key in the PFX is not valid PKCS#8 ({e})"
        ))
    })?;
    let algorithm_oid = info.algorithm.oid.to_string();
    let version = [0x02, 0x01, 0x00];
    match algorithm_oid.as_str() {
        RSA_ENCRYPTION => {
            let algorithm = sequence(&[&oid(info.algorithm.oid.as_bytes()), &tlv(NULL, &[])]);
            let inner = Zeroizing::new(tlv(OCTET_STRING, info.private_key.as_bytes()));
            Ok(Zeroizing::new(sequence(&[&version, &algorithm, &inner])))
        }
        EC_PUBLIC_KEY => {
            let ec = sec1::EcPrivateKey::from_der(info.private_key.as_bytes()).map_err(|e| {
                ConvertError::Pkcs12(format!(
                    "an EC private key in the PFX is not a valid ECPrivateKey ({e})"
                ))
            })?;
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
                .or_else(|| ec.parameters.and_then(|p| p.named_curve()))
                .ok_or_else(|| {
                    ConvertError::Pkcs12("an EC private key in the PFX names no curve".to_owned())
                })?;
            let public_key = ec.public_key.ok_or_else(|| {
                ConvertError::Pkcs12(
                    "an EC private key in the PFX has no public key; re-export the PFX with OpenSSL or Windows, \
                     which include it"
                        .to_owned(),
                )
            })?;
            let size = match curve.as_bytes() {
                c if c == super::jwk::P256 => 32,
                c if c == super::jwk::P384 => 48,
                c if c == super::jwk::P521 => 66,
                _ => {
                    return Err(ConvertError::Pkcs12(format!(
                        "an EC private key in the PFX is on curve {curve}, which is not supported"
                    )));
                }
            };
            // Go writes the scalar padded to the curve size.
            let scalar = ec.private_key;
            let skip = scalar.iter().take_while(|b| **b == 0).count();
            let digits = &scalar[skip..];
            if digits.len() > size {
                return Err(ConvertError::Pkcs12(
                    "an EC private key in the PFX is malformed".to_owned(),
                ));
            }
            let mut padded = Zeroizing::new(vec![0u8; size - digits.len()]);
            padded.extend_from_slice(digits);
            let ec_version = [0x02, 0x01, 0x01];
            let inner = Zeroizing::new(sequence(&[
                &ec_version,
                &tlv(OCTET_STRING, &padded),
                &tlv(CONTEXT_1, &bit_string(public_key)),
            ]));
            let algorithm =
                sequence(&[&oid(info.algorithm.oid.as_bytes()), &oid(curve.as_bytes())]);
            let wrapped = Zeroizing::new(tlv(OCTET_STRING, &inner));
            Ok(Zeroizing::new(sequence(&[&version, &algorithm, &wrapped])))
        }
        other => Err(ConvertError::Pkcs12(format!(
            "a private key in the PFX uses algorithm {other}; only RSA and EC keys are supported"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::convert::{ObjectFormat, SecretOptions, secret_contents};

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/src/convert/testdata/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// Fixtures from `testdata/gen.py` (OpenSSL 3): every PBE scheme we claim, RSA and EC leaves,
    /// certificates bagged out of order, and an incomplete chain.
    #[test]
    fn generated_pfx_files_decode_to_key_then_ordered_chain() {
        let options = SecretOptions {
            format: ObjectFormat::Pem,
            construct_pem_chain: true,
        };
        for case in [
            "legacy-3des-rc2",
            "legacy-mac-iter-1",
            "pbes2-aes256",
            "pbes2-aes128",
            "missing-intermediate",
        ] {
            let out = secret_contents(
                &fixture(&format!("{case}.pfx.b64")),
                Some("application/x-pkcs12"),
                true,
                options,
            )
            .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(
                String::from_utf8(out.contents.to_vec()).unwrap(),
                fixture(&format!("{case}.expected.pem")),
                "{case}"
            );
            assert_eq!(
                out.warning.is_some(),
                case == "missing-intermediate",
                "{case}"
            );
        }
    }

    #[test]
    fn a_tampered_pfx_fails_its_mac() {
        let b64 = fixture("pbes2-aes256.pfx.b64");
        let mut der = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap();
        let last = der.len() - 1;
        der[last] ^= 0x01; // inside the MAC digest
        let err = decode(&base64::engine::general_purpose::STANDARD.encode(&der))
            .err()
            .unwrap();
        assert!(err.to_string().contains("MAC verification failed"), "{err}");
        let middle = der.len() / 2;
        der[middle] ^= 0xff;
        assert!(decode(&base64::engine::general_purpose::STANDARD.encode(&der)).is_err());
        let truncated = base64::engine::general_purpose::STANDARD.encode(&der[..der.len() / 3]);
        assert!(decode(&truncated).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in ["", "!!!", "AAAA", "MIIBAAAA"] {
            assert!(decode(input).is_err(), "{input}");
        }
        assert!(normalize_key(&[0x30, 0x00]).is_err());
    }
}
