//! The PKCS#12 reader on arbitrary DER (base64-wrapped as Key Vault sends it), and arbitrary PEM
//! through the split and chain code: errors are fine, panics are not.
#![no_main]

use akv_csi_provider::convert::{ObjectFormat, SecretOptions, secret_contents, split_cert_and_key};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let options = SecretOptions {
        format: ObjectFormat::Pem,
        construct_pem_chain: true,
    };
    if let Ok(out) = secret_contents(&b64, Some("application/x-pkcs12"), true, options) {
        let _ = split_cert_and_key(&out.contents);
    }
    let _ = split_cert_and_key(data);
});
