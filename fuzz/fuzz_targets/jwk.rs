//! JWK JSON → PUBLIC KEY PEM: errors are fine, panics are not, and what converts is one PEM block.
#![no_main]

use akv_csi_provider::convert::jwk::public_key_pem;
use akv_csi_provider::convert::jwk::Jwk;
use akv_csi_provider::convert::pem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(jwk) = serde_json::from_slice::<Jwk>(data)
        && let Ok(text) = public_key_pem(&jwk)
    {
        let blocks = pem::decode_all(text.as_bytes());
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].encode(), text);
    }
});
