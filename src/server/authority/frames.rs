//! The HTTP/2 framing of the client→server bytes: the preface, frame headers, frames passed
//! through as they arrive, header blocks collected across HEADERS and CONTINUATION frames and
//! re-split into frames once [`hpack`](super::hpack) has re-encoded them.

use std::io;

use super::hpack::Reencoder;

/// The HTTP/2 client connection preface.
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
pub(super) const HEADERS: u8 = 0x1;
pub(super) const CONTINUATION: u8 = 0x9;
pub(super) const END_STREAM: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
pub(super) const PRIORITY: u8 = 0x20;
/// Length of the PRIORITY fields of a HEADERS frame (stream dependency and weight).
const PRIORITY_LEN: usize = 5;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may advertise: re-emitted frames never exceed it.
pub(super) const MAX_OUT_FRAME: usize = 16_384;
/// A header block larger than this, as received or re-encoded, closes the connection (the
/// driver's are a few hundred bytes; `h2`'s own header list limit is 16 MiB).
pub(super) const MAX_HEADER_BLOCK: usize = 1 << 20;

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
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
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
        match self.hpack.reencode(&block.fragment, out) {
            Ok(rewrote) => self.rewrote |= rewrote,
            Err(e) => {
                out.truncate(start);
                return Err(invalid(e.to_string()));
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

/// Appends a 9-byte frame header.
pub(super) fn frame_header(
    len: usize,
    frame_type: u8,
    flags: u8,
    stream_id: u32,
    out: &mut Vec<u8>,
) {
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
}
