//! A whole MountRequest's text fields through parsing and validation.
#![no_main]

use akv_csi_provider::cloud::CloudName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{1}');
    let attributes = parts.next().unwrap_or_default();
    let secrets = parts.next().unwrap_or_default();
    let permission = parts.next().unwrap_or_default();
    let _ = akv_csi_provider::mount::request::parse(attributes, secrets, permission, CloudName::Public, 1_700_000_000);
});
