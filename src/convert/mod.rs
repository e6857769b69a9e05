//! Pure conversions from Key Vault payloads to mounted file contents (spec 05).
//!
//! Nothing here does I/O: each function takes what Key Vault returned and the object's options and
//! gives the exact bytes the Go provider would have written, so swapping providers changes no file.

pub mod chain;
pub mod der_writer;
pub mod encoding;
pub mod pkcs12;

use zeroize::Zeroizing;

/// `objectFormat` of a certificate-backed secret.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ObjectFormat {
    #[default]
    Pem,
    Pfx,
}

/// `objectEncoding` of a secret, applied after the format conversion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ObjectEncoding {
    #[default]
    Utf8,
    Base64,
    Hex,
}

/// Why a payload could not be turned into file contents. Messages name what was wrong; the caller
/// adds the vault and object.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("objectEncoding is {encoding} but the value is not valid {encoding}: {reason}")]
    Decode {
        encoding: &'static str,
        reason: String,
    },
    #[error(
        "the secret is certificate-backed (it has a kid) but its contentType {content_type:?} is neither \
         application/x-pkcs12 nor application/x-pem-file; re-import the certificate in one of those formats"
    )]
    UnsupportedContentType { content_type: Option<String> },
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot decode the certificate's PFX: {0}")]
    Pkcs12(String),
}

/// Options that change how a secret's value becomes a file.
#[derive(Clone, Copy, Debug)]
pub struct SecretOptions {
    pub format: ObjectFormat,
    pub construct_pem_chain: bool,
}

/// Converted contents, with a warning for the log when the result is not what the user probably
/// wanted (an incomplete certificate chain kept in file order).
pub struct Converted {
    pub contents: Zeroizing<Vec<u8>>,
    pub warning: Option<String>,
}

const PKCS12: &str = "application/x-pkcs12";
const PEM_FILE: &str = "application/x-pem-file";

/// The file contents for `objectType: secret`, before `objectEncoding` is applied (spec 5.1).
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

pub mod jwk;
pub mod pem;

/// `objectType: cert`: the leaf certificate (DER, from the `cer` field) as one PEM block.
pub fn cert_pem(der: &[u8]) -> String {
    pem::encode("CERTIFICATE", der)
}

/// `--write-cert-and-key-in-separate-files`: (every CERTIFICATE block, every other block), each in
/// the order of the input.
pub fn split_cert_and_key(pem_text: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    for block in pem::blocks(pem_text) {
        if block.label == "CERTIFICATE" {
            certs.extend_from_slice(block.text);
        } else {
            keys.extend_from_slice(block.text);
        }
    }
    (certs, keys)
}
