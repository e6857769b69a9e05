//! JWK JSON → PUBLIC KEY PEM.
#![no_main]

use akv_csi_provider::convert::jwk::{Jwk, public_key_pem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(jwk) = serde_json::from_slice::<Jwk>(data) {
        let _ = public_key_pem(&jwk);
    }
});
