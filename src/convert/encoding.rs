//! `objectEncoding`: decoding a secret's text into the bytes that are written.

use base64::Engine as _;
use zeroize::Zeroizing;

use super::{ConvertError, ObjectEncoding};

/// Applies `objectEncoding` to already converted contents, as the Go provider's `getContentBytes`:
/// `utf-8` leaves them unchanged, `base64` decodes standard base64 (padding required), `hex` decodes hex.
pub fn decode(
    contents: Zeroizing<Vec<u8>>,
    encoding: ObjectEncoding,
) -> Result<Zeroizing<Vec<u8>>, ConvertError> {
    match encoding {
        ObjectEncoding::Utf8 => Ok(contents),
        ObjectEncoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(contents.as_slice())
            .map(Zeroizing::new)
            .map_err(|e| ConvertError::Decode {
                encoding: "base64",
                reason: base64_reason(&e),
            }),
        ObjectEncoding::Hex => hex::decode(contents.as_slice())
            .map(Zeroizing::new)
            .map_err(|e| ConvertError::Decode {
                encoding: "hex",
                reason: hex_reason(&e),
            }),
    }
}

// The decoders' own messages quote the offending byte, which is a byte of the secret: these say
// where decoding stopped and nothing about what was there.

fn base64_reason(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("a character that is not base64 at offset {offset}")
        }
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("the last character (offset {offset}) leaves stray bits")
        }
        base64::DecodeError::InvalidLength(len) => {
            format!("{len} base64 characters is not a valid length")
        }
        base64::DecodeError::InvalidPadding => "missing or misplaced '=' padding".to_owned(),
    }
}

fn hex_reason(e: &hex::FromHexError) -> String {
    match e {
        hex::FromHexError::InvalidHexCharacter { index, .. } => {
            format!("a character that is not hex at offset {index}")
        }
        hex::FromHexError::OddLength => "an odd number of hex digits".to_owned(),
        hex::FromHexError::InvalidStringLength => "an invalid length".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: decode errors quoted the offending byte of the secret value.
    #[test]
    fn decode_errors_never_quote_the_value() {
        for (value, encoding) in [
            ("c2VjcmV0!Q==", ObjectEncoding::Base64),
            ("c2VjcmV0Qq", ObjectEncoding::Base64),
            ("c2VjcmV0Qr==", ObjectEncoding::Base64),
            ("5365637z", ObjectEncoding::Hex),
            ("536", ObjectEncoding::Hex),
        ] {
            let err = decode(Zeroizing::new(value.as_bytes().to_vec()), encoding)
                .err()
                .unwrap()
                .to_string();
            for quoted in ["!", "'z'", "33", "122", "Qq", "Qr"] {
                assert!(!err.contains(quoted), "{value}: {err}");
            }
            assert!(
                err.contains("offset")
                    || err.contains("length")
                    || err.contains("odd")
                    || err.contains("padding"),
                "{err}"
            );
        }
    }
}
