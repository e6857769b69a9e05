//! The `objects` YAML parser and validator.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut errors = Vec::new();
        let _ = akv_csi_provider::mount::objects::parse(text, &mut errors);
    }
});
