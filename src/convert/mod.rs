//! Pure conversions from Key Vault payloads to mounted file contents (spec 05).
//!
//! Nothing here does I/O: each function takes what Key Vault returned and the object's options and
//! gives the exact bytes the Go provider would have written, so swapping providers changes no file.

pub mod encoding;

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
}

/// Options that change how a secret's value becomes a file.
#[derive(Clone, Copy, Debug)]
pub struct SecretOptions {
    pub format: ObjectFormat,
    pub construct_pem_chain: bool,
}

/// The file contents for `objectType: secret`, before `objectEncoding` is applied.
///
/// A plain secret (no `kid`) is its value's bytes whatever its content type.
pub fn secret_contents(
    value: &str,
    content_type: Option<&str>,
    certificate_backed: bool,
    options: SecretOptions,
) -> Result<Zeroizing<Vec<u8>>, ConvertError> {
    if !certificate_backed {
        return Ok(Zeroizing::new(value.as_bytes().to_vec()));
    }
    let _ = options;
    Err(ConvertError::UnsupportedContentType {
        content_type: content_type.map(str::to_owned),
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
