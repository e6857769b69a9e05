//! Builders and parsers of HTTP/2 frames and header blocks shared by the tests of the
//! `authority` modules.

pub(super) use super::Rewriter;
pub(super) use super::frames::{
    CONTINUATION, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, FRAME_HEADER_LEN, FRAME_SIZE_ERROR,
    HEADERS, MAX_FRAME_SIZE, PADDED, PREFACE, PRIORITY, connection_error, frame_header, frame_len,
};
pub(super) use super::hpack::{
    MAX_HEADER_LIST_SIZE, encode_integer, encode_string, valid_authority,
};

pub(super) const SOCKET: &[u8] = b"/etc/kubernetes/secrets-store-csi-providers/azure.sock";

pub(super) fn frame(frame_type: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame_header(payload.len(), frame_type, flags, stream_id, &mut out);
    out.extend_from_slice(payload);
    out
}

pub(super) fn request(authority: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
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

pub(super) fn encode(
    encoder: &mut loona_hpack::Encoder<'_>,
    headers: &[(Vec<u8>, Vec<u8>)],
) -> Vec<u8> {
    encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
}

/// Parsed output frames: (type, flags, stream, payload).
pub(super) fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    bytes = bytes.strip_prefix(PREFACE).unwrap_or(bytes);
    let mut out = Vec::new();
    while bytes.len() >= 9 {
        let len =
            (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        out.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    assert!(bytes.is_empty(), "trailing bytes");
    out
}

/// Header blocks of the output, decoded by a fresh, independent decoder (as h2 would).
pub(super) fn decoded_blocks(output: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
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
        assert!(fragment.len() <= MAX_FRAME_SIZE);
        current.extend_from_slice(&fragment);
        if flags & END_HEADERS != 0 {
            blocks.push(decoder.decode(&current).unwrap());
            current.clear();
        }
    }
    blocks
}

pub(super) fn run(input: &[u8]) -> (Vec<u8>, Rewriter) {
    let mut rewriter = Rewriter::default();
    let mut out = Vec::new();
    let consumed = rewriter.process(input, &mut out).unwrap();
    assert_eq!(consumed, input.len());
    (out, rewriter)
}

/// A literal header without indexing, new name, no Huffman coding.
pub(super) fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    encode_string(name, &mut out);
    encode_string(value, &mut out);
    out
}

/// A header block of exactly `len` bytes (at least 4): one literal `x: aaa…`.
pub(super) fn literal_of_len(len: usize) -> Vec<u8> {
    (0..len)
        .rev()
        .map(|value_len| literal(b"x", &vec![b'a'; value_len]))
        .find(|block| block.len() == len)
        .expect("some value length encodes to len")
}

/// `4 * groups` newlines, Huffman-coded: 30 bits each (RFC 7541 Appendix B), the densest way to
/// spend block bytes on a small decoded size.
pub(super) fn huffman_newlines(groups: usize) -> Vec<u8> {
    let group = (0..4).fold(0u128, |bits, _| (bits << 30) | 0x3fff_fffc);
    let bytes = group.to_be_bytes();
    bytes[1..].repeat(groups)
}

/// The RFC 7541 §4.1 size of a header list, as `h2` counts it against its limit.
pub(super) fn list_size(headers: &[(Vec<u8>, Vec<u8>)]) -> usize {
    headers.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
}
