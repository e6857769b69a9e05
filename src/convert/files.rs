//! The files of one object version, from what Key Vault returned: the conversion steps of the
//! README's "Object types" in the order they apply. [`super::secret_contents`] and the other functions of this module's siblings
//! do one step each; this is where they are put together.

use base64::Engine as _;
use zeroize::Zeroizing;

use super::jwk::Jwk;
use super::{ConvertError, ObjectEncoding, ObjectFormat, SecretOptions};

/// One file of an object: the suffix added to the object's path (`""` for the main file, `.crt`,
/// `.key`) and its contents.
#[derive(Clone)]
pub struct FilePart {
    /// Added to the object's path.
    pub suffix: &'static str,
    /// The bytes written.
    pub contents: Zeroizing<Vec<u8>>,
}

/// The files of an object, and notes for the log about choices made on the way.
#[derive(Clone)]
pub struct ObjectFiles {
    /// Main file first.
    pub files: Vec<FilePart>,
    /// Things an operator may want to know (an incomplete chain kept in PFX order, a split skipped).
    pub notes: Vec<String>,
}

impl ObjectFiles {
    fn single(contents: Vec<u8>) -> Self {
        Self {
            files: vec![FilePart {
                suffix: "",
                contents: Zeroizing::new(contents),
            }],
            notes: Vec::new(),
        }
    }
}

/// Suffix of the certificates file a split secret adds (`--write-cert-and-key-in-separate-files`).
const CRT: &str = ".crt";
/// Suffix of the key file a split secret adds.
const KEY: &str = ".key";

/// The suffixes of the files an object may write, main file first: a secret in PEM format adds
/// `.crt` and `.key` when files are split (written only if the secret is certificate-backed, which
/// validation cannot know). The one place that decides file names besides the alias; validation
/// (`mount/paths.rs`) checks the paths these give.
pub fn possible_suffixes(
    is_secret: bool,
    format: ObjectFormat,
    split_files: bool,
) -> &'static [&'static str] {
    if is_secret && split_files && format == ObjectFormat::Pem {
        &["", CRT, KEY]
    } else {
        &[""]
    }
}

/// Whether converting this secret decodes a PFX (thousands of hash iterations per key: the caller
/// runs it where it cannot stall other work).
pub fn secret_is_expensive(
    content_type: Option<&str>,
    certificate_backed: bool,
    options: SecretFileOptions,
) -> bool {
    (certificate_backed && options.format == ObjectFormat::Pem && content_type == Some(super::PKCS12))
        // Building a PKCS#12 from a PEM costs as many iterations as reading one.
        || (options.encoding == ObjectEncoding::Base64
            && super::is_pem_as_pfx(content_type, certificate_backed, options.format))
}

/// How a secret becomes files.
#[derive(Clone, Copy, Debug)]
pub struct SecretFileOptions {
    /// `objectFormat`.
    pub format: ObjectFormat,
    /// `objectEncoding`.
    pub encoding: ObjectEncoding,
    /// `--construct-pem-chain`.
    pub construct_pem_chain: bool,
    /// `--write-cert-and-key-in-separate-files`.
    pub split_files: bool,
}

/// `objectType: secret`: format conversion, then the optional `.crt`/`.key` split of the converted
/// text, then `objectEncoding` on the main file (README, "Object types").
pub fn secret(
    value: &str,
    content_type: Option<&str>,
    certificate_backed: bool,
    options: SecretFileOptions,
) -> Result<ObjectFiles, ConvertError> {
    let converted = super::secret_contents_for(
        value,
        content_type,
        certificate_backed,
        SecretOptions {
            format: options.format,
            construct_pem_chain: options.construct_pem_chain,
        },
        options.encoding,
    )?;
    let mut notes: Vec<String> = converted.warning.into_iter().collect();
    let split = certificate_backed && options.split_files;
    let split_parts = match (split, options.format) {
        (true, ObjectFormat::Pem) => {
            let (crt, key) = super::split_cert_and_key(&converted.contents);
            vec![
                FilePart {
                    suffix: CRT,
                    contents: Zeroizing::new(crt),
                },
                FilePart {
                    suffix: KEY,
                    contents: Zeroizing::new(key),
                },
            ]
        }
        (true, ObjectFormat::Pfx) => {
            notes.push(
                "objectFormat pfx: not writing .crt/.key files (they would be empty)".to_owned(),
            );
            Vec::new()
        }
        (false, _) => Vec::new(),
    };
    let main = super::encoding::decode(converted.contents, options.encoding)?;
    let mut files = vec![FilePart {
        suffix: "",
        contents: main,
    }];
    files.extend(split_parts);
    Ok(ObjectFiles { files, notes })
}

/// `objectType: key`: the public key as SubjectPublicKeyInfo PEM (README, "Object types").
pub fn key(jwk: &Jwk) -> Result<ObjectFiles, ConvertError> {
    Ok(ObjectFiles::single(
        super::jwk::public_key_pem(jwk)?.into_bytes(),
    ))
}

/// `objectType: cert`: the leaf certificate from the base64 `cer` field, as PEM (README, "Object types").
pub fn certificate(cer: &str) -> Result<ObjectFiles, ConvertError> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(cer.trim())
        .map_err(|e| ConvertError::Malformed {
            field: "cer",
            reason: format!("not base64 ({e})"),
        })?;
    Ok(ObjectFiles::single(super::cert_pem(&der).into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: SecretFileOptions = SecretFileOptions {
        format: ObjectFormat::Pem,
        encoding: ObjectEncoding::Utf8,
        construct_pem_chain: true,
        split_files: true,
    };

    fn suffixes(files: &ObjectFiles) -> Vec<&'static str> {
        files.files.iter().map(|f| f.suffix).collect()
    }

    #[test]
    fn plain_secrets_are_not_split_and_are_decoded_last() {
        let out = secret(
            "aGVsbG8=",
            None,
            false,
            SecretFileOptions {
                encoding: ObjectEncoding::Base64,
                ..OPTIONS
            },
        )
        .unwrap();
        assert_eq!(suffixes(&out), [""]);
        assert_eq!(out.files[0].contents.as_slice(), b"hello");
    }

    #[test]
    fn certificate_backed_pem_is_split_and_pfx_is_not() {
        let pem = format!(
            "{}{}",
            super::super::pem::encode("PRIVATE KEY", &[1; 10]),
            super::super::pem::encode("CERTIFICATE", &[2; 10])
        );
        let out = secret(&pem, Some("application/x-pem-file"), true, OPTIONS).unwrap();
        assert_eq!(suffixes(&out), ["", ".crt", ".key"]);
        assert!(
            String::from_utf8_lossy(&out.files[1].contents).contains("CERTIFICATE")
                && String::from_utf8_lossy(&out.files[2].contents).contains("PRIVATE KEY")
        );
        let pfx = secret(
            "AAAA",
            Some("application/x-pkcs12"),
            true,
            SecretFileOptions {
                format: ObjectFormat::Pfx,
                ..OPTIONS
            },
        )
        .unwrap();
        assert_eq!(suffixes(&pfx), [""]);
        assert!(pfx.notes[0].contains("objectFormat pfx"), "{:?}", pfx.notes);
    }

    #[test]
    fn a_cer_that_is_not_base64_names_the_field() {
        let err = certificate("not base64!").err().unwrap().to_string();
        assert!(err.contains("cer"), "{err}");
        assert_eq!(
            certificate("dGVzdA==").unwrap().files[0]
                .contents
                .as_slice(),
            b"-----BEGIN CERTIFICATE-----\ndGVzdA==\n-----END CERTIFICATE-----\n"
        );
    }
}
