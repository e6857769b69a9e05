//! The PKCS#12 reader on arbitrary DER (base64-wrapped as Key Vault sends it) and on arbitrary text,
//! and arbitrary PEM through the Go-compatible PEM reader, the split and the chain ordering: errors
//! are fine, panics are not.
#![no_main]

use akv_csi_provider::convert::{
    ObjectFormat, SecretOptions, chain, pem, secret_contents, split_cert_and_key,
};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

const PKCS12: Option<&str> = Some("application/x-pkcs12");

fuzz_target!(|data: &[u8]| {
    let options = SecretOptions {
        format: ObjectFormat::Pem,
        construct_pem_chain: true,
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    if let Ok(out) = secret_contents(&b64, PKCS12, true, options) {
        // Whatever decodes must come out as PEM that splits back into its blocks.
        let (crt, key) = split_cert_and_key(&out.contents);
        assert_eq!(crt.len() + key.len(), out.contents.len());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = secret_contents(text, PKCS12, true, options);
    }
    let _ = split_cert_and_key(data);
    let ders: Vec<Vec<u8>> = pem::decode_all(data)
        .into_iter()
        .map(|b| b.der.to_vec())
        .collect();
    if let Ok(ordered) = chain::order(&ders) {
        let mut seen = ordered.order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..ders.len()).collect::<Vec<_>>());
    }
});
