//! The HTTP/2 `:authority` rewriting layer on arbitrary client bytes after the preface: errors are
//! fine, panics are not, and neither the way the bytes are split into pieces nor the reader's buffer
//! sizes may change the output. Covers both `Rewriter::process` (the buffered path) and
//! `AuthorityFix::poll_read` (the fast path that reads into the caller's buffer, and the output
//! limit that makes the rewriter stop and resume), and the GOAWAY a refused read sends: one
//! well-formed frame after the server's, nothing otherwise.
#![no_main]

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use akv_csi_provider::server::authority_rewrite::{AuthorityFix, Rewriter};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The server's first frame: an empty SETTINGS.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// A connection whose client sent `input` and whose server side keeps what is written to it.
struct Pipe<'a> {
    input: &'a [u8],
    written: &'a RefCell<Vec<u8>>,
}

impl AsyncRead for Pipe<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.input).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipe<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.borrow_mut().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Everything `AuthorityFix` yields when read with buffers of `sizes` (cycled), after the server
/// wrote its SETTINGS; and what reached the client after those.
fn read_through(input: &[u8], sizes: &[usize]) -> (io::Result<Vec<u8>>, Vec<u8>) {
    let written = RefCell::new(Vec::new());
    let mut fix = AuthorityFix::new(Pipe {
        input,
        written: &written,
    });
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(
        Pin::new(&mut fix).poll_write(&mut cx, SETTINGS),
        Poll::Ready(Ok(9))
    ));
    let mut out = Vec::new();
    let mut result = Ok(());
    for turn in 0.. {
        let mut storage = vec![0; sizes[turn % sizes.len()]];
        let mut buf = ReadBuf::new(&mut storage);
        match Pin::new(&mut fix).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
            Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
            Poll::Ready(Err(e)) => {
                result = Err(e);
                break;
            }
            Poll::Pending => unreachable!("a byte slice never blocks"),
        }
    }
    drop(fix);
    let mut written = written.into_inner();
    written.drain(..SETTINGS.len());
    (result.map(|()| out), written)
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
    let (streamed, goaway) = read_through(&input, &[step, 1, 4096, step * 7 + 3]);

    // Errors depend only on complete frames or frame headers, which every way of reading sees alike.
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
    // A refusal sends one GOAWAY on stream 0 with a connection error code; success sends nothing.
    if streamed.is_ok() {
        assert!(goaway.is_empty(), "bytes sent without a refusal");
    } else {
        let (header, payload) = goaway.split_at(9);
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        assert_eq!(len, payload.len(), "one whole frame");
        assert_eq!(header[3..], [7, 0, 0, 0, 0, 0], "a GOAWAY on stream 0");
        let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
        assert!([0x1, 0x6, 0x9, 0xb].contains(&code), "error code {code}");
    }
    if whole_result.is_ok() {
        assert_eq!(whole, out, "splitting the input changed the output");
        assert_eq!(
            Some(whole),
            streamed.ok(),
            "reading in pieces changed the output"
        );
    }
});
