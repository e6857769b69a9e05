//! The HTTP/2 authority rewriter on arbitrary client bytes after the preface, fed in arbitrary
//! splits: errors are fine, panics are not, and splitting must not change the output.
#![no_main]

use akv_csi_provider::server::authority::Rewriter;
use libfuzzer_sys::fuzz_target;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(body);

    let mut whole = Vec::new();
    let whole_result = Rewriter::default().process(&input, &mut whole);

    let step = usize::from(split.max(1));
    let mut rewriter = Rewriter::default();
    let (mut pending, mut out) = (Vec::new(), Vec::new());
    let mut failed = false;
    for chunk in input.chunks(step) {
        pending.extend_from_slice(chunk);
        match rewriter.process(&pending, &mut out) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if let (Ok(n), false) = (whole_result, failed) {
        if n == input.len() && pending.is_empty() {
            assert_eq!(whole, out, "splitting the input changed the output");
        }
    }
});
