//! Accepting any HTTP/2 `:authority` on the provider socket, so that driver v1.5 works (issue 5).
//!
//! Secrets Store CSI Driver v1.5.x dials the provider with grpc-go on the raw socket path, so its
//! requests carry `:authority` = `/etc/kubernetes/secrets-store-csi-providers/azure.sock`. That is not
//! a valid URI authority, and the `h2` crate under tonic resets such streams with PROTOCOL_ERROR
//! before our service sees them. Driver v1.6 sends `localhost`. Both must work on one socket, without
//! forking `h2`.
//!
//! Design: [`AuthorityFix`] wraps each accepted connection and rewrites the client→server byte
//! stream before `h2` parses it. It splits the stream into HTTP/2 frames (after the client preface)
//! and passes every frame through untouched except header blocks (HEADERS plus its CONTINUATIONs):
//! those are decoded with HPACK (`loona-hpack`, which mirrors the client's dynamic table, Huffman
//! coding and table size updates), an `:authority` that is not a valid URI authority is replaced by
//! `localhost`, and the block is re-encoded and re-split into HEADERS + CONTINUATION frames.
//!
//! Re-encoding uses only the static table and literals *without indexing*, for every block, rewritten
//! or not: the server's HPACK decoder then never holds a dynamic entry, so it cannot drift from the
//! client's encoder, whose dynamic-table references we resolve on the way through. Padding is dropped
//! (it is optional); END_STREAM and PRIORITY are kept. The server→client direction is untouched.
//!
//! Alternatives considered: patching or forking `h2` (ruled out: no forked dependency), or a
//! userspace HTTP/2 proxy in front of tonic (two full HTTP/2 stacks per connection, more code and
//! latency than rewriting header blocks in place). The cost is measured in `benches/authority.rs`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

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
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may advertise: re-emitted frames never exceed it.
const MAX_OUT_FRAME: usize = 16_384;
/// A header block larger than this closes the connection (the driver's are a few hundred bytes).
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// Frames larger than this close the connection (the server advertises 16 KiB; 16 MiB is the limit).
const MAX_FRAME: usize = (1 << 24) - 1;
const READ_CHUNK: usize = 16 * 1024;
/// What an invalid `:authority` becomes.
const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";

/// A header block being collected across HEADERS and CONTINUATION frames.
struct PendingBlock {
    stream_id: u32,
    /// END_STREAM of the HEADERS frame.
    end_stream: bool,
    /// The 5 priority bytes of the HEADERS frame, when it had them.
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The client→server rewriting state of one connection.
pub struct Rewriter {
    preface_seen: bool,
    /// Not HTTP/2 with prior knowledge: bytes pass through and `h2` answers as it sees fit.
    passthrough: bool,
    decoder: loona_hpack::Decoder<'static>,
    pending: Option<PendingBlock>,
    /// Header blocks rewritten because of an invalid authority (for tests and logs).
    pub rewritten: u64,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self {
            preface_seen: false,
            passthrough: false,
            decoder: loona_hpack::Decoder::new(),
            pending: None,
            rewritten: 0,
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Rewriter {
    /// Consumes whole units (preface, frames) from the front of `input`, appending their rewritten
    /// form to `out`; returns how many input bytes were consumed. Incomplete units stay in `input`.
    pub fn process(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut pos = 0;
        if self.passthrough {
            out.extend_from_slice(input);
            return Ok(input.len());
        }
        if !self.preface_seen {
            let have = input.len().min(PREFACE.len());
            if input[..have] != PREFACE[..have] {
                self.passthrough = true;
                out.extend_from_slice(input);
                return Ok(input.len());
            }
            if have < PREFACE.len() {
                return Ok(0);
            }
            out.extend_from_slice(PREFACE);
            self.preface_seen = true;
            pos = PREFACE.len();
        }
        while input.len() - pos >= FRAME_HEADER_LEN {
            let header = &input[pos..pos + FRAME_HEADER_LEN];
            let len = (usize::from(header[0]) << 16)
                | (usize::from(header[1]) << 8)
                | usize::from(header[2]);
            if len > MAX_FRAME {
                return Err(invalid("HTTP/2 frame too large"));
            }
            if input.len() - pos < FRAME_HEADER_LEN + len {
                break;
            }
            let frame_type = header[3];
            let flags = header[4];
            let stream_id =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let payload = &input[pos + FRAME_HEADER_LEN..pos + FRAME_HEADER_LEN + len];
            match (frame_type, &mut self.pending) {
                (HEADERS, None) => self.start_block(stream_id, flags, payload, out)?,
                (CONTINUATION, Some(pending)) if pending.stream_id == stream_id => {
                    if pending.fragment.len() + payload.len() > MAX_HEADER_BLOCK {
                        return Err(invalid("HTTP/2 header block too large"));
                    }
                    pending.fragment.extend_from_slice(payload);
                    if flags & END_HEADERS != 0 {
                        self.finish_block(out)?;
                    }
                }
                // RFC 9113 §6.10: nothing may interleave with a header block.
                (_, Some(_)) => {
                    return Err(invalid("HTTP/2 frame interleaved with a header block"));
                }
                _ => out.extend_from_slice(&input[pos..pos + FRAME_HEADER_LEN + len]),
            }
            pos += FRAME_HEADER_LEN + len;
        }
        Ok(pos)
    }

    fn start_block(
        &mut self,
        stream_id: u32,
        flags: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut body = payload;
        let mut pad = 0;
        if flags & PADDED != 0 {
            let (&n, rest) = body
                .split_first()
                .ok_or_else(|| invalid("HEADERS frame too short"))?;
            pad = usize::from(n);
            body = rest;
        }
        let mut priority = None;
        if flags & PRIORITY != 0 {
            let bytes: [u8; 5] = body
                .get(..5)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| invalid("HEADERS frame too short"))?;
            priority = Some(bytes);
            body = &body[5..];
        }
        let fragment = body
            .get(
                ..body
                    .len()
                    .checked_sub(pad)
                    .ok_or_else(|| invalid("HEADERS padding too long"))?,
            )
            .ok_or_else(|| invalid("HEADERS padding too long"))?;
        self.pending = Some(PendingBlock {
            stream_id,
            end_stream: flags & END_STREAM != 0,
            priority,
            fragment: fragment.to_vec(),
        });
        if flags & END_HEADERS != 0 {
            self.finish_block(out)?;
        }
        Ok(())
    }

    fn finish_block(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let Some(block) = self.pending.take() else {
            return Ok(());
        };
        let mut headers = self
            .decoder
            .decode(&block.fragment)
            .map_err(|e| invalid(format!("HPACK decoding failed: {e}")))?;
        let mut rewrote = false;
        for (name, value) in &mut headers {
            if name.as_slice() == b":authority" && !valid_authority(value) {
                *value = REPLACEMENT_AUTHORITY.to_vec();
                rewrote = true;
            }
        }
        if rewrote {
            self.rewritten += 1;
        }
        let mut encoded = Vec::with_capacity(block.fragment.len() + 16);
        for (name, value) in &headers {
            encode_header(name, value, &mut encoded);
        }
        write_block(&block, &encoded, out);
        Ok(())
    }
}

/// Whether `h2` accepts this `:authority` (it parses it as a URI authority).
fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// HEADERS (with the original END_STREAM and priority) then CONTINUATIONs, each ≤ 16 KiB.
fn write_block(block: &PendingBlock, encoded: &[u8], out: &mut Vec<u8>) {
    let prefix = if block.priority.is_some() { 5 } else { 0 };
    let first_len = encoded.len().min(MAX_OUT_FRAME - prefix);
    let (first, mut rest) = encoded.split_at(first_len);
    let mut flags = 0;
    if block.end_stream {
        flags |= END_STREAM;
    }
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(prefix + first.len(), HEADERS, flags, block.stream_id, out);
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
}

fn frame_header(len: usize, frame_type: u8, flags: u8, stream_id: u32, out: &mut Vec<u8>) {
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

/// HPACK integer with an `n`-bit prefix whose high bits are `first`.
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

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    encode_integer(s.len(), 7, 0, out);
    out.extend_from_slice(s);
}

/// One header as an indexed static entry, or a literal without indexing (static name index when
/// there is one): never touches the dynamic table.
fn encode_header(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let mut name_index = None;
    for (i, (n, v)) in STATIC_TABLE.iter().enumerate() {
        if n.as_bytes() == name {
            if v.as_bytes() == value {
                encode_integer(i + 1, 7, 0x80, out);
                return;
            }
            name_index.get_or_insert(i + 1);
        }
    }
    match name_index {
        Some(index) => encode_integer(index, 4, 0x00, out),
        None => {
            out.push(0x00);
            encode_string(name, out);
        }
    }
    encode_string(value, out);
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
    /// Bytes read from `inner` and not yet consumed by the rewriter.
    input: Vec<u8>,
    /// Rewritten bytes not yet handed to the reader, from `out_pos`.
    output: Vec<u8>,
    out_pos: usize,
    eof: bool,
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
                let consumed = this.rewriter.process(&this.input, &mut this.output)?;
                this.input.drain(..consumed);
                if !this.output.is_empty() {
                    continue;
                }
            }
            if this.eof {
                // A truncated final frame is dropped: h2 sees the connection end, as it would have.
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read_buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read_buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
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
}
