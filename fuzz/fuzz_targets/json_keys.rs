//! `jmesPath`: an expression (bounded as validation bounds it) over a secret's value.
#![no_main]

use akv_csi_provider::convert::json::JsonSecret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the path, the rest the secret's value.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, value) = text.split_once('\n').unwrap_or((text, "{}"));
    if path.len() > akv_csi_provider::mount::objects::json_keys::MAX_PATH_BYTES {
        return;
    }
    if let Ok(doc) = JsonSecret::parse(value) {
        let _ = doc.extract(path);
    }
});
