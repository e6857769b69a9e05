//! `objectFormat: pfx` with `objectEncoding: base64` on a certificate stored as PEM: arbitrary text
//! as the secret's value through the entry the Mount uses. Errors are fine, panics are not, and what
//! converts is a PKCS#12 that our own reader opens with the empty password, holding one key and
//! exactly the PEM's certificates.
#![no_main]

use akv_csi_provider::convert::{
    ObjectEncoding, ObjectFormat, SecretOptions, pem, secret_contents, secret_contents_for,
};
use libfuzzer_sys::fuzz_target;

const PEM_FILE: Option<&str> = Some("application/x-pem-file");
const PKCS12: Option<&str> = Some("application/x-pkcs12");

fuzz_target!(|data: &[u8]| {
    // Key Vault's value is a JSON string: always UTF-8. Lossy rather than skipped, so that mutations
    // into non-UTF-8 bytes still reach the PEM reader.
    let value = String::from_utf8_lossy(data);
    let pfx = SecretOptions {
        format: ObjectFormat::Pfx,
        construct_pem_chain: true,
    };
    let Ok(out) = secret_contents_for(&value, PEM_FILE, true, pfx, ObjectEncoding::Base64) else {
        return;
    };
    // The output is base64 text, as Key Vault gives a PKCS#12-stored certificate: read it back the
    // way such a certificate is read (our PKCS#12 reader, empty password), in the PFX's bag order.
    let b64 = std::str::from_utf8(&out.contents).expect("the PFX's base64 is ASCII");
    let as_pem = SecretOptions {
        format: ObjectFormat::Pem,
        construct_pem_chain: false,
    };
    let read = secret_contents(b64, PKCS12, true, as_pem)
        .unwrap_or_else(|e| panic!("our reader cannot open the PFX we wrote: {e}"));
    let blocks = pem::decode_all(&read.contents);
    let keys = blocks.iter().filter(|b| b.label == "PRIVATE KEY").count();
    assert_eq!(keys, 1, "one private key");
    let certs = |blocks: &[pem::Block]| {
        let mut ders: Vec<Vec<u8>> = blocks
            .iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| b.der.to_vec())
            .collect();
        ders.sort();
        ders
    };
    let written = certs(&blocks);
    assert!(!written.is_empty(), "at least one certificate");
    assert_eq!(
        written,
        certs(&pem::decode_all(value.as_bytes())),
        "the PEM's certificates, no more, no less"
    );
});
