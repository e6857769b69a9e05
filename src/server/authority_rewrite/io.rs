//! [`AuthorityFix`], the per-connection I/O adapter: reads go through the [`Rewriter`], writes go
//! straight to the socket (their frame boundaries are followed, for a GOAWAY when a read is
//! refused).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use super::Rewriter;
use super::frames::{SentFrames, connection_error, goaway};

/// Read size when a partial frame is buffered (the fast path reads into the caller's buffer).
const READ_CHUNK: usize = 16 * 1024;
/// The rewriter takes no new frame once this much output waits for the reader: a few bytes of
/// header block can decode to 64 KiB, so the output is bounded by this plus one frame's worth.
const OUTPUT_LIMIT: usize = 16 * 1024;

/// Called once per connection, the first time one of its header blocks has its `:authority`
/// rewritten (for a metric of the drivers that dial the socket path). It runs inside the read, on
/// the connection's task: it must be quick and must not block, like incrementing a counter.
pub type RewriteHook = Arc<dyn Fn() + Send + Sync>;

/// Wraps the server side of one connection; see the [`authority`](super) module documentation.
pub struct AuthorityFix<T> {
    inner: T,
    rewriter: Rewriter,
    /// Bytes read from `inner` and not yet consumed by the rewriter: a partial frame header or
    /// header-block frame, or frames left while output waits. While it is empty, reads go
    /// straight into the caller's buffer.
    input: Vec<u8>,
    /// Rewritten bytes not yet handed to the reader, from `out_pos`.
    output: Vec<u8>,
    out_pos: usize,
    eof: bool,
    /// Whether the first rewrite on this connection was reported (logged, and the hook called).
    reported: bool,
    hook: Option<RewriteHook>,
    sent: SentFrames,
    /// A read found a connection error: no byte goes either way any more.
    refused: bool,
}

impl<T> std::fmt::Debug for AuthorityFix<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix")
            .field("rewritten", &self.rewriter.has_rewritten())
            .finish_non_exhaustive()
    }
}

impl<T> AuthorityFix<T> {
    /// Wraps one accepted connection.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            rewriter: Rewriter::default(),
            input: Vec::new(),
            output: Vec::new(),
            out_pos: 0,
            eof: false,
            reported: false,
            hook: None,
            sent: SentFrames::default(),
            refused: false,
        }
    }

    /// Wraps one accepted connection, calling `hook` once if its `:authority` gets rewritten.
    pub fn with_rewrite_hook(inner: T, hook: RewriteHook) -> Self {
        Self {
            hook: Some(hook),
            ..Self::new(inner)
        }
    }

    /// Runs the rewriter over the buffered input (slow path).
    fn process_input(&mut self) -> io::Result<()> {
        let processed = self
            .rewriter
            .process_until(&self.input, &mut self.output, OUTPUT_LIMIT);
        // Only this slow path rewrites: the fast path stops at every HEADERS frame.
        if self.rewriter.has_rewritten() && !self.reported {
            self.reported = true;
            tracing::debug!(
                "rewrote an invalid HTTP/2 :authority to localhost (a driver that dials the socket path)"
            );
            if let Some(hook) = &self.hook {
                hook();
            }
        }
        match processed {
            Ok(consumed) => {
                self.input.drain(..consumed);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "closing a provider connection: malformed or oversized HTTP/2 from the client");
                Err(e)
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AuthorityFix<T> {
    /// Ends the connection after a read found `error`. A connection error is announced with a
    /// GOAWAY when the server's bytes end with a whole frame, so that it cannot split one of
    /// `h2`'s; `h2` writes nothing after its read failed, and writes are refused from now on, so
    /// the GOAWAY is the last frame. Otherwise the connection just closes.
    fn refuse(&mut self, cx: &mut Context<'_>, error: &io::Error) {
        self.refused = true;
        let Some(error) = connection_error(error) else {
            return;
        };
        if !self.sent.between_frames() {
            tracing::debug!("no GOAWAY sent: the server's bytes do not end with a whole frame");
            return;
        }
        let frame = goaway(self.rewriter.last_stream_id(), error);
        let mut written = 0;
        while let Some(rest) = frame.get(written..).filter(|rest| !rest.is_empty()) {
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(n)) if n > 0 => written += n,
                // A full or closed socket: the client sees the connection close, with or without
                // part of the GOAWAY, which is as much as it would learn without one.
                _ => return,
            }
        }
        // Unix sockets need no flush; a writer that buffers gets its chance.
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
    }
}

fn already_refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "HTTP/2 connection already refused for a connection error",
    )
}

impl<T: Connected> Connected for AuthorityFix<T> {
    type ConnectInfo = T::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for AuthorityFix<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.refused {
            return Poll::Ready(Err(already_refused()));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.out_pos < this.output.len() {
                let n = buf.remaining().min(this.output.len() - this.out_pos);
                buf.put_slice(&this.output[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.output.len() {
                    this.output.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if !this.input.is_empty() {
                if let Err(e) = this.process_input() {
                    this.refuse(cx, &e);
                    return Poll::Ready(Err(e));
                }
                if !this.output.is_empty() {
                    continue;
                }
            }
            if this.eof {
                // A truncated final frame is dropped: h2 sees the connection end, as it would have.
                return Poll::Ready(Ok(()));
            }
            if this.input.is_empty() {
                // Fast path: read into the caller's buffer and keep the pass-through prefix there;
                // only bytes that need rewriting are moved out.
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                let fresh = &buf.filled()[before..];
                if fresh.is_empty() {
                    this.eof = true;
                    continue;
                }
                let keep = this.rewriter.passthrough_len(fresh);
                if keep == fresh.len() {
                    return Poll::Ready(Ok(()));
                }
                this.input.extend_from_slice(&fresh[keep..]);
                buf.set_filled(before + keep);
                if keep > 0 {
                    return Poll::Ready(Ok(()));
                }
            } else {
                // A partial frame is buffered: append to it.
                let mut chunk = [0u8; READ_CHUNK];
                let mut read_buf = ReadBuf::new(&mut chunk);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read_buf))?;
                let filled = read_buf.filled();
                if filled.is_empty() {
                    this.eof = true;
                } else {
                    this.input.extend_from_slice(filled);
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.refused {
            return Poll::Ready(Err(already_refused()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.sent.advance(buf.get(..n).unwrap_or(buf));
        Poll::Ready(Ok(n))
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.refused {
            return Poll::Ready(Err(already_refused()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for buf in bufs {
            let taken = left.min(buf.len());
            this.sent.advance(buf.get(..taken).unwrap_or_default());
            left -= taken;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::test_support::*;
    use super::*;

    /// An inner reader that hands out its bytes in the given chunk sizes, now and then
    /// answering Pending first (waking itself), like a socket. Its write side keeps what it is
    /// given, taking at most `write_limit` bytes per write.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        turn: usize,
        written: Vec<u8>,
        write_limit: usize,
    }

    impl AsyncWrite for Chunked {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.write_limit);
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(self.write_limit);
            self.written.extend_from_slice(&all[..n]);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = &mut *self;
            this.turn += 1;
            if this.turn.is_multiple_of(3) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let size = this.sizes[this.turn % this.sizes.len()].max(1);
            let n = size.min(buf.remaining()).min(this.data.len() - this.pos);
            buf.put_slice(&this.data[this.pos..this.pos + n]);
            this.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    fn chunked(input: &[u8], sizes: Vec<usize>) -> Chunked {
        Chunked {
            data: input.to_vec(),
            pos: 0,
            sizes,
            turn: 0,
            written: Vec::new(),
            write_limit: usize::MAX,
        }
    }

    /// Everything `AuthorityFix` yields from `input`, read with caller buffers of the given sizes,
    /// each already holding `prefill` bytes of someone else's data.
    fn read_through(
        input: &[u8],
        inner_sizes: Vec<usize>,
        outer_sizes: &[usize],
        prefill: usize,
    ) -> io::Result<Vec<u8>> {
        let mut fix = AuthorityFix::new(chunked(input, inner_sizes));
        read_all(&mut fix, outer_sizes, prefill)
    }

    /// Reads `fix` to its end, as [`read_through`] does.
    fn read_all(
        fix: &mut AuthorityFix<Chunked>,
        outer_sizes: &[usize],
        prefill: usize,
    ) -> io::Result<Vec<u8>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        for turn in 0.. {
            let mut storage = vec![0xee; prefill + outer_sizes[turn % outer_sizes.len()].max(1)];
            let mut buf = ReadBuf::new(&mut storage);
            buf.put_slice(&vec![0xdd; prefill]);
            match Pin::new(&mut *fix).poll_read(&mut cx, &mut buf) {
                Poll::Pending => continue,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(())) => {
                    let filled = buf.filled();
                    assert!(filled[..prefill].iter().all(|b| *b == 0xdd));
                    if filled.len() == prefill {
                        break;
                    }
                    out.extend_from_slice(&filled[prefill..]);
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn the_rewrite_hook_runs_once_per_connection_whose_authority_was_rewritten() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let hook: RewriteHook = {
            let calls = calls.clone();
            Arc::new(move || {
                calls.fetch_add(1, Ordering::Relaxed);
            })
        };
        // Three requests on one connection, as a driver sends them, read in small pieces.
        let connection = |authority: &[u8]| {
            let mut enc = loona_hpack::Encoder::new();
            let mut input = PREFACE.to_vec();
            input.extend(frame(0x4, 0, 0, &[]));
            for stream in [1, 3, 5] {
                let block = encode(&mut enc, &request(authority));
                input.extend(frame(HEADERS, END_HEADERS, stream, &block));
                input.extend(frame(0x0, END_STREAM, stream, b"\0\0\0\0\0"));
            }
            input
        };
        let read = |authority: &[u8]| {
            let inner = chunked(&connection(authority), vec![7, 100]);
            let mut fix = AuthorityFix::with_rewrite_hook(inner, hook.clone());
            read_all(&mut fix, &[64], 0).unwrap();
            assert_eq!(
                format!("{fix:?}").contains("rewritten: true"),
                authority == SOCKET
            );
        };
        read(SOCKET);
        assert_eq!(calls.load(Ordering::Relaxed), 1, "once for three rewrites");
        read(b"localhost");
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "never for a valid authority"
        );
        read(SOCKET);
        assert_eq!(calls.load(Ordering::Relaxed), 2, "once per connection");
    }

    #[test]
    fn async_reads_match_the_rewriter_and_errors_reach_the_reader() {
        let mut enc = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[0, 4, 0, 1, 0, 0]));
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &encode(&mut enc, &request(SOCKET)),
        ));
        input.extend(frame(0x0, END_STREAM, 1, &[9; 40_000]));
        input.extend(frame(0x8, 0, 0, &[0, 1, 0, 0]));
        input.extend(frame(HEADERS, 0, 3, &encode(&mut enc, &request(SOCKET))));
        input.extend(frame(CONTINUATION, END_HEADERS, 3, &[]));
        let (whole, _) = run(&input);
        for (inner, outer, prefill) in [
            (vec![1 << 20], vec![1 << 20], 0),
            (vec![1], vec![8192], 3),
            (vec![13, 7000, 9], vec![1, 5, 100_000], 0),
            (vec![9, 4096], vec![9], 1),
        ] {
            assert_eq!(read_through(&input, inner, &outer, prefill).unwrap(), whole);
        }
        let mut garbage = PREFACE.to_vec();
        garbage.extend(frame(0x0, 0, 1, b"fine"));
        garbage.extend(frame(HEADERS, END_HEADERS, 1, &[0xff; 6]));
        let err = read_through(&garbage, vec![1000], &[1000], 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A truncated final frame ends the stream cleanly after what was complete.
        let mut truncated = input.clone();
        truncated.truncate(input.len() - 2);
        let out = read_through(&truncated, vec![50], &[64], 0).unwrap();
        assert!(whole.starts_with(&out) && out.len() < whole.len());
    }

    /// Talks HTTP/2 by hand to a hyper (h2) server on the other end of `conn`, as grpc-go would:
    /// one GET on stream 1 with the given authority. Returns the response's `:status`, or the
    /// RST_STREAM error code.
    async fn raw_request(
        conn: &mut tokio::io::DuplexStream,
        authority: &[u8],
    ) -> Result<Vec<u8>, u32> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut block = vec![0x82, 0x86, 0x84, 0x41];
        encode_string(authority, &mut block);
        let mut out = PREFACE.to_vec();
        out.extend(frame(0x4, 0, 0, &[]));
        out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
        conn.write_all(&out).await.unwrap();
        let mut decoder = loona_hpack::Decoder::new();
        let mut buf = Vec::new();
        loop {
            if buf.len() >= 9 && buf.len() >= 9 + frame_len(&buf) {
                let len = frame_len(&buf);
                let (ty, flags) = (buf[3], buf[4]);
                let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
                let payload: Vec<u8> = buf.drain(..9 + len).skip(9).collect();
                match (ty, stream) {
                    (0x4, 0) if flags & 1 == 0 => {
                        conn.write_all(&frame(0x4, 1, 0, &[])).await.unwrap()
                    }
                    (0x3, 1) => {
                        return Err(u32::from_be_bytes(payload[..4].try_into().unwrap()));
                    }
                    (HEADERS, 1) => {
                        let headers = decoder.decode(&payload).unwrap();
                        return Ok(headers
                            .into_iter()
                            .find(|(n, _)| n == b":status")
                            .unwrap()
                            .1);
                    }
                    _ => {}
                }
                continue;
            }
            let mut chunk = [0; 4096];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A hyper HTTP/2 server on one end of a duplex pipe, optionally behind the layer; it answers
    /// 200 and reports the authority each request had.
    fn h2_server(
        layer: bool,
    ) -> (
        tokio::io::DuplexStream,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (seen_tx, seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let authority = req
                    .uri()
                    .authority()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let _ = seen_tx.send(authority);
                async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                        hyper::body::Bytes,
                    >::new(
                    )))
                }
            });
        let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        if layer {
            let conn = builder.serve_connection(TokioIo::new(AuthorityFix::new(server)), service);
            tokio::spawn(conn);
        } else {
            tokio::spawn(builder.serve_connection(TokioIo::new(server), service));
        }
        (client, seen_rx)
    }

    #[tokio::test]
    async fn h2_refuses_a_socket_path_authority_without_the_layer_and_accepts_it_with() {
        let (mut conn, _) = h2_server(false);
        assert_eq!(
            raw_request(&mut conn, SOCKET).await,
            Err(0x1),
            "h2 resets the stream with PROTOCOL_ERROR: the reason this layer exists"
        );

        let (mut conn, mut seen) = h2_server(true);
        assert_eq!(raw_request(&mut conn, SOCKET).await, Ok(b"200".to_vec()));
        assert_eq!(seen.recv().await.unwrap(), "localhost");

        let (mut conn, mut seen) = h2_server(true);
        assert_eq!(
            raw_request(&mut conn, b"provider.example:8080").await,
            Ok(b"200".to_vec())
        );
        assert_eq!(
            seen.recv().await.unwrap(),
            "provider.example:8080",
            "valid ones are kept"
        );
    }

    /// One header block as an independent encoder (httlib-hpack) writes it: Huffman or not,
    /// indexed or not, with an optional table size update first.
    fn httlib_block(
        encoder: &mut httlib_hpack::Encoder<'_>,
        size_update: Option<u32>,
        headers: &[(Vec<u8>, Vec<u8>)],
        flags: &[u8],
    ) -> Vec<u8> {
        let mut block = Vec::new();
        if let Some(size) = size_update {
            encoder.update_max_dynamic_size(size, &mut block).unwrap();
        }
        for (i, (n, v)) in headers.iter().enumerate() {
            let f = flags[i % flags.len()] & 0x17; // Huffman name/value, indexing, best format
            encoder
                .encode((n.clone(), v.clone(), f), &mut block)
                .unwrap();
        }
        block
    }

    /// A frame sequence for the streaming property test.
    #[derive(Debug, Clone)]
    enum Item {
        Data(usize, bool),
        Ping,
        WindowUpdate,
        Settings,
        Unknown(u8),
        Request {
            extra: Vec<(String, String)>,
            authority: String,
            padded: bool,
            priority: bool,
            /// Fragment sizes for HEADERS + CONTINUATIONs.
            split: usize,
            size_update: Option<u32>,
        },
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            (0usize..40_000, any::<bool>()).prop_map(|(n, p)| Item::Data(n, p)),
            Just(Item::Ping),
            Just(Item::WindowUpdate),
            Just(Item::Settings),
            (0x0au8..=0xff).prop_map(Item::Unknown),
            (
                proptest::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,300}"), 0..8),
                prop_oneof![
                    Just("localhost".to_owned()),
                    Just("/var/run/secrets-store-csi-providers/azure.sock".to_owned()),
                    "[a-z]{1,10}\\.example(:[0-9]{1,4})?",
                    "[ -~]{0,30}",
                ],
                any::<bool>(),
                any::<bool>(),
                1usize..200,
                proptest::option::of(0u32..=4096),
            )
                .prop_map(
                    |(extra, authority, padded, priority, split, size_update)| {
                        Item::Request {
                            extra,
                            authority,
                            padded,
                            priority,
                            split,
                            size_update,
                        }
                    }
                ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Huffman-coded, indexed and size-updated blocks from an independent encoder, mixed
        /// with other frames, split across PADDED/PRIORITY HEADERS and CONTINUATIONs, read in
        /// arbitrary pieces: the output decodes (with an independent decoder) to the same
        /// headers with only invalid authorities replaced, and other frames are unchanged.
        #[test]
        fn streams_through_any_read_pattern_preserving_every_other_header(
            items in proptest::collection::vec(item(), 1..12),
            flags in proptest::collection::vec(any::<u8>(), 1..8),
            inner_sizes in proptest::collection::vec(1usize..20_000, 1..6),
            outer_sizes in proptest::collection::vec(1usize..20_000, 1..6),
            prefill in 0usize..4,
        ) {
            let mut encoder = httlib_hpack::Encoder::default();
            let mut input = PREFACE.to_vec();
            let mut expected_blocks = Vec::new();
            let mut expected_others = Vec::new();
            let mut stream = 1;
            for item in &items {
                let other = match item {
                    Item::Data(n, padded) => {
                        let mut payload = vec![0x5a; *n];
                        if *padded && *n > 0 {
                            payload[0] = (*n - 1).min(255) as u8;
                        }
                        frame(0x0, if *padded { PADDED } else { 0 }, stream, &payload)
                    }
                    Item::Ping => frame(0x6, 0, 0, &[1; 8]),
                    Item::WindowUpdate => frame(0x8, 0, stream, &[0, 0, 1, 0]),
                    Item::Settings => frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]),
                    Item::Unknown(t) => frame(*t, 0xff, stream, b"whatever"),
                    Item::Request { extra, authority, padded, priority, split, size_update } => {
                        stream += 2;
                        let mut headers = request(authority.as_bytes());
                        headers.extend(
                            extra.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())),
                        );
                        let block = httlib_block(&mut encoder, *size_update, &headers, &flags);
                        let mut chunks = block.chunks(*split);
                        let first = chunks.next().unwrap_or(&[]);
                        let mut payload = Vec::new();
                        if *padded {
                            payload.push(3);
                        }
                        if *priority {
                            payload.extend_from_slice(&[0, 0, 0, 1, 200]);
                        }
                        payload.extend_from_slice(first);
                        if *padded {
                            payload.extend_from_slice(&[0; 3]);
                        }
                        let rest: Vec<&[u8]> = chunks.collect();
                        let mut f = END_STREAM;
                        if *padded { f |= PADDED; }
                        if *priority { f |= PRIORITY; }
                        if rest.is_empty() { f |= END_HEADERS; }
                        input.extend(frame(HEADERS, f, stream, &payload));
                        for (i, c) in rest.iter().enumerate() {
                            let f = if i + 1 == rest.len() { END_HEADERS } else { 0 };
                            input.extend(frame(CONTINUATION, f, stream, c));
                        }
                        if !valid_authority(authority.as_bytes()) {
                            headers[3].1 = b"localhost".to_vec();
                        }
                        expected_blocks.push(headers);
                        continue;
                    }
                };
                input.extend_from_slice(&other);
                expected_others.push(other);
            }

            let (whole, _) = run(&input);
            let streamed = read_through(&input, inner_sizes, &outer_sizes, prefill).unwrap();
            prop_assert!(streamed == whole, "streaming changed the output");

            let mut decoder = httlib_hpack::Decoder::default();
            let mut blocks = Vec::new();
            let mut others = Vec::new();
            let mut current = Vec::new();
            for (ty, f, stream, payload) in frames(&whole) {
                match ty {
                    HEADERS | CONTINUATION => {
                        prop_assert_eq!(f & PADDED, 0);
                        let skip = if ty == HEADERS && f & PRIORITY != 0 { 5 } else { 0 };
                        current.extend_from_slice(&payload[skip..]);
                        if f & END_HEADERS != 0 {
                            let mut decoded = Vec::new();
                            decoder.decode(&mut current, &mut decoded).unwrap();
                            blocks.push(decoded.into_iter().map(|(n, v, _)| (n, v)).collect::<Vec<_>>());
                            current.clear();
                        }
                    }
                    _ => {
                        let mut raw = Vec::new();
                        frame_header(payload.len(), ty, f, stream, &mut raw);
                        raw.extend_from_slice(&payload);
                        others.push(raw);
                    }
                }
            }
            prop_assert_eq!(blocks, expected_blocks);
            prop_assert_eq!(others, expected_others);
        }

        /// Arbitrary bytes after the preface, fed whole or in pieces: an error or the same output,
        /// never a panic (the fuzz target does the same at length).
        #[test]
        fn arbitrary_input_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..2000),
            sizes in proptest::collection::vec(1usize..300, 1..4),
        ) {
            let mut input = PREFACE.to_vec();
            input.extend_from_slice(&body);
            let mut out = Vec::new();
            let whole = Rewriter::default().process(&input, &mut out);
            let streamed = read_through(&input, sizes.clone(), &sizes, 0);
            if whole.is_ok() {
                prop_assert_eq!(streamed.ok(), Some(out));
            }
        }
    }

    /// The next frame from `conn` (type, flags, stream, payload), `buf` holding what was read
    /// past the previous one; `None` at the end of the stream.
    async fn next_frame(
        conn: &mut tokio::io::DuplexStream,
        buf: &mut Vec<u8>,
    ) -> Option<(u8, u8, u32, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        loop {
            if buf.len() >= 9 && buf.len() >= 9 + frame_len(buf) {
                let len = frame_len(buf);
                let (ty, flags) = (buf[3], buf[4]);
                let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
                let payload = buf.drain(..9 + len).skip(9).collect();
                return Some((ty, flags, stream, payload));
            }
            let mut chunk = [0; 4096];
            let n = conn.read(&mut chunk).await.unwrap();
            if n == 0 {
                assert!(buf.is_empty(), "the stream ended within a frame");
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn a_refused_read_ends_the_connection_with_a_goaway_between_the_servers_frames() {
        use tokio::io::AsyncWriteExt;
        let (mut conn, mut seen) = h2_server(true);
        let mut block = vec![0x82, 0x86, 0x84, 0x41];
        encode_string(SOCKET, &mut block);
        let mut out = PREFACE.to_vec();
        out.extend(frame(0x4, 0, 0, &[]));
        out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
        conn.write_all(&out).await.unwrap();
        let mut buf = Vec::new();
        while let Some((ty, _, stream, _)) = next_frame(&mut conn, &mut buf).await {
            if (ty, stream) == (HEADERS, 1) {
                break;
            }
        }
        assert_eq!(seen.recv().await.unwrap(), "localhost");
        // Stream 1 was answered; now a HEADERS frame over the advertised frame size.
        conn.write_all(&[0, 0x40, 0x01, HEADERS, END_HEADERS, 0, 0, 0, 3])
            .await
            .unwrap();
        let mut rest = Vec::new();
        while let Some(f) = next_frame(&mut conn, &mut buf).await {
            rest.push(f);
        }
        let (ty, _, stream, payload) = rest.last().expect("frames before the end");
        assert_eq!(
            (*ty, *stream),
            (0x7, 0),
            "the last frame is a GOAWAY: {rest:?}"
        );
        assert_eq!(payload[..4], 1u32.to_be_bytes(), "last stream: 1");
        assert_eq!(payload[4..8], FRAME_SIZE_ERROR.to_be_bytes());
        let debug = String::from_utf8_lossy(&payload[8..]);
        assert!(debug.contains("too large"), "{debug}");
    }

    fn write(fix: &mut AuthorityFix<Chunked>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(fix).poll_write(&mut cx, bytes)
    }

    #[test]
    fn a_goaway_goes_only_after_a_whole_frame_of_the_servers() {
        let mut refused = PREFACE.to_vec();
        refused.extend(frame(0x4, 0, 0, &[]));
        refused.extend_from_slice(&[0, 0x40, 0x01, HEADERS, END_HEADERS, 0, 0, 0, 1]);
        let settings = frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);

        // Before the server's first frame (its SETTINGS must lead): nothing is sent.
        let mut fix = AuthorityFix::new(chunked(&refused, vec![1000]));
        assert!(read_all(&mut fix, &[100], 0).is_err());
        assert!(fix.inner.written.is_empty());

        // After a whole frame, even one the socket took in pieces (and through vectored
        // writes): a GOAWAY for the error, then neither reads nor writes.
        let mut fix = AuthorityFix::new(chunked(&refused, vec![1000]));
        fix.inner.write_limit = 4;
        let mut sent = 0;
        while sent < settings.len() {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let (head, tail) = settings[sent..].split_at(1);
            let bufs = [io::IoSlice::new(head), io::IoSlice::new(tail)];
            match Pin::new(&mut fix).poll_write_vectored(&mut cx, &bufs) {
                Poll::Ready(Ok(n)) => sent += n,
                other => panic!("{other:?}"),
            }
        }
        fix.inner.write_limit = usize::MAX;
        let err = read_all(&mut fix, &[100], 0).unwrap_err();
        let error = connection_error(&err).unwrap();
        assert_eq!(error.code, FRAME_SIZE_ERROR);
        let mut want = settings.clone();
        want.extend(goaway(0, error));
        assert_eq!(fix.inner.written, want);
        assert!(matches!(write(&mut fix, &settings), Poll::Ready(Err(_))));
        assert!(read_all(&mut fix, &[100], 0).is_err());
        assert_eq!(fix.inner.written, want, "nothing after the GOAWAY");

        // In the middle of a frame: nothing is added.
        let mut fix = AuthorityFix::new(chunked(&refused, vec![1000]));
        assert!(matches!(write(&mut fix, &settings), Poll::Ready(Ok(15))));
        fix.inner.write_limit = 10;
        assert!(matches!(write(&mut fix, &settings), Poll::Ready(Ok(10))));
        assert!(read_all(&mut fix, &[100], 0).is_err());
        assert_eq!(fix.inner.written, [&settings[..], &settings[..10]].concat());
    }

    #[test]
    fn buffers_stay_bounded_while_a_few_bytes_expand_to_megabytes() {
        // A 4 KiB table entry, then 200 blocks of 16 one-byte references: 5 KB in, 13 MB out.
        let mut first = vec![0x40, 1, b'x'];
        encode_integer(4063, 7, 0, &mut first);
        first.extend_from_slice(&[b'v'; 4063]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        for stream in 0..200 {
            input.extend(frame(HEADERS, END_HEADERS, 3 + 2 * stream, &[0xbe; 16]));
        }
        let mut fix = AuthorityFix::new(chunked(&input, vec![100_000]));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        loop {
            let mut storage = vec![0; 5000];
            let mut buf = ReadBuf::new(&mut storage);
            match Pin::new(&mut fix).poll_read(&mut cx, &mut buf) {
                Poll::Pending => continue,
                Poll::Ready(result) => result.unwrap(),
            }
            assert!(fix.output.len() <= OUTPUT_LIMIT + MAX_HEADER_LIST_SIZE + FRAME_HEADER_LEN * 5);
            assert!(fix.input.len() <= FRAME_HEADER_LEN + MAX_FRAME_SIZE + READ_CHUNK);
            if buf.filled().is_empty() {
                break;
            }
            out.extend_from_slice(buf.filled());
        }
        let blocks = decoded_blocks(&out);
        assert_eq!(blocks.len(), 201);
        assert!(blocks[1..].iter().all(|b| b.len() == 16));
    }
}
