//! Accepting any HTTP/2 `:authority` on the provider socket, so that driver v1.5 works (issue 5).
//!
//! Secrets Store CSI Driver v1.5.x dials the provider with grpc-go on the raw socket path, so its
//! requests carry `:authority` = `/etc/kubernetes/secrets-store-csi-providers/azure.sock` (or the
//! `/var/run/...` path). That is not a valid URI authority, and the `h2` crate under tonic resets
//! such streams with PROTOCOL_ERROR before our service sees them. Driver v1.6 sends `localhost`.
//! Both must work on one socket, without forking or patching `h2`.
//!
//! # Design
//!
//! [`AuthorityFix`] wraps each accepted connection and rewrites the client→server byte stream
//! before `h2` parses it; the server→client direction is untouched. [`Rewriter`] follows the
//! HTTP/2 framing after the 24-byte client preface:
//!
//! - Every frame other than HEADERS and CONTINUATION (DATA, SETTINGS, PING, WINDOW_UPDATE,
//!   RST_STREAM, GOAWAY, PRIORITY, PUSH_PROMISE, unknown types) is forwarded byte for byte as it
//!   arrives, without waiting for the whole frame. On the common path the bytes are read straight
//!   into `h2`'s buffer and only the 9-byte frame headers are looked at, so DATA costs no copy and
//!   no buffering.
//! - A header block (HEADERS plus its CONTINUATIONs) is collected, decoded with HPACK, its
//!   `:authority` replaced by `localhost` when it is not a valid URI authority (the very check `h2`
//!   makes; valid authorities are kept), then re-encoded and re-split into HEADERS + CONTINUATION
//!   frames of at most 16 KiB, the smallest SETTINGS_MAX_FRAME_SIZE a peer may advertise, so the
//!   server's own setting never needs observing. END_STREAM and the PRIORITY fields are kept;
//!   padding is dropped (it is optional, and HEADERS do not count against flow control).
//!
//! # HPACK state on both sides
//!
//! The decoder mirrors the client's encoder: it keeps the client's dynamic table, applies its table
//! size updates and decodes Huffman strings. Size updates above 4096 are refused: that is the
//! SETTINGS_HEADER_TABLE_SIZE `h2` advertises by default (tonic does not change it), so `h2` would
//! refuse them too, and the cap bounds the table's memory.
//!
//! The server's decoder is driven by what we send, so *every* block, rewritten or not, is
//! re-encoded with static-table indexes and literals *without indexing* only. The server's dynamic
//! table then stays empty for the whole connection and cannot drift from anything: the client's
//! dynamic-table references are resolved here, and its size updates need not be forwarded (an
//! empty table fits any size). Keeping two tables and re-indexing would save a few bytes per
//! request on a local socket, at the cost of a second table to keep consistent.
//!
//! # Limits and errors
//!
//! A header block over 1 MiB as received, or over 1 MiB once re-encoded (a block of one-byte
//! references to a 4 KiB table entry expands 4000-fold), undecodable HPACK, or a frame interleaved
//! with a header block fail the read with `InvalidData`: `h2` then drops the connection, as it
//! would for those protocol errors itself. Nothing garbled is ever forwarded, and nothing here
//! panics on client input (see the fuzz target `fuzz/fuzz_targets/authority.rs`). A client that
//! does not open with the HTTP/2 preface is passed through untouched, for `h2` to refuse.
//!
//! # Choice of HPACK crate
//!
//! Decoding uses `loona-hpack` 0.4, the maintained successor of `fluke-hpack` (itself a fork of
//! `hpack`): Huffman, size updates, and a per-header callback that borrows from its table, so a
//! block decodes without allocating per header. `hpack` 0.3 is unmaintained and panics on the
//! single byte `0x3f` (RUSTSEC-2023-0085), and so does `fluke-hpack` 0.3.1; `loona-hpack` 0.4.3
//! returns an error. `httlib-hpack` 0.1 works (the tests use it as an independent encoder and
//! decoder) but allocates per header and has had no release in years. `h2`'s HPACK is private.
//! The encoder is ours, a few lines: no crate offers a "static table and plain literals only"
//! mode, which is what keeps the server's table empty.
//!
//! Alternatives considered: patching or forking `h2` (ruled out: no forked dependency), or a
//! userspace HTTP/2 proxy in front of tonic (two full HTTP/2 stacks per connection, more code and
//! latency than rewriting header blocks in place). The cost is measured in `benches/authority.rs`.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// The HTTP/2 client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Length of the PRIORITY fields of a HEADERS frame (stream dependency and weight).
const PRIORITY_LEN: usize = 5;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may advertise: re-emitted frames never exceed it.
const MAX_OUT_FRAME: usize = 16_384;
/// A header block larger than this, as received or re-encoded, closes the connection (the
/// driver's are a few hundred bytes; `h2`'s own header list limit is 16 MiB).
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// The HPACK dynamic table size `h2` advertises (SETTINGS_HEADER_TABLE_SIZE default, RFC 9113).
const HEADER_TABLE_SIZE: usize = 4096;
/// Read size when a partial frame is buffered (the fast path reads into the caller's buffer).
const READ_CHUNK: usize = 16 * 1024;
/// What an invalid `:authority` becomes.
const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";

/// A header block being collected across HEADERS and CONTINUATION frames.
struct PendingBlock {
    stream_id: u32,
    /// END_STREAM of the HEADERS frame.
    end_stream: bool,
    /// The PRIORITY fields of the HEADERS frame, when it had them.
    priority: Option<[u8; PRIORITY_LEN]>,
    fragment: Vec<u8>,
}

/// The client→server rewriting state of one connection (public for the fuzz target and the
/// benchmark; the server uses it through [`AuthorityFix`]).
pub struct Rewriter {
    preface_seen: bool,
    /// Not HTTP/2 with prior knowledge: bytes pass through and `h2` answers as it sees fit.
    passthrough: bool,
    /// Body bytes of the current pass-through frame still to forward.
    forward: usize,
    decoder: loona_hpack::Decoder<'static>,
    pending: Option<PendingBlock>,
    /// Header blocks whose authority was rewritten.
    pub rewritten: u64,
}

impl Default for Rewriter {
    fn default() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Self {
            preface_seen: false,
            passthrough: false,
            forward: 0,
            decoder,
            pending: None,
            rewritten: 0,
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// The length field of a 9-byte frame header.
fn frame_len(header: &[u8]) -> usize {
    (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2])
}

impl Rewriter {
    /// How many leading bytes of `input` are forwarded unchanged: frames that are not part of a
    /// header block, whole or in part. Commits to them (the caller must forward exactly those
    /// bytes) and stops at the first byte that needs [`Rewriter::process`]: the preface, a
    /// HEADERS or CONTINUATION frame, or an incomplete frame header.
    pub fn passthrough_len(&mut self, input: &[u8]) -> usize {
        if self.passthrough {
            return input.len();
        }
        if !self.preface_seen || self.pending.is_some() {
            return 0;
        }
        let mut pos = 0;
        loop {
            if self.forward > 0 {
                let n = self.forward.min(input.len() - pos);
                self.forward -= n;
                pos += n;
                if self.forward > 0 {
                    return pos;
                }
            }
            let Some(header) = input.get(pos..pos + FRAME_HEADER_LEN) else {
                return pos;
            };
            if header[3] == HEADERS || header[3] == CONTINUATION {
                return pos;
            }
            self.forward = frame_len(header);
            pos += FRAME_HEADER_LEN;
        }
    }

    /// Consumes what it can from the front of `input`, appending its rewritten form to `out`;
    /// returns how many bytes were consumed. What is left (a partial preface, frame header or
    /// header-block frame) must be offered again with more bytes after it.
    pub fn process(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut pos = 0;
        loop {
            let n = self.passthrough_len(&input[pos..]);
            out.extend_from_slice(&input[pos..pos + n]);
            pos += n;
            let rest = &input[pos..];
            if rest.is_empty() {
                return Ok(pos);
            }
            if !self.preface_seen {
                let have = rest.len().min(PREFACE.len());
                if rest[..have] != PREFACE[..have] {
                    self.passthrough = true;
                    continue;
                }
                if have < PREFACE.len() {
                    return Ok(pos);
                }
                out.extend_from_slice(PREFACE);
                self.preface_seen = true;
                pos += PREFACE.len();
                continue;
            }
            // A HEADERS or CONTINUATION frame, or any frame while a header block is open.
            let Some(header) = rest.get(..FRAME_HEADER_LEN) else {
                return Ok(pos);
            };
            let len = frame_len(header);
            let (frame_type, flags) = (header[3], header[4]);
            let stream_id =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let pending_len = match &self.pending {
                // RFC 9113 §6.10: nothing may interleave with a header block.
                Some(p) if frame_type != CONTINUATION || p.stream_id != stream_id => {
                    return Err(invalid("HTTP/2 frame interleaved with a header block"));
                }
                Some(p) => p.fragment.len(),
                None => 0,
            };
            // Checked before buffering the frame, so a huge declared length costs no memory.
            if pending_len + len > MAX_HEADER_BLOCK {
                return Err(invalid("HTTP/2 header block too large"));
            }
            let Some(frame) = rest.get(..FRAME_HEADER_LEN + len) else {
                return Ok(pos);
            };
            let payload = &frame[FRAME_HEADER_LEN..];
            match (frame_type, &mut self.pending) {
                (HEADERS, _) => self.start_block(stream_id, flags, payload, out)?,
                (_, Some(pending)) => {
                    pending.fragment.extend_from_slice(payload);
                    if flags & END_HEADERS != 0 {
                        self.finish_block(out)?;
                    }
                }
                // A CONTINUATION without a HEADERS: a protocol error that `h2` reports itself.
                (_, None) => out.extend_from_slice(frame),
            }
            pos += frame.len();
        }
    }

    fn start_block(
        &mut self,
        stream_id: u32,
        flags: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let too_short = || invalid("HEADERS frame too short for its padding and priority");
        let mut body = payload;
        let mut pad = 0;
        if flags & PADDED != 0 {
            let (&n, rest) = body.split_first().ok_or_else(too_short)?;
            pad = usize::from(n);
            body = rest;
        }
        let mut priority = None;
        if flags & PRIORITY != 0 {
            let (fields, rest) = body
                .split_first_chunk::<PRIORITY_LEN>()
                .ok_or_else(too_short)?;
            priority = Some(*fields);
            body = rest;
        }
        let fragment_len = body.len().checked_sub(pad).ok_or_else(too_short)?;
        self.pending = Some(PendingBlock {
            stream_id,
            end_stream: flags & END_STREAM != 0,
            priority,
            fragment: body[..fragment_len].to_vec(),
        });
        if flags & END_HEADERS != 0 {
            self.finish_block(out)?;
        }
        Ok(())
    }

    /// Decodes the collected block and appends it, re-encoded, as HEADERS (+ CONTINUATION).
    fn finish_block(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let Some(block) = self.pending.take() else {
            return Ok(());
        };
        let prefix = if block.priority.is_some() {
            PRIORITY_LEN
        } else {
            0
        };
        // Encode straight after a placeholder frame header: a block that fits one frame (all of
        // the driver's) is then written in place, with no second copy.
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        if let Some(priority) = block.priority {
            out.extend_from_slice(&priority);
        }
        let body_start = out.len();
        let mut rewrote = false;
        let mut too_large = false;
        let decoded = self.decoder.decode_with_cb(
            &block.fragment,
            |name: Cow<'_, [u8]>, value: Cow<'_, [u8]>| {
                // The decoder cannot be stopped from the callback, but its work is bounded by the
                // 1 MiB input; only our output needs a bound.
                if too_large {
                    return;
                }
                if &*name == b":authority" && !valid_authority(&value) {
                    encode_header(&name, REPLACEMENT_AUTHORITY, out);
                    rewrote = true;
                } else {
                    encode_header(&name, &value, out);
                }
                too_large = out.len() - body_start > MAX_HEADER_BLOCK;
            },
        );
        if let Err(e) = decoded {
            out.truncate(start);
            return Err(invalid(format!("HPACK decoding failed: {e}")));
        }
        if too_large {
            out.truncate(start);
            return Err(invalid("HTTP/2 header block too large once decoded"));
        }
        if rewrote {
            self.rewritten += 1;
        }
        let mut flags = 0;
        if block.end_stream {
            flags |= END_STREAM;
        }
        if block.priority.is_some() {
            flags |= PRIORITY;
        }
        let encoded_len = out.len() - body_start;
        if prefix + encoded_len <= MAX_OUT_FRAME {
            let mut header = Vec::with_capacity(FRAME_HEADER_LEN);
            frame_header(
                prefix + encoded_len,
                HEADERS,
                flags | END_HEADERS,
                block.stream_id,
                &mut header,
            );
            out[start..start + FRAME_HEADER_LEN].copy_from_slice(&header);
            return Ok(());
        }
        let encoded = out.split_off(body_start);
        out.truncate(start);
        let (first, mut rest) = encoded.split_at(MAX_OUT_FRAME - prefix);
        frame_header(MAX_OUT_FRAME, HEADERS, flags, block.stream_id, out);
        if let Some(priority) = block.priority {
            out.extend_from_slice(&priority);
        }
        out.extend_from_slice(first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_OUT_FRAME));
            rest = tail;
            let flags = if rest.is_empty() { END_HEADERS } else { 0 };
            frame_header(chunk.len(), CONTINUATION, flags, block.stream_id, out);
            out.extend_from_slice(chunk);
        }
        Ok(())
    }
}

/// Whether `h2` accepts this `:authority`: it parses it with `http::uri::Authority` and resets
/// the stream when that fails.
fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

fn frame_header(len: usize, frame_type: u8, flags: u8, stream_id: u32, out: &mut Vec<u8>) {
    // Callers keep `len` ≤ MAX_OUT_FRAME, so the 24-bit length field holds it.
    let len = len as u32;
    out.extend_from_slice(&[
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        frame_type,
        flags,
    ]);
    out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
}

/// HPACK integer (RFC 7541 §5.1) with an `n`-bit prefix whose high bits are `first`.
fn encode_integer(value: usize, n: u8, first: u8, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// HPACK string literal, not Huffman-coded (cheaper to produce; `h2` reads both).
fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    encode_integer(s.len(), 7, 0, out);
    out.extend_from_slice(s);
}

/// One header as an indexed static entry, or a literal without indexing (with the static name
/// index when there is one): never touches the server's dynamic table.
fn encode_header(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let Some(first) = static_name_index(name) else {
        out.push(0x00);
        encode_string(name, out);
        encode_string(value, out);
        return;
    };
    // Entries sharing a name are adjacent in the static table, starting at `first`.
    for (i, (n, v)) in STATIC_TABLE.iter().enumerate().skip(first - 1) {
        if n.as_bytes() != name {
            break;
        }
        if v.as_bytes() == value {
            encode_integer(i + 1, 7, 0x80, out);
            return;
        }
    }
    encode_integer(first, 4, 0x00, out);
    encode_string(value, out);
}

/// The 1-based index of the first static table entry named `name`. A `match` compiles to a
/// switch on length and a few comparisons, far cheaper than scanning the 61 entries per header.
fn static_name_index(name: &[u8]) -> Option<usize> {
    Some(match name {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b":status" => 8,
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    })
}

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Wraps the server side of one connection; see the module documentation.
pub struct AuthorityFix<T> {
    inner: T,
    rewriter: Rewriter,
    /// Bytes read from `inner` and not yet consumed by the rewriter: a partial frame header or
    /// header-block frame. While it is empty, reads go straight into the caller's buffer.
    input: Vec<u8>,
    /// Rewritten bytes not yet handed to the reader, from `out_pos`.
    output: Vec<u8>,
    out_pos: usize,
    eof: bool,
    /// Whether the first rewrite on this connection was logged.
    logged: bool,
}

impl<T> std::fmt::Debug for AuthorityFix<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix")
            .field("rewritten", &self.rewriter.rewritten)
            .finish_non_exhaustive()
    }
}

impl<T> AuthorityFix<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            rewriter: Rewriter::default(),
            input: Vec::new(),
            output: Vec::new(),
            out_pos: 0,
            eof: false,
            logged: false,
        }
    }

    /// Header blocks rewritten so far on this connection.
    pub fn rewritten(&self) -> u64 {
        self.rewriter.rewritten
    }

    /// Runs the rewriter over the buffered input (slow path).
    fn process_input(&mut self) -> io::Result<()> {
        match self.rewriter.process(&self.input, &mut self.output) {
            Ok(consumed) => {
                self.input.drain(..consumed);
                if self.rewriter.rewritten > 0 && !self.logged {
                    self.logged = true;
                    tracing::debug!(
                        "rewrote an invalid HTTP/2 :authority to localhost (a driver that dials the socket path)"
                    );
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "closing a provider connection: malformed HTTP/2 from the client");
                Err(e)
            }
        }
    }
}

impl<T: Connected> Connected for AuthorityFix<T> {
    type ConnectInfo = T::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AuthorityFix<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
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
                this.process_input()?;
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
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

    use super::*;

    const SOCKET: &[u8] = b"/etc/kubernetes/secrets-store-csi-providers/azure.sock";

    fn frame(frame_type: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame_header(payload.len(), frame_type, flags, stream_id, &mut out);
        out.extend_from_slice(payload);
        out
    }

    fn request(authority: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (
                b":path".to_vec(),
                b"/v1alpha1.CSIDriverProvider/Mount".to_vec(),
            ),
            (b":authority".to_vec(), authority.to_vec()),
            (b"content-type".to_vec(), b"application/grpc".to_vec()),
            (b"user-agent".to_vec(), b"grpc-go/1.60.1".to_vec()),
            (b"te".to_vec(), b"trailers".to_vec()),
            (b"grpc-timeout".to_vec(), b"119999m".to_vec()),
        ]
    }

    fn encode(encoder: &mut loona_hpack::Encoder<'_>, headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
    }

    /// Parsed output frames: (type, flags, stream, payload).
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        bytes = bytes.strip_prefix(PREFACE).unwrap_or(bytes);
        let mut out = Vec::new();
        while bytes.len() >= 9 {
            let len = (usize::from(bytes[0]) << 16)
                | (usize::from(bytes[1]) << 8)
                | usize::from(bytes[2]);
            let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
            out.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
            bytes = &bytes[9 + len..];
        }
        assert!(bytes.is_empty(), "trailing bytes");
        out
    }

    /// Header blocks of the output, decoded by a fresh, independent decoder (as h2 would).
    fn decoded_blocks(output: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut decoder = loona_hpack::Decoder::new();
        let mut blocks = Vec::new();
        let mut current = Vec::new();
        for (ty, flags, _, payload) in frames(output) {
            let fragment = match ty {
                HEADERS => {
                    let skip = if flags & PRIORITY != 0 { 5 } else { 0 };
                    assert_eq!(flags & PADDED, 0);
                    payload[skip..].to_vec()
                }
                CONTINUATION => payload,
                _ => continue,
            };
            assert!(fragment.len() <= MAX_OUT_FRAME);
            current.extend_from_slice(&fragment);
            if flags & END_HEADERS != 0 {
                blocks.push(decoder.decode(&current).unwrap());
                current.clear();
            }
        }
        blocks
    }

    fn run(input: &[u8]) -> (Vec<u8>, Rewriter) {
        let mut rewriter = Rewriter::default();
        let mut out = Vec::new();
        let consumed = rewriter.process(input, &mut out).unwrap();
        assert_eq!(consumed, input.len());
        (out, rewriter)
    }

    #[test]
    fn socket_path_authority_becomes_localhost_and_nothing_else_changes() {
        let mut enc = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &encode(&mut enc, &request(SOCKET)),
        ));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\x02\x0a\x00"));
        let (out, rw) = run(&input);
        assert_eq!(rw.rewritten, 1);
        let blocks = decoded_blocks(&out);
        assert_eq!(blocks, vec![request(b"localhost")]);
        let kinds: Vec<(u8, u8, u32)> = frames(&out).iter().map(|f| (f.0, f.1, f.2)).collect();
        assert_eq!(
            kinds,
            vec![(0x4, 0, 0), (HEADERS, END_HEADERS, 1), (0x0, END_STREAM, 1)]
        );
        assert_eq!(frames(&out)[2].3, b"\0\0\0\0\x02\x0a\x00", "DATA untouched");
    }

    #[test]
    fn valid_authorities_are_kept() {
        for authority in [
            &b"localhost"[..],
            b"localhost:8080",
            b"provider.example",
            b"[::1]:1",
        ] {
            let mut enc = loona_hpack::Encoder::new();
            let mut input = PREFACE.to_vec();
            input.extend(frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &encode(&mut enc, &request(authority)),
            ));
            let (out, rw) = run(&input);
            assert_eq!(rw.rewritten, 0);
            assert_eq!(decoded_blocks(&out), vec![request(authority)]);
            assert_eq!(frames(&out)[0].1, END_HEADERS | END_STREAM);
        }
    }

    #[test]
    fn dynamic_table_references_and_size_updates_are_resolved() {
        // As grpc-go does: the first request adds :authority to the dynamic table (literal with
        // incremental indexing), later ones refer to it by index 62; a table size update may lead
        // a block. The server must see the resolved value in every request.
        let mut path = vec![0x04, 2];
        path.extend_from_slice(b"/x");
        let mut first = vec![0x83, 0x86];
        first.extend_from_slice(&path);
        first.push(0x41);
        encode_integer(SOCKET.len(), 7, 0, &mut first);
        first.extend_from_slice(SOCKET);
        let mut second = vec![0x3f, 0xe1, 0x1f, 0x83, 0x86]; // size update to 4096 first
        second.extend_from_slice(&path);
        second.push(0xbe);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        input.extend(frame(HEADERS, END_HEADERS, 3, &second));
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            5,
            &[0x83, 0x86, 0x04, 2, b'/', b'x', 0xbe],
        ));
        let (out, rw) = run(&input);
        assert_eq!(rw.rewritten, 3);
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (b":path".to_vec(), b"/x".to_vec()),
            (b":authority".to_vec(), b"localhost".to_vec()),
        ];
        assert_eq!(decoded_blocks(&out), vec![want; 3]);
    }

    #[test]
    fn padding_priority_and_continuation_are_handled() {
        let mut enc = loona_hpack::Encoder::new();
        let mut headers = request(SOCKET);
        headers.push((b"x-large".to_vec(), vec![b'a'; 40_000]));
        let block = encode(&mut enc, &headers);
        // HEADERS with PADDED + PRIORITY carrying the first 1000 bytes, then two CONTINUATIONs.
        let mut payload = vec![4u8];
        payload.extend_from_slice(&[0x80, 0, 0, 3, 15]);
        payload.extend_from_slice(&block[..1000]);
        payload.extend_from_slice(&[0; 4]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 9, &payload));
        input.extend(frame(CONTINUATION, 0, 9, &block[1000..20_000]));
        input.extend(frame(CONTINUATION, END_HEADERS, 9, &block[20_000..]));
        let (out, _) = run(&input);
        let mut want = headers.clone();
        want[3].1 = b"localhost".to_vec();
        assert_eq!(decoded_blocks(&out), vec![want]);
        let f = frames(&out);
        assert_eq!(f[0].0, HEADERS);
        assert_eq!(
            f[0].1,
            PRIORITY | END_STREAM,
            "END_STREAM and PRIORITY kept, padding dropped"
        );
        assert_eq!(&f[0].3[..5], &[0x80, 0, 0, 3, 15]);
        assert!(f[1..].iter().all(|x| x.0 == CONTINUATION && x.2 == 9));
        assert_eq!(f.last().unwrap().1, END_HEADERS);
    }

    #[test]
    fn other_frames_pass_through_byte_for_byte() {
        let mut input = PREFACE.to_vec();
        let others = [
            frame(0x0, 0x9, 1, &[2, b'x', b'y', 0, 0]), // DATA, PADDED|END_STREAM
            frame(0x2, 0, 3, &[0, 0, 0, 1, 16]),        // PRIORITY
            frame(0x3, 0, 1, &[0, 0, 0, 8]),            // RST_STREAM
            frame(0x4, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]), // SETTINGS
            frame(0x4, 0x1, 0, &[]),                    // SETTINGS ACK
            frame(0x5, 0x4, 1, &[0, 0, 0, 2, 0x82]), // PUSH_PROMISE (illegal from a client: h2 decides)
            frame(0x6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]), // PING
            frame(0x7, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]), // GOAWAY
            frame(0x8, 0, 0, &[0, 1, 0, 0]),         // WINDOW_UPDATE
            frame(0xfa, 0xff, 5, b"extension"),      // unknown type
        ];
        for f in &others {
            input.extend_from_slice(f);
        }
        let (out, _) = run(&input);
        assert_eq!(out, input);
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_output() {
        let mut enc = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &encode(&mut enc, &request(SOCKET)),
        ));
        input.extend(frame(0x0, END_STREAM, 1, b"payload"));
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            3,
            &encode(&mut enc, &request(SOCKET)),
        ));
        let (whole, _) = run(&input);
        for step in [1, 2, 7, 9, 10, 33] {
            let mut rw = Rewriter::default();
            let (mut pending, mut out) = (Vec::new(), Vec::new());
            for chunk in input.chunks(step) {
                pending.extend_from_slice(chunk);
                let n = rw.process(&pending, &mut out).unwrap();
                pending.drain(..n);
            }
            assert!(pending.is_empty());
            assert_eq!(out, whole, "split every {step} bytes");
        }
    }

    #[test]
    fn protocol_violations_are_errors_and_non_http2_passes_through() {
        let mut enc = loona_hpack::Encoder::new();
        let block = encode(&mut enc, &request(SOCKET));
        let mut interleaved = PREFACE.to_vec();
        interleaved.extend(frame(HEADERS, 0, 1, &block[..5]));
        interleaved.extend(frame(0x0, 0, 1, b"x"));
        assert!(
            Rewriter::default()
                .process(&interleaved, &mut Vec::new())
                .is_err()
        );
        let mut garbage = PREFACE.to_vec();
        garbage.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ));
        assert!(
            Rewriter::default()
                .process(&garbage, &mut Vec::new())
                .is_err()
        );
        let mut bad_pad = PREFACE.to_vec();
        bad_pad.extend(frame(HEADERS, END_HEADERS | PADDED, 1, &[200, 0x82]));
        assert!(
            Rewriter::default()
                .process(&bad_pad, &mut Vec::new())
                .is_err()
        );
        let http1 = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let (out, _) = run(http1);
        assert_eq!(out, http1);
    }

    proptest! {
        /// Decoding our output gives exactly the client's headers, with only an invalid authority
        /// replaced, over several requests sharing one client encoder.
        #[test]
        fn rewriting_preserves_every_other_header(
            requests in proptest::collection::vec(
                (
                    proptest::collection::vec(("[a-z][a-z0-9-]{0,20}", "[ -~]{0,64}"), 0..12),
                    prop_oneof!["localhost", "[a-z]{1,10}\\.example(:[0-9]{1,4})?", "/[a-z/]{1,40}\\.sock", "[ -~]{0,20}"],
                ),
                1..5,
            )
        ) {
            let mut enc = loona_hpack::Encoder::new();
            let mut input = PREFACE.to_vec();
            let mut expected = Vec::new();
            for (i, (extra, authority)) in requests.iter().enumerate() {
                let mut headers = request(authority.as_bytes());
                headers.extend(extra.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())));
                input.extend(frame(HEADERS, END_HEADERS, 2 * i as u32 + 1, &encode(&mut enc, &headers)));
                if !valid_authority(authority.as_bytes()) {
                    headers[3].1 = b"localhost".to_vec();
                }
                expected.push(headers);
            }
            let (out, _) = run(&input);
            prop_assert_eq!(decoded_blocks(&out), expected);
        }
    }

    #[test]
    fn non_header_frames_stream_without_waiting_for_the_whole_frame() {
        // A DATA frame declaring 1 MB of which 100 bytes arrived: all of it is forwarded now.
        let mut rw = Rewriter::default();
        let mut out = Vec::new();
        let mut input = PREFACE.to_vec();
        input.extend_from_slice(&[0x0f, 0x42, 0x40, 0x0, 0x0, 0, 0, 0, 1]);
        input.extend_from_slice(&[7; 100]);
        assert_eq!(rw.process(&input, &mut out).unwrap(), input.len());
        assert_eq!(out, input);
        // The rest of its body passes through the fast path, then a HEADERS frame stops it.
        assert_eq!(rw.passthrough_len(&[7; 999_900]), 999_900);
        let headers = frame(HEADERS, END_HEADERS, 3, &[0x82]);
        assert_eq!(rw.passthrough_len(&headers), 0, "the DATA frame had ended");
        let mut ping_then_headers = frame(0x6, 0, 0, &[0; 8]);
        ping_then_headers.extend_from_slice(&headers);
        assert_eq!(rw.passthrough_len(&ping_then_headers), 17);
    }

    #[test]
    fn header_frames_larger_than_the_bound_are_refused_before_buffering() {
        let mut input = PREFACE.to_vec();
        input.extend_from_slice(&[0x20, 0, 0, HEADERS, 0, 0, 0, 0, 1]); // 2 MiB declared
        let err = Rewriter::default()
            .process(&input, &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Or reached through CONTINUATIONs.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 1, &[0x82]));
        for _ in 0..64 {
            input.extend(frame(CONTINUATION, 0, 1, &[0x82; 16_384]));
        }
        assert!(
            Rewriter::default()
                .process(&input, &mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn table_size_updates_above_the_advertised_size_are_refused() {
        // Size update to 8192 (31 + 8161 in 7-bit groups), then :method GET.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &[0x3f, 0xe1, 0x3f, 0x82]));
        assert!(
            Rewriter::default()
                .process(&input, &mut Vec::new())
                .is_err()
        );
        // 4096 exactly is fine, and so is shrinking to 0 (which evicts everything).
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &[0x3f, 0xe1, 0x1f, 0x20, 0x82],
        ));
        let (out, _) = run(&input);
        assert_eq!(
            decoded_blocks(&out),
            vec![vec![(b":method".to_vec(), b"GET".to_vec())]]
        );
    }

    #[test]
    fn an_hpack_bomb_is_refused() {
        // A 4000-byte value goes into the client's table; 300 one-byte references to it would
        // decode to 1.2 MB.
        let mut first = vec![0x40, 1, b'x'];
        encode_integer(4000, 7, 0, &mut first);
        first.extend_from_slice(&[b'v'; 4000]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        input.extend(frame(HEADERS, END_HEADERS, 3, &[0xbe; 300]));
        let mut out = Vec::new();
        let err = Rewriter::default().process(&input, &mut out).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        // 200 references (800 KB) are within bounds.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        input.extend(frame(HEADERS, END_HEADERS, 3, &[0xbe; 200]));
        let (out, _) = run(&input);
        assert_eq!(decoded_blocks(&out)[1].len(), 200);
    }

    #[test]
    fn empty_blocks_and_trailers_keep_their_flags() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &[0x83, 0x86, 0x84]));
        input.extend(frame(0x0, 0, 1, b"body"));
        // Trailers: no pseudo-headers, END_STREAM; then an empty block (h2 decides on it).
        input.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &[0x00, 2, b'x', b'-', 1, b'1'],
        ));
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &[]));
        let (out, _) = run(&input);
        let f = frames(&out);
        assert_eq!(f.len(), 4);
        assert_eq!((f[2].0, f[2].1), (HEADERS, END_HEADERS | END_STREAM));
        assert_eq!(
            (f[3].0, f[3].1, f[3].3.len()),
            (HEADERS, END_HEADERS | END_STREAM, 0)
        );
    }

    #[test]
    fn continuation_without_headers_and_push_promise_pass_through() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(CONTINUATION, END_HEADERS, 1, &[0x82]));
        input.extend(frame(0x5, END_HEADERS, 1, &[0, 0, 0, 2, 0x82]));
        let (out, _) = run(&input);
        assert_eq!(out, input);
    }

    #[test]
    fn static_name_index_agrees_with_the_table() {
        for (i, (name, _)) in STATIC_TABLE.iter().enumerate() {
            let first = STATIC_TABLE.iter().position(|(n, _)| n == name).unwrap() + 1;
            assert_eq!(
                static_name_index(name.as_bytes()),
                Some(first),
                "entry {}",
                i + 1
            );
        }
        assert_eq!(static_name_index(b"te"), None);
        assert_eq!(
            static_name_index(b"Content-Type"),
            None,
            "HTTP/2 names are lower case"
        );
    }

    #[test]
    fn encoding_uses_static_entries_and_plain_literals() {
        let cases: [(&[u8], &[u8], &[u8]); 5] = [
            (b":method", b"POST", &[0x83]),
            (b":authority", b"", &[0x81]),
            (b":path", b"/x", &[0x04, 2, b'/', b'x']),
            (b"content-type", b"a", &[0x0f, 0x10, 1, b'a']),
            (b"te", b"t", &[0x00, 2, b't', b'e', 1, b't']),
        ];
        for (name, value, want) in cases {
            let mut out = Vec::new();
            encode_header(name, value, &mut out);
            assert_eq!(out, want, "{}", String::from_utf8_lossy(name));
        }
        let mut long = Vec::new();
        encode_header(b"x", &[b'y'; 300], &mut long);
        assert_eq!(&long[..6], &[0x00, 1, b'x', 0x7f, 0xad, 0x01]);
        let decoded = loona_hpack::Decoder::new().decode(&long).unwrap();
        assert_eq!(decoded, vec![(b"x".to_vec(), vec![b'y'; 300])]);
    }

    /// An inner reader that hands out its bytes in the given chunk sizes, now and then
    /// answering Pending first (waking itself), like a socket.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        turn: usize,
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

    /// Everything `AuthorityFix` yields from `input`, read with caller buffers of the given sizes,
    /// each already holding `prefill` bytes of someone else's data.
    fn read_through(
        input: &[u8],
        inner_sizes: Vec<usize>,
        outer_sizes: &[usize],
        prefill: usize,
    ) -> io::Result<Vec<u8>> {
        let inner = Chunked {
            data: input.to_vec(),
            pos: 0,
            sizes: inner_sizes,
            turn: 0,
        };
        let mut fix = AuthorityFix::new(inner);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        for turn in 0.. {
            let mut storage = vec![0xee; prefill + outer_sizes[turn % outer_sizes.len()].max(1)];
            let mut buf = ReadBuf::new(&mut storage);
            buf.put_slice(&vec![0xdd; prefill]);
            match Pin::new(&mut fix).poll_read(&mut cx, &mut buf) {
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
}
