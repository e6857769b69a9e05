//! PEM in the exact form the Go provider writes (`-----BEGIN X-----\n`, standard base64 in 64-character
//! lines, `-----END X-----\n`), and a reader with the semantics of Go's `encoding/pem.Decode`.
//!
//! The reader matters for `--write-cert-and-key-in-separate-files`: Go splits a PEM secret by decoding
//! each block and encoding it again, so text between blocks is dropped, CRLF and long lines are
//! normalized, and a block Go cannot decode is skipped. Copying the original text instead would give
//! different files for any PEM that is not already in Go's form.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

/// Go's `base64.StdEncoding` when decoding: padding required, non-zero trailing bits tolerated.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes one PEM block without headers.
pub fn encode(label: &str, der: &[u8]) -> String {
    encode_with_headers(label, &BTreeMap::new(), der)
}

/// Encodes one PEM block as Go's `pem.EncodeToMemory`: `Proc-Type` first, then the other headers
/// sorted by name, then a blank line.
pub fn encode_with_headers(label: &str, headers: &BTreeMap<String, String>, der: &[u8]) -> String {
    const PROC_TYPE: &str = "Proc-Type";
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 32);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    if !headers.is_empty() {
        let proc_type = headers.get_key_value(PROC_TYPE);
        let others = headers.iter().filter(|(k, _)| *k != PROC_TYPE);
        for (k, v) in proc_type.into_iter().chain(others) {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push('\n');
        }
        out.push('\n');
    }
    // Base64 output is ASCII, so every 64-byte chunk is a char boundary.
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// A decoded PEM block.
pub struct Block {
    /// The type after `BEGIN` (`CERTIFICATE`, `PRIVATE KEY`, …).
    pub label: String,
    /// RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`...); a repeated name keeps its last value, as in Go.
    pub headers: BTreeMap<String, String>,
    /// The decoded contents.
    pub der: Zeroizing<Vec<u8>>,
}

impl Block {
    /// The block as Go's `pem.EncodeToMemory` writes it.
    pub fn encode(&self) -> String {
        encode_with_headers(&self.label, &self.headers, &self.der)
    }
}

/// Every block `pem.Decode` would return, called repeatedly on the rest of the input, in order.
pub fn decode_all(input: &[u8]) -> Vec<Block> {
    let mut out = Vec::new();
    let mut rest = input;
    while let Some((block, next)) = decode(rest) {
        out.push(block);
        rest = next;
    }
    out
}

/// One line (without its line break, a trailing `\r`, spaces and tabs) and the text after it.
fn get_line(data: &[u8]) -> (&[u8], &[u8]) {
    let (mut line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    while let Some((last, init)) = line.split_last() {
        if *last == b' ' || *last == b'\t' {
            line = init;
        } else {
            break;
        }
    }
    (line, rest)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim_space(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// Go's `pem.Decode`: the first well-formed block and the input after it.
fn decode(data: &[u8]) -> Option<(Block, &[u8])> {
    const START: &[u8] = b"\n-----BEGIN ";
    const END: &[u8] = b"\n-----END ";
    const DASHES: &[u8] = b"-----";
    let mut rest = data;
    loop {
        // The BEGIN line starts the input or follows a line break.
        rest = if let Some(after) = rest.strip_prefix(&START[1..]) {
            after
        } else {
            let i = find(rest, START)?;
            &rest[i + START.len()..]
        };
        let (type_line, after_type) = get_line(rest);
        rest = after_type;
        let Some(label) = type_line.strip_suffix(DASHES) else {
            continue;
        };
        let mut headers = BTreeMap::new();
        loop {
            if rest.is_empty() {
                return None;
            }
            let (line, next) = get_line(rest);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                break;
            };
            headers.insert(
                String::from_utf8_lossy(trim_space(&line[..colon])).into_owned(),
                String::from_utf8_lossy(trim_space(&line[colon + 1..])).into_owned(),
            );
            rest = next;
        }
        // Without headers the END line may come at once, with no line break before it.
        let (end_index, trailer_index) = if headers.is_empty() && rest.starts_with(&END[1..]) {
            (0, END.len() - 1)
        } else {
            match find(rest, END) {
                Some(i) => (i, i + END.len()),
                None => continue,
            }
        };
        let trailer = &rest[trailer_index..];
        let trailer_len = label.len() + DASHES.len();
        if trailer.len() < trailer_len {
            continue;
        }
        let (end_label, rest_of_end_line) = trailer.split_at(trailer_len);
        if !end_label.starts_with(label) || !end_label.ends_with(DASHES) {
            continue;
        }
        if !get_line(rest_of_end_line).0.is_empty() {
            continue;
        }
        // Go removes spaces and tabs, and its decoder skips CR and LF.
        let body: Zeroizing<Vec<u8>> = Zeroizing::new(
            rest[..end_index]
                .iter()
                .copied()
                .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .collect(),
        );
        let Ok(der) = GO_STD.decode(body.as_slice()) else {
            continue;
        };
        // Go decodes into a string; invalid UTF-8 in a label is replaced, which no real label has.
        let label = String::from_utf8_lossy(label).into_owned();
        let (_, after) = get_line(&rest[end_index + END.len() - 1..]);
        return Some((
            Block {
                label,
                headers,
                der: Zeroizing::new(der),
            },
            after,
        ));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(der in proptest::collection::vec(any::<u8>(), 0..600), label in "[A-Z]{1,12}( [A-Z]{1,8})?") {
            let text = encode(&label, &der);
            let lines: Vec<&str> = text.lines().collect();
            prop_assert_eq!(lines[0], format!("-----BEGIN {label}-----"));
            prop_assert_eq!(*lines.last().unwrap(), format!("-----END {label}-----"));
            let body = &lines[1..lines.len() - 1];
            for (i, line) in body.iter().enumerate() {
                prop_assert!(!line.is_empty() && line.len() <= 64);
                if i + 1 < body.len() {
                    prop_assert_eq!(line.len(), 64);
                }
            }
            prop_assert!(text.ends_with("-----\n"));
            let parsed = decode_all(text.as_bytes());
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(&parsed[0].label, &label);
            prop_assert_eq!(parsed[0].der.as_slice(), der.as_slice());
            prop_assert_eq!(parsed[0].encode(), text);
        }

        /// Whatever the line length, line endings and surrounding text, decoding then encoding gives
        /// the canonical form.
        #[test]
        fn any_layout_normalizes(der in proptest::collection::vec(any::<u8>(), 1..300), width in 1usize..100, crlf: bool, junk in "[a-z :]{0,20}") {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = format!("{junk}\n-----BEGIN X-----{eol}");
            for chunk in b64.as_bytes().chunks(width) {
                text.push_str(std::str::from_utf8(chunk).unwrap());
                text.push_str(eol);
            }
            text.push_str(&format!("-----END X-----{eol}{junk}"));
            let parsed = decode_all(text.as_bytes());
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(parsed[0].encode(), encode("X", &der));
        }

        #[test]
        fn decoding_never_panics(input in proptest::collection::vec(any::<u8>(), 0..400)) {
            for b in decode_all(&input) {
                let _ = b.encode();
            }
        }
    }

    #[test]
    fn go_decode_edge_cases() {
        // Headers are kept and written back Proc-Type first, others sorted.
        let text = b"-----BEGIN RSA PRIVATE KEY-----\nDEK-Info: AES-128-CBC,00\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let blocks = decode_all(text);
        assert_eq!(blocks.len(), 1);
        assert_eq!(
            blocks[0].encode(),
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
        );
        // Mismatched END label, bad base64 and a missing END are skipped; the good block is found.
        let text = b"-----BEGIN A-----\nAAAA\n-----END B-----\n-----BEGIN C-----\n!!!!\n-----END C-----\n-----BEGIN D-----\nAAAA\n-----END D-----\n-----BEGIN E-----\nAAAA\n";
        let labels: Vec<String> = decode_all(text).into_iter().map(|b| b.label).collect();
        assert_eq!(labels, ["D"]);
        // Text on the END line after the dashes makes the block invalid.
        assert!(decode_all(b"-----BEGIN A-----\nAAAA\n-----END A----- x\n").is_empty());
        // BEGIN not at a line start is not a block.
        assert!(decode_all(b"x-----BEGIN A-----\nAAAA\n-----END A-----\n").is_empty());
        // Empty body, and an END right after BEGIN.
        assert_eq!(
            decode_all(b"-----BEGIN A-----\n-----END A-----\n")[0].encode(),
            "-----BEGIN A-----\n-----END A-----\n"
        );
        // Non-zero trailing bits are tolerated like Go's StdEncoding; missing padding is not.
        assert_eq!(
            decode_all(b"-----BEGIN A-----\nAB==\n-----END A-----\n")[0]
                .der
                .as_slice(),
            &[0]
        );
        assert!(decode_all(b"-----BEGIN A-----\nAA\n-----END A-----\n").is_empty());
    }
}
