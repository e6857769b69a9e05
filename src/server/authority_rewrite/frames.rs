//! The HTTP/2 framing of the client→server bytes: the preface, frame headers, frames passed
//! through as they arrive, header blocks collected across HEADERS and CONTINUATION frames (within
//! the size caps) and re-split into frames once [`hpack`](super::hpack) has re-encoded them. Also
//! the frame boundaries of the server→client bytes, which tell when a GOAWAY can go in.

use std::fmt;
use std::io;

use super::hpack::{BlockError, Reencoder};

/// The HTTP/2 client connection preface.
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(super) const FRAME_HEADER_LEN: usize = 9;
pub(super) const HEADERS: u8 = 0x1;
const GOAWAY: u8 = 0x7;
pub(super) const CONTINUATION: u8 = 0x9;
pub(super) const END_STREAM: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
pub(super) const PRIORITY: u8 = 0x20;
/// Length of the PRIORITY fields of a HEADERS frame (stream dependency and weight).
const PRIORITY_LEN: usize = 5;
/// SETTINGS_MAX_FRAME_SIZE as the server advertises it: tonic leaves hyper's 16 KiB (h2's
/// default too), which is also the smallest value a peer may advertise. HEADERS and CONTINUATION
/// frames over it are refused before they are buffered, as `h2` would refuse them, and
/// re-emitted frames never exceed it. Raising the server's setting must raise this too.
pub(super) const MAX_FRAME_SIZE: usize = 16_384;
/// The largest header block accepted, as received (the payloads of its HEADERS and CONTINUATION
/// frames, padding included): four full frames, and as much as the decoded list may hold.
pub(super) const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// RFC 9113 §7 error codes of the connection errors found here.
const PROTOCOL_ERROR: u32 = 0x1;
pub(super) const FRAME_SIZE_ERROR: u32 = 0x6;
const COMPRESSION_ERROR: u32 = 0x9;
pub(super) const ENHANCE_YOUR_CALM: u32 = 0xb;
/// GOAWAY debug data is cut to this: it is a hint for the client's logs.
const MAX_DEBUG_DATA: usize = 256;

/// A connection error (RFC 9113 §5.4.1) in the client's bytes. It travels inside the
/// `InvalidData` error of the read that found it, so that the GOAWAY can name its code.
#[derive(Debug)]
pub(super) struct ConnectionError {
    pub(super) code: u32,
    message: String,
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectionError {}

fn refuse(code: u32, message: impl Into<String>) -> io::Error {
    let message = message.into();
    io::Error::new(
        io::ErrorKind::InvalidData,
        ConnectionError { code, message },
    )
}

/// The connection error inside an error of [`Rewriter::process`], if it is one.
pub(super) fn connection_error(error: &io::Error) -> Option<&ConnectionError> {
    error.get_ref()?.downcast_ref()
}

/// A header block being collected across HEADERS and CONTINUATION frames.
struct PendingBlock {
    stream_id: u32,
    /// END_STREAM of the HEADERS frame.
    end_stream: bool,
    /// The PRIORITY fields of the HEADERS frame, when it had them.
    priority: Option<[u8; PRIORITY_LEN]>,
    /// Payload bytes of its frames so far, padding and priority included.
    received: usize,
    fragment: Vec<u8>,
}

/// The client→server rewriting state of one connection (public for the fuzz target and the
/// benchmark; the server uses it through [`AuthorityFix`](super::AuthorityFix)).
pub struct Rewriter {
    preface_seen: bool,
    /// Not HTTP/2 with prior knowledge: bytes pass through and `h2` answers as it sees fit.
    passthrough: bool,
    /// Body bytes of the current pass-through frame still to forward.
    forward: usize,
    hpack: Reencoder,
    pending: Option<PendingBlock>,
    /// Whether a header block of this connection had its authority rewritten.
    rewrote: bool,
    /// The highest stream a header block was re-encoded for: a GOAWAY's last stream. `h2` may
    /// have acted on any of them; overstating only stops the client from retrying a request
    /// that did not run, understating could make it retry one that did.
    last_stream_id: u32,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self {
            preface_seen: false,
            passthrough: false,
            forward: 0,
            hpack: Reencoder::new(),
            pending: None,
            rewrote: false,
            last_stream_id: 0,
        }
    }
}

/// The length field of a 9-byte frame header.
pub(super) fn frame_len(header: &[u8]) -> usize {
    (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2])
}

impl Rewriter {
    /// Whether any header block of this connection had its `:authority` rewritten: the client
    /// is a driver that dials the socket path (v1.5 and older).
    pub fn has_rewritten(&self) -> bool {
        self.rewrote
    }

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

    /// The highest stream a header block was re-encoded for.
    pub(super) fn last_stream_id(&self) -> u32 {
        self.last_stream_id
    }

    /// Consumes what it can from the front of `input`, appending its rewritten form to `out`;
    /// returns how many bytes were consumed. What is left (a partial preface, frame header or
    /// header-block frame) must be offered again with more bytes after it. An error is a
    /// connection error: the connection cannot go on.
    pub fn process(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        self.process_until(input, out, usize::MAX)
    }

    /// [`Rewriter::process`], but taking no new frame once `out` holds `out_limit` bytes; what it
    /// leaves is then offered again as is. Each frame's output is bounded (a re-encoded block by
    /// the caps, anything else by `input`), so `out` stays bounded however much a few bytes of
    /// input expand.
    pub(super) fn process_until(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        out_limit: usize,
    ) -> io::Result<usize> {
        let mut pos = 0;
        loop {
            if out.len() >= out_limit {
                return Ok(pos);
            }
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
            let received = match &self.pending {
                // RFC 9113 §6.10: nothing may interleave with a header block.
                Some(p) if frame_type != CONTINUATION || p.stream_id != stream_id => {
                    return Err(refuse(
                        PROTOCOL_ERROR,
                        "HTTP/2 frame interleaved with a header block",
                    ));
                }
                Some(p) => p.received,
                None => 0,
            };
            // Both checked on the frame header, before buffering: a large declared length costs
            // no memory.
            if len > MAX_FRAME_SIZE {
                return Err(refuse(
                    FRAME_SIZE_ERROR,
                    format!(
                        "HTTP/2 frame of type {frame_type} too large: {len} bytes, over the \
                         advertised SETTINGS_MAX_FRAME_SIZE {MAX_FRAME_SIZE}"
                    ),
                ));
            }
            if received + len > MAX_HEADER_BLOCK {
                return Err(refuse(
                    ENHANCE_YOUR_CALM,
                    format!("HTTP/2 header block too large: over {MAX_HEADER_BLOCK} bytes"),
                ));
            }
            let Some(frame) = rest.get(..FRAME_HEADER_LEN + len) else {
                return Ok(pos);
            };
            let payload = &frame[FRAME_HEADER_LEN..];
            match (frame_type, &mut self.pending) {
                (HEADERS, _) => self.start_block(stream_id, flags, payload, out)?,
                (_, Some(pending)) => {
                    pending.received += payload.len();
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
        let too_short = || {
            refuse(
                PROTOCOL_ERROR,
                "HEADERS frame too short for its padding and priority",
            )
        };
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
            received: payload.len(),
            fragment: body.get(..fragment_len).unwrap_or(body).to_vec(),
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
        match self.hpack.reencode(&block.fragment, out) {
            Ok(rewrote) => {
                self.rewrote |= rewrote;
                self.last_stream_id = self.last_stream_id.max(block.stream_id);
            }
            Err(e) => {
                out.truncate(start);
                let code = match e {
                    BlockError::Hpack(_) => COMPRESSION_ERROR,
                    BlockError::ListTooLarge { .. } => ENHANCE_YOUR_CALM,
                };
                return Err(refuse(code, e.to_string()));
            }
        }
        let mut flags = 0;
        if block.end_stream {
            flags |= END_STREAM;
        }
        if block.priority.is_some() {
            flags |= PRIORITY;
        }
        let encoded_len = out.len() - body_start;
        if prefix + encoded_len <= MAX_FRAME_SIZE {
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
        let (first, mut rest) = encoded.split_at(MAX_FRAME_SIZE - prefix);
        frame_header(MAX_FRAME_SIZE, HEADERS, flags, block.stream_id, out);
        if let Some(priority) = block.priority {
            out.extend_from_slice(&priority);
        }
        out.extend_from_slice(first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_SIZE));
            rest = tail;
            let flags = if rest.is_empty() { END_HEADERS } else { 0 };
            frame_header(chunk.len(), CONTINUATION, flags, block.stream_id, out);
            out.extend_from_slice(chunk);
        }
        Ok(())
    }
}

/// Appends a 9-byte frame header.
pub(super) fn frame_header(
    len: usize,
    frame_type: u8,
    flags: u8,
    stream_id: u32,
    out: &mut Vec<u8>,
) {
    // Callers keep `len` ≤ MAX_FRAME_SIZE, so the 24-bit length field holds it.
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

/// A GOAWAY frame (RFC 9113 §6.8) for `error`, its message as debug data.
pub(super) fn goaway(last_stream_id: u32, error: &ConnectionError) -> Vec<u8> {
    let message = error.message.as_bytes();
    let debug = message.get(..MAX_DEBUG_DATA).unwrap_or(message);
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + 8 + debug.len());
    frame_header(8 + debug.len(), GOAWAY, 0, 0, &mut out);
    out.extend_from_slice(&(last_stream_id & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&error.code.to_be_bytes());
    out.extend_from_slice(debug);
    out
}

/// Where the server→client bytes stand in the HTTP/2 framing, counting only what the socket
/// accepted. `h2` writes whole frames but the socket may take part of one; a GOAWAY of ours is
/// only safe between two frames.
#[derive(Debug, Default)]
pub(super) struct SentFrames {
    /// The current frame header, as far as it was sent.
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame not sent yet.
    payload_left: usize,
    /// Whether a whole frame was sent: the first is the server's SETTINGS, which must come first.
    any_frame: bool,
}

impl SentFrames {
    /// Follows `sent`, the next bytes the socket accepted.
    pub(super) fn advance(&mut self, mut sent: &[u8]) {
        while !sent.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(sent.len());
                self.payload_left -= n;
                sent = sent.get(n..).unwrap_or_default();
                self.any_frame |= self.payload_left == 0;
                continue;
            }
            let n = (FRAME_HEADER_LEN - self.header_len).min(sent.len());
            if let (Some(to), Some(from)) = (
                self.header.get_mut(self.header_len..self.header_len + n),
                sent.get(..n),
            ) {
                to.copy_from_slice(from);
            }
            self.header_len += n;
            sent = sent.get(n..).unwrap_or_default();
            if self.header_len == FRAME_HEADER_LEN {
                self.header_len = 0;
                self.payload_left = frame_len(&self.header);
                self.any_frame |= self.payload_left == 0;
            }
        }
    }

    /// Whether the bytes sent so far end with a whole frame.
    pub(super) fn between_frames(&self) -> bool {
        self.any_frame && self.header_len == 0 && self.payload_left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

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
        assert!(rw.has_rewritten());
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
    fn padding_priority_and_continuation_are_handled() {
        let mut enc = loona_hpack::Encoder::new();
        let mut headers = request(SOCKET);
        headers.push((b"x-large".to_vec(), vec![b'a'; 40_000]));
        let block = encode(&mut enc, &headers);
        // HEADERS with PADDED + PRIORITY carrying the first 1000 bytes, then three CONTINUATIONs.
        let mut payload = vec![4u8];
        payload.extend_from_slice(&[0x80, 0, 0, 3, 15]);
        payload.extend_from_slice(&block[..1000]);
        payload.extend_from_slice(&[0; 4]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 9, &payload));
        input.extend(frame(CONTINUATION, 0, 9, &block[1000..17_000]));
        input.extend(frame(CONTINUATION, 0, 9, &block[17_000..33_000]));
        input.extend(frame(CONTINUATION, END_HEADERS, 9, &block[33_000..]));
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

    /// The connection error code of a refused input.
    fn refusal(input: &[u8]) -> u32 {
        let err = Rewriter::default()
            .process(input, &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        connection_error(&err).unwrap().code
    }

    #[test]
    fn header_frames_up_to_the_advertised_frame_size_pass_and_larger_are_refused_unbuffered() {
        let block = literal_of_len(MAX_FRAME_SIZE);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &block));
        let (out, _) = run(&input);
        assert_eq!(
            decoded_blocks(&out),
            vec![loona_hpack::Decoder::new().decode(&block).unwrap()]
        );
        // One byte more: refused on the frame header alone, before any payload arrives.
        let mut input = PREFACE.to_vec();
        input.extend_from_slice(&[0, 0x40, 0x01, HEADERS, END_HEADERS, 0, 0, 0, 1]);
        assert_eq!(refusal(&input), FRAME_SIZE_ERROR);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 1, &[0x82]));
        input.extend_from_slice(&[0, 0x40, 0x01, CONTINUATION, END_HEADERS, 0, 0, 0, 1]);
        assert_eq!(refusal(&input), FRAME_SIZE_ERROR);
        // Other frames are not the layer's business: a large DATA frame streams through.
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x0, 0, 1, &vec![7; 100_000]));
        assert_eq!(run(&input).0, input);
    }

    #[test]
    fn header_blocks_up_to_64_kib_as_received_pass_and_larger_are_refused_unbuffered() {
        // 65,536 block bytes that decode to little: Huffman-coded newlines, then a short literal
        // to land on the cap exactly.
        let mut block = vec![0x00, 1, b'x'];
        let value = huffman_newlines(4368);
        encode_integer(value.len(), 7, 0x80, &mut block);
        block.extend_from_slice(&value);
        let filler = MAX_HEADER_BLOCK - block.len() - 4;
        block.extend(literal(b"y", &vec![b'y'; filler]));
        assert_eq!(block.len(), MAX_HEADER_BLOCK);
        let headers = loona_hpack::Decoder::new().decode(&block).unwrap();
        assert!(list_size(&headers) < MAX_HEADER_LIST_SIZE);
        let pieces: Vec<&[u8]> = block.chunks(MAX_FRAME_SIZE).collect();
        assert_eq!(pieces.len(), 4);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 1, pieces[0]));
        input.extend(frame(CONTINUATION, 0, 1, pieces[1]));
        input.extend(frame(CONTINUATION, 0, 1, pieces[2]));
        let mut at_cap = input.clone();
        at_cap.extend(frame(CONTINUATION, END_HEADERS, 1, pieces[3]));
        let (out, _) = run(&at_cap);
        assert_eq!(decoded_blocks(&out), vec![headers]);
        // One byte more in a fifth frame: refused on its frame header, its byte never buffered.
        let mut over = input;
        over.extend(frame(CONTINUATION, 0, 1, pieces[3]));
        over.extend_from_slice(&[0, 0, 1, CONTINUATION, END_HEADERS, 0, 0, 0, 1]);
        assert_eq!(refusal(&over), ENHANCE_YOUR_CALM);
    }

    #[test]
    fn output_waits_at_the_limit_however_much_input_expands() {
        // A 4 KiB table entry, then blocks of 16 one-byte references: 17 input bytes each, 64 KiB
        // of output each.
        let mut first = vec![0x40, 1, b'x'];
        encode_integer(4063, 7, 0, &mut first);
        first.extend_from_slice(&[b'v'; 4063]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        for stream in 0..50 {
            input.extend(frame(HEADERS, END_HEADERS, 3 + 2 * stream, &[0xbe; 16]));
        }
        let mut rw = Rewriter::default();
        let (mut pos, mut out, mut blocks) = (0, Vec::new(), Vec::new());
        while pos < input.len() {
            out.clear();
            let n = rw.process_until(&input[pos..], &mut out, 1024).unwrap();
            assert!(n > 0, "progress every time");
            assert!(out.len() <= 1024 + FRAME_HEADER_LEN + 4 + MAX_HEADER_LIST_SIZE);
            pos += n;
            blocks.extend(decoded_blocks(&out).into_iter().map(|b| b.len()));
        }
        assert_eq!(blocks, [vec![1], vec![16; 50]].concat());
        assert_eq!(rw.last_stream_id(), 101);
    }
}
