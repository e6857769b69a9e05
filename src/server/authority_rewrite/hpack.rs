//! HPACK re-encoding of one header block: decoded with the client's dynamic table, its invalid
//! `:authority` replaced, encoded again with static-table indexes and plain literals only, so that
//! the server's dynamic table stays empty (see the parent module's documentation).
//!
//! Decoding stops at the first header that takes the decoded list over
//! [`MAX_HEADER_LIST_SIZE`]. `loona-hpack` cannot be stopped from its per-header callback, so the
//! block is handed to it one field representation at a time; [`representation_len`] finds where
//! each one ends.

use std::borrow::Cow;
use std::fmt;

/// The HPACK dynamic table size `h2` advertises (SETTINGS_HEADER_TABLE_SIZE default, RFC 9113).
const HEADER_TABLE_SIZE: usize = 4096;
/// The largest decoded header list accepted, in RFC 7541 §4.1 sizes. 64 KiB is where `h2`
/// itself turns an oversized list into a connection error (ENHANCE_YOUR_CALM): 4 times the
/// 16 KiB SETTINGS_MAX_HEADER_LIST_SIZE that hyper advertises for tonic. Lists between the two
/// still reach `h2`, which refuses the stream alone.
pub(super) const MAX_HEADER_LIST_SIZE: usize = 64 * 1024;
/// What RFC 7541 §4.1 adds to the name and value lengths of an entry.
const ENTRY_OVERHEAD: usize = 32;
/// What an invalid `:authority` becomes.
const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";

/// Why a header block could not be re-encoded; either way the connection is refused.
#[derive(Debug)]
pub(super) enum BlockError {
    /// Not HPACK the client's table can decode, or a table size update above
    /// [`HEADER_TABLE_SIZE`].
    Hpack(loona_hpack::decoder::DecoderError),
    /// The field representation at `offset` in the block took the decoded list over
    /// [`MAX_HEADER_LIST_SIZE`]; nothing after it was decoded.
    ListTooLarge { offset: usize },
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hpack(e) => write!(f, "HPACK decoding failed: {e}"),
            Self::ListTooLarge { offset } => write!(
                f,
                "HTTP/2 header list too large: over {MAX_HEADER_LIST_SIZE} bytes once decoded, \
                 at byte {offset} of its block"
            ),
        }
    }
}

/// The client's HPACK state on one connection: the decoder mirrors the client's encoder.
pub(super) struct Reencoder {
    decoder: loona_hpack::Decoder<'static>,
}

impl Reencoder {
    pub(super) fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        // `h2` would refuse a larger table too, and this bounds the table's memory.
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Self { decoder }
    }

    /// Appends `block` re-encoded to `out` and tells whether its `:authority` was replaced. What
    /// is appended is at most [`MAX_HEADER_LIST_SIZE`] bytes: no header encodes to more than its
    /// RFC 7541 §4.1 size. On error `out` may hold part of the block, for the caller to discard.
    pub(super) fn reencode(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<bool, BlockError> {
        let mut rewrote = false;
        let mut list_size = 0usize;
        let mut over = false;
        let mut pos = 0;
        while let Some(rest) = block.get(pos..).filter(|rest| !rest.is_empty()) {
            // What cannot be delimited is malformed: `loona-hpack` then says how, from there.
            let len = representation_len(rest).unwrap_or(rest.len());
            self.decoder
                .decode_with_cb(
                    rest.get(..len).unwrap_or(rest),
                    |name: Cow<'_, [u8]>, value: Cow<'_, [u8]>| {
                        // A piece holds one field, so this guards only against the two parsers
                        // ever disagreeing on where a field ends.
                        if over {
                            return;
                        }
                        list_size =
                            list_size.saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
                        if list_size > MAX_HEADER_LIST_SIZE {
                            over = true;
                        } else if &*name == b":authority" && !valid_authority(&value) {
                            encode_header(&name, REPLACEMENT_AUTHORITY, out);
                            rewrote = true;
                        } else {
                            encode_header(&name, &value, out);
                        }
                    },
                )
                .map_err(BlockError::Hpack)?;
            if over {
                return Err(BlockError::ListTooLarge { offset: pos });
            }
            pos += len;
        }
        Ok(rewrote)
    }
}

/// The length of the field representation at the start of `block`, with the dynamic table size
/// updates before it (a block of updates alone is returned whole, for the decoder to refuse);
/// `None` when it is malformed or cut short. Parses as RFC 7541 §6 and `loona-hpack` do, integers
/// included, so that decoding the block piece by piece is decoding it whole.
fn representation_len(block: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let first = *block.get(pos)?;
        let rest = block.get(pos..)?;
        if first & 0x80 != 0 {
            // Indexed field.
            return Some(pos + integer(rest, 7)?.1);
        }
        if first & 0xe0 == 0x20 {
            // Dynamic table size update.
            pos += integer(rest, 5)?.1;
            if pos == block.len() {
                return Some(pos);
            }
            continue;
        }
        // A literal, with incremental indexing (6-bit name index) or without (4 bits).
        let prefix = if first & 0x40 != 0 { 6 } else { 4 };
        let (name_index, n) = integer(rest, prefix)?;
        pos += n;
        if name_index == 0 {
            pos += string_len(block.get(pos..)?)?;
        }
        return Some(pos + string_len(block.get(pos..)?)?);
    }
}

/// An HPACK integer with a `prefix_bits` prefix: its value and length. Like `loona-hpack`, at most
/// 5 bytes (values up to about 2^28), so that both find the same lengths.
fn integer(buf: &[u8], prefix_bits: u8) -> Option<(usize, usize)> {
    let mask = (1u8 << prefix_bits) - 1;
    let mut value = usize::from(*buf.first()? & mask);
    if value < usize::from(mask) {
        return Some((value, 1));
    }
    for (i, &b) in buf.iter().enumerate().skip(1).take(4) {
        value += usize::from(b & 0x7f) << (7 * (i - 1));
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The encoded length of the HPACK string literal at the start of `buf`, Huffman-coded or not.
fn string_len(buf: &[u8]) -> Option<usize> {
    let (len, n) = integer(buf, 7)?;
    let total = n.checked_add(len)?;
    (total <= buf.len()).then_some(total)
}

/// Whether `h2` accepts this `:authority`: it parses it with `http::uri::Authority` and resets
/// the stream when that fails.
pub(super) fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// HPACK integer (RFC 7541 §5.1) with an `n`-bit prefix whose high bits are `first`.
pub(super) fn encode_integer(value: usize, n: u8, first: u8, out: &mut Vec<u8>) {
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
pub(super) fn encode_string(s: &[u8], out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::test_support::*;
    use super::*;

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
            assert!(!rw.has_rewritten());
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
        assert!(rw.has_rewritten());
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (b":path".to_vec(), b"/x".to_vec()),
            (b":authority".to_vec(), b"localhost".to_vec()),
        ];
        assert_eq!(decoded_blocks(&out), vec![want; 3]);
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
        assert_eq!(connection_error(&err).unwrap().code, ENHANCE_YOUR_CALM);
        // 16 references (64,528 bytes as RFC 7541 counts them) are within bounds.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        input.extend(frame(HEADERS, END_HEADERS, 3, &[0xbe; 16]));
        let (out, _) = run(&input);
        assert_eq!(decoded_blocks(&out)[1].len(), 16);
    }

    /// A fresh re-encoder whose table holds `x: vvv…`, an entry of `size` bytes as RFC 7541
    /// counts them (index 62).
    fn reencoder_with_entry(size: usize) -> Reencoder {
        let mut block = vec![0x40, 1, b'x'];
        encode_integer(size - 33, 7, 0, &mut block);
        block.extend(vec![b'v'; size - 33]);
        let mut reencoder = Reencoder::new();
        reencoder.reencode(&block, &mut Vec::new()).unwrap();
        reencoder
    }

    #[test]
    fn decoded_header_lists_up_to_64_kib_pass_and_larger_are_refused() {
        // 16 references to a 4033-byte entry and a literal of 1008 bytes: 65,536 exactly.
        let mut block = vec![0xbe; 16];
        block.extend(literal(b"y", &[b'w'; 975]));
        let mut out = Vec::new();
        assert!(
            !reencoder_with_entry(4033)
                .reencode(&block, &mut out)
                .unwrap()
        );
        let decoded = loona_hpack::Decoder::new().decode(&out).unwrap();
        assert_eq!(decoded.len(), 17);
        assert_eq!(list_size(&decoded), MAX_HEADER_LIST_SIZE);
        // One byte more, in the last header: refused there.
        let mut block = vec![0xbe; 16];
        block.extend(literal(b"y", &[b'w'; 976]));
        let err = reencoder_with_entry(4033)
            .reencode(&block, &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(err, BlockError::ListTooLarge { offset: 16 }),
            "{err}"
        );
    }

    #[test]
    fn an_amplification_attempt_stops_at_the_first_header_over_the_cap() {
        // A full frame of one-byte references to a 4 KiB entry would decode to 64 MiB. 16 of them
        // make 64 KiB exactly; decoding stops at the 17th, with 16 headers' worth of output.
        let mut reencoder = reencoder_with_entry(HEADER_TABLE_SIZE);
        let mut out = Vec::new();
        let err = reencoder
            .reencode(&[0xbe; MAX_FRAME_SIZE], &mut out)
            .unwrap_err();
        assert!(
            matches!(err, BlockError::ListTooLarge { offset: 16 }),
            "{err}"
        );
        assert!(out.len() <= MAX_HEADER_LIST_SIZE, "{}", out.len());
        assert!(
            out.capacity() <= 2 * MAX_HEADER_LIST_SIZE,
            "{}",
            out.capacity()
        );
        assert_eq!(loona_hpack::Decoder::new().decode(&out).unwrap().len(), 16);
    }

    #[test]
    fn representations_are_delimited_as_rfc_7541_encodes_them() {
        let cases: [(&[u8], Option<usize>); 12] = [
            (&[0x82, 0x84], Some(1)),                      // indexed
            (&[0xff, 0x80, 0x01, 0x82], Some(3)),          // indexed, multi-byte index
            (&[0x41, 3, b'a', b'b', b'c', 0x82], Some(5)), // incremental, indexed name
            (&[0x40, 1, b'n', 0x81, 0xff, 0x82], Some(5)), // incremental, new name, Huffman value
            (&[0x0f, 0x10, 1, b'a'], Some(4)),             // without indexing, name index 31
            (&[0x10, 1, b'n', 1, b'v'], Some(5)),          // never indexed, new name
            (&[0x3f, 0xe1, 0x1f, 0x20, 0x82], Some(5)),    // size updates lead the field
            (&[0x3f, 0xe1, 0x1f], Some(3)), // updates alone: for the decoder to refuse
            (&[0x41, 5, b'a'], None),       // value cut short
            (&[0xff, 0x80, 0x80, 0x80, 0x80, 0x01], None), // integer over 5 bytes
            (&[0x00], None),                // name missing
            (&[], None),
        ];
        for (block, want) in cases {
            assert_eq!(representation_len(block), want, "{block:02x?}");
        }
    }

    /// A header block for the agreement property: arbitrary bytes, or what an independent encoder
    /// (httlib-hpack) writes, whole or with one byte changed.
    fn block() -> impl Strategy<Value = Vec<u8>> {
        let headers = proptest::collection::vec(
            (
                prop_oneof!["[a-z:][a-z-]{0,10}", Just(":authority".to_owned())],
                "[ -~]{0,40}",
                any::<u8>(),
            ),
            0..10,
        );
        let encoded = (headers, proptest::option::of(0u32..=4096)).prop_map(|(headers, size)| {
            let mut encoder = httlib_hpack::Encoder::default();
            let mut block = Vec::new();
            if let Some(size) = size {
                encoder.update_max_dynamic_size(size, &mut block).unwrap();
            }
            for (name, value, flags) in headers {
                let field = (name.into_bytes(), value.into_bytes(), flags & 0x1f);
                encoder.encode(field, &mut block).unwrap();
            }
            block
        });
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            encoded.clone(),
            (encoded, any::<usize>(), any::<u8>()).prop_map(|(mut block, at, byte)| {
                if !block.is_empty() {
                    let at = at % block.len();
                    block[at] = byte;
                }
                block
            }),
        ]
    }

    proptest! {
        /// Decoding one representation at a time, as `reencode` does, is decoding the block
        /// whole: same headers (bar the authority), same error, or a list that did cross the cap.
        #[test]
        fn reencoding_agrees_with_decoding_whole_blocks(
            blocks in proptest::collection::vec(block(), 1..4),
        ) {
            let mut ours = Reencoder::new();
            let mut theirs = loona_hpack::Decoder::new();
            theirs.set_max_allowed_table_size(HEADER_TABLE_SIZE);
            for block in blocks {
                let mut whole = Vec::new();
                let whole_result = theirs.decode_with_cb(&block, |n, v| {
                    whole.push((n.into_owned(), v.into_owned()));
                });
                let mut out = Vec::new();
                match (ours.reencode(&block, &mut out), whole_result) {
                    (Ok(_), Ok(())) => {
                        for (name, value) in &mut whole {
                            if name == b":authority" && !valid_authority(value) {
                                *value = b"localhost".to_vec();
                            }
                        }
                        prop_assert_eq!(loona_hpack::Decoder::new().decode(&out).unwrap(), whole);
                    }
                    (Err(BlockError::Hpack(ours)), Err(theirs)) => {
                        prop_assert_eq!(ours, theirs);
                        break;
                    }
                    (Err(BlockError::ListTooLarge { .. }), _) => {
                        prop_assert!(list_size(&whole) > MAX_HEADER_LIST_SIZE);
                        break;
                    }
                    (ours, theirs) => prop_assert!(false, "{ours:?} but {theirs:?}"),
                }
            }
        }
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
}
