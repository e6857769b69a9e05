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
                reason: e.to_string(),
            }),
        ObjectEncoding::Hex => hex::decode(contents.as_slice())
            .map(Zeroizing::new)
            .map_err(|e| ConvertError::Decode {
                encoding: "hex",
                reason: e.to_string(),
            }),
    }
}
