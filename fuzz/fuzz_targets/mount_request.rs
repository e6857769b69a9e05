//! A whole MountRequest's text fields through parsing and validation.
#![no_main]

use akv_csi_provider::cloud::CloudName;
use akv_csi_provider::mount::request::{ParseContext, parse};
use libfuzzer_sys::fuzz_target;

const CTX: ParseContext = ParseContext {
    default_cloud: CloudName::Public,
    split_files: true,
    now: 1_700_000_000,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{1}');
    let attributes = parts.next().unwrap_or_default();
    let secrets = parts.next().unwrap_or_default();
    let permission = parts.next().unwrap_or_default();
    let _ = parse(attributes, secrets, permission, &CTX);
});
