//! Expensive conversions shared by the Mounts that need the same one at the same time.
//!
//! A burst of Mounts of one workload asks Key Vault once per object (requests are coalesced), but
//! each Mount used to convert its own copy of the answer: a Key Vault PFX costs 12,288 SHA-1
//! compressions, so 200 Mounts at once made 200 identical derivations. Here the conversion is
//! coalesced too, keyed by a SHA-256 digest of its exact input (the value, its content type, whether
//! it is certificate-backed, the options): identical input gives identical files whoever asked, so
//! sharing needs no reasoning about identities or versions — each Mount still fetched the value with
//! its own token — and each Mount takes its own copy of the files (its response owns its bytes). The result lives only while Mounts wait for it (the flight ends with its last
//! waiter, and is aborted if they all go away): no new place where secrets are kept.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::coalesce::{Abandon, Coalescer};
use crate::convert::ConvertError;
use crate::convert::files::{ObjectFiles, SecretFileOptions};

/// Conversions in progress, by the digest of their input.
pub(super) type Conversions = Coalescer<[u8; 32], Arc<ObjectFiles>, ConvertError>;

/// An empty set, for one `MountService`.
pub(super) fn conversions() -> Conversions {
    Coalescer::new(Abandon::Abort)
}

impl crate::coalesce::Lost for ConvertError {
    fn lost() -> Self {
        Self::Unsupported("the conversion ended without a result (internal error)".to_owned())
    }
}

/// The digest of everything a secret's conversion reads.
pub(super) fn key(
    value: &str,
    content_type: Option<&str>,
    certificate_backed: bool,
    options: SecretFileOptions,
) -> [u8; 32] {
    let mut hash = Sha256::new();
    // Length-prefixed, so that no two inputs share an encoding.
    for part in [
        value.as_bytes(),
        content_type.unwrap_or_default().as_bytes(),
        &[
            u8::from(content_type.is_some()),
            u8::from(certificate_backed),
        ],
        format!("{options:?}").as_bytes(),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{ObjectEncoding, ObjectFormat};

    const OPTIONS: SecretFileOptions = SecretFileOptions {
        format: ObjectFormat::Pem,
        encoding: ObjectEncoding::Utf8,
        construct_pem_chain: true,
        split_files: false,
    };

    #[test]
    fn every_input_of_the_conversion_is_in_the_key() {
        let base = key("v", Some("application/x-pkcs12"), true, OPTIONS);
        assert_eq!(base, key("v", Some("application/x-pkcs12"), true, OPTIONS));
        let others = [
            key("w", Some("application/x-pkcs12"), true, OPTIONS),
            key("v", Some("application/x-pem-file"), true, OPTIONS),
            key("v", None, true, OPTIONS),
            key("v", Some(""), true, OPTIONS),
            key("v", Some("application/x-pkcs12"), false, OPTIONS),
            key(
                "v",
                Some("application/x-pkcs12"),
                true,
                SecretFileOptions {
                    split_files: true,
                    ..OPTIONS
                },
            ),
            key(
                "v",
                Some("application/x-pkcs12"),
                true,
                SecretFileOptions {
                    construct_pem_chain: false,
                    ..OPTIONS
                },
            ),
            key(
                "v",
                Some("application/x-pkcs12"),
                true,
                SecretFileOptions {
                    format: ObjectFormat::Pfx,
                    encoding: ObjectEncoding::Base64,
                    ..OPTIONS
                },
            ),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(&base, other, "input {i}");
        }
    }
}
