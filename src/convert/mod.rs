//! Pure conversions from Key Vault payloads to mounted file contents (README, "Object types").
//!
//! Nothing here does I/O: each function takes what Key Vault returned and the object's options and
//! gives the exact bytes the Go provider would have written, so swapping providers changes no file.

pub mod chain;
mod der_writer;
mod ec;
mod encoding;
pub(crate) mod files;
pub mod json;
pub mod jwk;
mod kdf;
pub mod pem;
mod pem_pfx;
pub(crate) mod pkcs12;
mod pkcs12_write;

use zeroize::Zeroizing;

/// `objectFormat` of a certificate-backed secret.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ObjectFormat {
    /// `pem` (default): PFX certificates become PEM.
    #[default]
    Pem,
    /// `pfx`: the PFX itself.
    Pfx,
}

/// `objectEncoding` of a secret, applied after the format conversion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ObjectEncoding {
    /// `utf-8` (default): unchanged.
    #[default]
    Utf8,
    /// `base64`: decoded from standard base64.
    Base64,
    /// `hex`: decoded from hex.
    Hex,
}

/// Why a payload could not be turned into file contents. Messages name what was wrong; the caller
/// adds the vault and object.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ConvertError {
    /// `objectEncoding` does not match the value. The reason gives a position, never the value's bytes.
    #[error("objectEncoding is {encoding} but the value is not valid {encoding}: {reason}")]
    Decode {
        /// `base64` or `hex`.
        encoding: &'static str,
        /// Where decoding stopped.
        reason: String,
    },
    /// A certificate-backed secret in a format we cannot convert.
    #[error(
        "the secret is certificate-backed (it has a kid) but its contentType {content_type:?} is neither \
         application/x-pkcs12 nor application/x-pem-file; re-import the certificate in one of those formats"
    )]
    UnsupportedContentType {
        /// The `contentType` Key Vault returned.
        content_type: Option<String>,
    },
    /// A key type, curve or algorithm we cannot write (the message names it).
    #[error("{0}")]
    Unsupported(String),
    /// The PFX could not be read (the message says why and what to do).
    #[error("cannot decode the certificate's PFX: {0}")]
    Pkcs12(String),
    /// A `jmesPath` item could not be written.
    #[error(transparent)]
    JsonKey(#[from] json::JsonKeyError),
    /// A field of Key Vault's answer is not what the API documents.
    #[error("Key Vault's {field} field is not valid: {reason}")]
    Malformed {
        /// The JSON field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate stored as PEM cannot be written as the PKCS#12 `objectFormat: pfx` asks for (the
    /// message says why and what to do).
    #[error("the certificate is stored as PEM (contentType application/x-pem-file): {0}")]
    PemAsPfx(String),
}

/// Options that change how a secret's value becomes a file.
#[derive(Clone, Copy, Debug)]
pub struct SecretOptions {
    /// `objectFormat`.
    pub format: ObjectFormat,
    /// `--construct-pem-chain`.
    pub construct_pem_chain: bool,
}

/// Converted contents, with a warning for the log when the result is not what the user probably
/// wanted (an incomplete certificate chain kept in file order).
pub struct Converted {
    /// The file's contents before `objectEncoding`.
    pub contents: Zeroizing<Vec<u8>>,
    /// For the log: the chain could not be ordered.
    pub warning: Option<String>,
}

/// The `contentType` of a certificate-backed secret held as PFX.
const PKCS12: &str = "application/x-pkcs12";
const PEM_FILE: &str = "application/x-pem-file";

/// The file contents for `objectType: secret`, before `objectEncoding` is applied (README, "Object types").
///
/// A plain secret (no `kid`) is its value's bytes whatever its content type. A certificate-backed
/// one depends on its exact content type: PEM passes through; PKCS#12 is either passed through
/// (`objectFormat: pfx`) or decoded into PKCS#8 keys followed by the certificates.
pub fn secret_contents(
    value: &str,
    content_type: Option<&str>,
    certificate_backed: bool,
    options: SecretOptions,
) -> Result<Converted, ConvertError> {
    let unchanged = || Converted {
        contents: Zeroizing::new(value.as_bytes().to_vec()),
        warning: None,
    };
    if !certificate_backed {
        return Ok(unchanged());
    }
    match content_type {
        Some(PEM_FILE) => Ok(unchanged()),
        Some(PKCS12) if options.format == ObjectFormat::Pfx => Ok(unchanged()),
        Some(PKCS12) => pfx_to_pem(value, options.construct_pem_chain),
        other => Err(ConvertError::UnsupportedContentType {
            content_type: other.map(str::to_owned),
        }),
    }
}

/// [`secret_contents`] knowing the `objectEncoding` applied next: `objectFormat: pfx` on a certificate
/// stored as PEM becomes a PKCS#12 (base64, like Key Vault's own) when `objectEncoding: base64` asks
/// for a binary file, the one combination the Go provider fails on (see `pem_pfx`).
pub fn secret_contents_for(
    value: &str,
    content_type: Option<&str>,
    certificate_backed: bool,
    options: SecretOptions,
    encoding: ObjectEncoding,
) -> Result<Converted, ConvertError> {
    if is_pem_as_pfx(content_type, certificate_backed, options.format) {
        return pem_pfx::secret_contents(value, encoding);
    }
    secret_contents(value, content_type, certificate_backed, options)
}

/// Whether `objectFormat: pfx` meets a certificate stored as PEM.
pub fn is_pem_as_pfx(
    content_type: Option<&str>,
    certificate_backed: bool,
    format: ObjectFormat,
) -> bool {
    certificate_backed && format == ObjectFormat::Pfx && content_type == Some(PEM_FILE)
}

/// Keys first (PKCS#8), then certificates, ordered leaf to root when asked and possible.
fn pfx_to_pem(value: &str, construct_pem_chain: bool) -> Result<Converted, ConvertError> {
    let decoded = pkcs12::decode(value)?;
    let mut out = Zeroizing::new(String::new());
    for key in &decoded.keys {
        out.push_str(&Zeroizing::new(pem::encode("PRIVATE KEY", key)));
    }
    let (order, warning) = if construct_pem_chain {
        let ordered = chain::order(&decoded.certs)?;
        let warning = (!ordered.complete).then(|| {
            "certificate chain is not complete (a certificate is missing, or several chains are present); \
             certificates kept in the order of the PFX"
                .to_owned()
        });
        (ordered.order, warning)
    } else {
        ((0..decoded.certs.len()).collect(), None)
    };
    for i in order {
        out.push_str(&pem::encode("CERTIFICATE", &decoded.certs[i]));
    }
    Ok(Converted {
        contents: Zeroizing::new(out.as_bytes().to_vec()),
        warning,
    })
}

/// `objectType: cert`: the leaf certificate (DER, from the `cer` field) as one PEM block.
pub fn cert_pem(der: &[u8]) -> String {
    pem::encode("CERTIFICATE", der)
}

/// `--write-cert-and-key-in-separate-files`: (every CERTIFICATE block, every other block), each in
/// the order of the input. Like Go's `splitCertAndKey`, each block is decoded and encoded again, so
/// text between blocks is dropped and the blocks come out in canonical form.
///
/// Plain vectors, because the caller wraps them for zeroizing; the intermediate text is zeroized here.
pub fn split_cert_and_key(pem_text: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let blocks: Vec<(bool, Zeroizing<String>)> = pem::decode_all(pem_text)
        .into_iter()
        .map(|b| (b.label == "CERTIFICATE", Zeroizing::new(b.encode())))
        .collect();
    // Sized up front so that no reallocation leaves a copy of a key behind.
    let size = |cert: bool| {
        blocks
            .iter()
            .filter(|(c, _)| *c == cert)
            .map(|(_, t)| t.len())
            .sum()
    };
    let mut certs = Vec::with_capacity(size(true));
    let mut keys = Vec::with_capacity(size(false));
    for (cert, text) in &blocks {
        let out = if *cert { &mut certs } else { &mut keys };
        out.extend_from_slice(text.as_bytes());
    }
    (certs, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(path: &str) -> String {
        let full = format!(
            "{}/tests/data/vectors/keyvault/go-provider-vectors/{path}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    fn manifest() -> Vec<serde_json::Value> {
        let m: serde_json::Value = serde_json::from_str(&go("manifest.json")).unwrap();
        m["vectors"].as_array().unwrap().clone()
    }

    const PEM_CHAIN: SecretOptions = SecretOptions {
        format: ObjectFormat::Pem,
        construct_pem_chain: true,
    };

    #[test]
    fn decode_pkcs12_vectors() {
        for case in ["case1", "case2"] {
            let input = go(&format!("decodePKCS12/{case}/input.pfx.b64"));
            let out = secret_contents(&input, Some(PKCS12), true, PEM_CHAIN).unwrap();
            let expected = go(&format!("decodePKCS12/{case}/expected_output.pem"));
            assert_eq!(
                String::from_utf8(out.contents.to_vec()).unwrap(),
                expected,
                "{case}"
            );
            assert!(out.warning.is_none());
        }
    }

    /// TestGetSecret: every case's files, including the split `.crt`/`.key`.
    #[test]
    fn get_secret_vectors() {
        let mut checked = 0;
        for v in manifest() {
            if v["kind"] != "secret_bundle_to_files" {
                continue;
            }
            let dir = v["files"][0]
                .as_str()
                .unwrap()
                .rsplit_once('/')
                .unwrap()
                .0
                .to_owned();
            let input = go(&format!("{dir}/input_secret_value.txt"));
            let bundle = &v["input_secret_bundle"];
            let format = match v["objectFormat"].as_str() {
                Some("pfx") => ObjectFormat::Pfx,
                _ => ObjectFormat::Pem,
            };
            let options = SecretOptions {
                format,
                construct_pem_chain: true,
            };
            let out = secret_contents(
                &input,
                bundle["contentType"].as_str(),
                bundle["kid"].is_string(),
                options,
            )
            .unwrap();
            let main = String::from_utf8(out.contents.to_vec()).unwrap();
            for expected in v["expected_outputs"].as_array().unwrap() {
                let want = go(&format!("{dir}/{}", expected["file"].as_str().unwrap()));
                let got = match expected["fileNameSuffix"].as_str().unwrap() {
                    "" => main.clone(),
                    ".crt" => String::from_utf8(split_cert_and_key(main.as_bytes()).0).unwrap(),
                    ".key" => String::from_utf8(split_cert_and_key(main.as_bytes()).1).unwrap(),
                    other => panic!("unknown suffix {other}"),
                };
                assert_eq!(got, want, "{}: {}", v["desc"], expected["file"]);
                checked += 1;
            }
        }
        assert_eq!(checked, 8);
    }

    #[test]
    fn split_cert_and_key_vectors() {
        let v = manifest()
            .into_iter()
            .find(|v| v["kind"] == "split_cert_and_key")
            .unwrap();
        let concat = |expr: &str| -> String {
            expr.split(" + ")
                .map(|name| go(&format!("splitCertAndKey/{}.pem", name.trim())))
                .collect()
        };
        for case in v["cases"].as_array().unwrap() {
            let (crt, key) = split_cert_and_key(concat(case["input"].as_str().unwrap()).as_bytes());
            assert_eq!(
                String::from_utf8(crt).unwrap(),
                concat(case["expectedCert"].as_str().unwrap())
            );
            assert_eq!(
                String::from_utf8(key).unwrap(),
                concat(case["expectedKey"].as_str().unwrap())
            );
        }
    }

    /// A PEM secret as `openssl pkcs12 -nodes` writes it (Bag Attributes between blocks) with CRLF
    /// line breaks and 76-column lines: the split files are canonical, as Go writes them.
    #[test]
    fn split_normalizes_like_go() {
        let key = pem::encode("PRIVATE KEY", &[7u8; 100]);
        let cert = pem::encode("CERTIFICATE", &[9u8; 120]);
        let messy = |text: &str| -> String {
            let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            let label = text.lines().next().unwrap();
            let end = text.lines().last().unwrap();
            let mut out = format!("Bag Attributes\r\n    localKeyID: 01 \r\n{label}\r\n");
            for chunk in b64.as_bytes().chunks(76) {
                out.push_str(std::str::from_utf8(chunk).unwrap());
                out.push_str("\r\n");
            }
            out.push_str(end);
            out.push_str("\r\n");
            out
        };
        let input = messy(&key) + &messy(&cert) + &messy(&cert);
        let (crt, k) = split_cert_and_key(input.as_bytes());
        assert_eq!(String::from_utf8(crt).unwrap(), cert.clone() + &cert);
        assert_eq!(String::from_utf8(k).unwrap(), key);
    }

    #[test]
    fn get_content_bytes_vectors() {
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(&go("getContentBytes.json")).unwrap();
        for case in cases {
            let encoding = match case["objectEncoding"]
                .as_str()
                .unwrap()
                .to_ascii_lowercase()
                .as_str()
            {
                "" | "utf-8" => ObjectEncoding::Utf8,
                "base64" => ObjectEncoding::Base64,
                "hex" => ObjectEncoding::Hex,
                // The Go provider refuses unknown encodings; we refuse them at validation time.
                _ => continue,
            };
            let input = Zeroizing::new(case["objectContent"].as_str().unwrap().as_bytes().to_vec());
            let out = encoding::decode(input, encoding);
            match case["expectedValue_hex"].as_str() {
                Some(hex_value) if case["expectedErr"] == "nil" => {
                    assert_eq!(
                        hex::encode(out.unwrap().as_slice()),
                        hex_value,
                        "{}",
                        case["desc"]
                    );
                }
                _ => assert!(out.is_err(), "{}", case["desc"]),
            }
        }
    }

    fn vector(path: &str) -> serde_json::Value {
        let full = format!(
            "{}/tests/data/vectors/keyvault/{path}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&full).unwrap()).unwrap()
    }

    /// Recorded `application/x-pem-file` certificate secrets: written unchanged, and split into the
    /// key and the certificates as the recorded blocks say.
    #[test]
    fn recorded_pem_certificate_secrets() {
        let dir = format!(
            "{}/tests/data/vectors/keyvault/b_get_secret_pem",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let v = vector(&format!("b_get_secret_pem/{name}"));
            let body = &v["response"]["body"];
            let out = secret_contents(
                body["value"].as_str().unwrap(),
                body["contentType"].as_str(),
                body["kid"].is_string(),
                PEM_CHAIN,
            )
            .unwrap();
            let expected = v["test_vector"]["expected_provider_output"]
                .as_str()
                .unwrap();
            assert_eq!(out.contents.as_slice(), expected.as_bytes(), "{name}");
            let (crt, key) = split_cert_and_key(&out.contents);
            let labels = |text: &[u8]| -> Vec<String> {
                pem::decode_all(text).into_iter().map(|b| b.label).collect()
            };
            let recorded: Vec<String> =
                serde_json::from_value(v["verification"]["pem_block_types"].clone()).unwrap();
            let (want_crt, want_key): (Vec<String>, Vec<String>) =
                recorded.into_iter().partition(|l| l == "CERTIFICATE");
            assert_eq!(labels(&crt), want_crt, "{name}");
            assert_eq!(labels(&key), want_key, "{name}");
            checked += 1;
        }
        assert_eq!(checked, 3);
    }

    /// Every recorded GET certificate `cer`, against `testdata/cert-expected.json` (openssl x509).
    #[test]
    fn recorded_certificates() {
        let expected: std::collections::BTreeMap<String, String> = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/src/convert/testdata/cert-expected.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        assert!(expected.len() >= 20);
        for (path, want) in expected {
            let cer = vector(&path)["response"]["body"]["cer"]
                .as_str()
                .unwrap()
                .to_owned();
            let der =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, cer).unwrap();
            assert_eq!(cert_pem(&der), want, "{path}");
        }
    }

    #[test]
    fn get_certificate_vector() {
        assert_eq!(cert_pem(b"test"), go("getCertificate/expected_output.pem"));
    }

    /// Only a certificate-backed secret stored as PEM with `objectFormat: pfx` becomes a PKCS#12, and
    /// only that (with base64) is sent to the blocking pool; everything else is what it was.
    #[test]
    fn only_pem_stored_certificates_asked_as_pfx_are_built() {
        let pem_text = std::fs::read_to_string(format!(
            "{}/tests/data/vectors/keyvault/b_get_secret_pem/cpp__KeyVaultCertificateClientTest.DownloadImportPem__005.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&pem_text).unwrap();
        let pem_value = v["response"]["body"]["value"].as_str().unwrap();
        let pfx = SecretOptions {
            format: ObjectFormat::Pfx,
            construct_pem_chain: true,
        };
        let built =
            secret_contents_for(pem_value, Some(PEM_FILE), true, pfx, ObjectEncoding::Base64)
                .unwrap();
        assert!(pkcs12::decode(std::str::from_utf8(&built.contents).unwrap()).is_ok());
        for (value, content_type, backed, options, encoding) in [
            (
                pem_value,
                Some(PEM_FILE),
                false,
                pfx,
                ObjectEncoding::Base64,
            ),
            (
                pem_value,
                Some(PEM_FILE),
                true,
                PEM_CHAIN,
                ObjectEncoding::Base64,
            ),
            ("QUJD", Some(PKCS12), true, pfx, ObjectEncoding::Base64),
        ] {
            let out = secret_contents_for(value, content_type, backed, options, encoding).unwrap();
            assert_eq!(out.contents.as_slice(), value.as_bytes());
        }
        let file_options = |format, encoding| files::SecretFileOptions {
            format,
            encoding,
            construct_pem_chain: true,
            split_files: false,
        };
        let expensive = |content_type, backed, format, encoding| {
            files::secret_is_expensive(content_type, backed, file_options(format, encoding))
        };
        assert!(expensive(
            Some(PEM_FILE),
            true,
            ObjectFormat::Pfx,
            ObjectEncoding::Base64
        ));
        assert!(!expensive(
            Some(PEM_FILE),
            true,
            ObjectFormat::Pfx,
            ObjectEncoding::Utf8
        ));
        assert!(!expensive(
            Some(PEM_FILE),
            false,
            ObjectFormat::Pfx,
            ObjectEncoding::Base64
        ));
        assert!(!expensive(
            Some(PKCS12),
            true,
            ObjectFormat::Pfx,
            ObjectEncoding::Base64
        ));
    }

    #[test]
    fn plain_secrets_and_pem_pass_through_and_other_types_are_refused() {
        let out = secret_contents("v", Some("application/x-pkcs12"), false, PEM_CHAIN).unwrap();
        assert_eq!(
            out.contents.as_slice(),
            b"v",
            "no kid: plain, whatever the content type"
        );
        let pem = "-----BEGIN X-----\nAA==\n-----END X-----\n";
        let out = secret_contents(pem, Some(PEM_FILE), true, PEM_CHAIN).unwrap();
        assert_eq!(out.contents.as_slice(), pem.as_bytes());
        // Regression: the Go provider crashes on a kid without a content type.
        for ct in [None, Some("application/json"), Some("APPLICATION/X-PKCS12")] {
            assert!(matches!(
                secret_contents("x", ct, true, PEM_CHAIN),
                Err(ConvertError::UnsupportedContentType { .. })
            ));
        }
    }
}
