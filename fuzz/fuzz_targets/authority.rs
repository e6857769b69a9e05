//! The HTTP/2 `:authority` rewriting layer on arbitrary client bytes after the preface: errors are
//! fine, panics are not, and neither the way the bytes are split into pieces nor the reader's buffer
//! sizes may change the output. Covers both `Rewriter::process` (the buffered path) and
//! `AuthorityFix::poll_read` (the fast path that reads into the caller's buffer).
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use akv_csi_provider::server::authority::{AuthorityFix, Rewriter};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Everything `AuthorityFix` yields when read with buffers of `sizes` (cycled).
fn read_through(input: &[u8], sizes: &[usize]) -> std::io::Result<Vec<u8>> {
    let mut fix = AuthorityFix::new(input);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    for turn in 0.. {
        let mut storage = vec![0; sizes[turn % sizes.len()]];
        let mut buf = ReadBuf::new(&mut storage);
        match Pin::new(&mut fix).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
            Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => unreachable!("a byte slice never blocks"),
        }
    }
    Ok(out)
}

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
    let mut chunked_ok = true;
    for chunk in input.chunks(step) {
        pending.extend_from_slice(chunk);
        match rewriter.process(&pending, &mut out) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(_) => {
                chunked_ok = false;
                break;
            }
        }
    }
    let streamed = read_through(&input, &[step, 1, 4096, step * 7 + 3]);

    // Errors depend only on complete frames, which every way of reading sees alike.
    assert_eq!(
        whole_result.is_ok(),
        chunked_ok,
        "splitting changed the verdict"
    );
    assert_eq!(
        whole_result.is_ok(),
        streamed.is_ok(),
        "reading changed the verdict"
    );
    if whole_result.is_ok() {
        assert_eq!(whole, out, "splitting the input changed the output");
        assert_eq!(
            Some(whole),
            streamed.ok(),
            "reading in pieces changed the output"
        );
    }
});
