//! PEM in the exact form the Go provider writes: `-----BEGIN X-----\n`, standard base64 in
//! 64-character lines, `-----END X-----\n`.

use base64::Engine as _;

/// Encodes one PEM block.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 32);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// A PEM block found in text: its label and its exact text (BEGIN line to END line, with the
/// newline after END when present).
pub struct Block<'a> {
    pub label: &'a str,
    pub text: &'a [u8],
}

/// The PEM blocks of `input`, in order; text between blocks is skipped.
pub fn blocks(input: &[u8]) -> Vec<Block<'_>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = find(&input[pos..], BEGIN).map(|i| i + pos) {
        let label_start = start + BEGIN.len();
        let Some(label_end) = find(&input[label_start..], b"-----").map(|i| i + label_start) else {
            break;
        };
        let Ok(label) = std::str::from_utf8(&input[label_start..label_end]) else {
            break;
        };
        let end_marker = format!("-----END {label}-----");
        let Some(end) = find(&input[label_end..], end_marker.as_bytes()).map(|i| i + label_end)
        else {
            break;
        };
        let mut stop = end + end_marker.len();
        if input.get(stop) == Some(&b'\n') {
            stop += 1;
        }
        out.push(Block {
            label,
            text: &input[start..stop],
        });
        pos = stop;
    }
    out
}

/// The DER inside a block (its base64 body).
pub fn decode_block(block: &Block<'_>) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(block.text).ok()?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
                prop_assert!(line.len() <= 64);
                if i + 1 < body.len() {
                    prop_assert_eq!(line.len(), 64);
                }
            }
            prop_assert!(text.ends_with("-----\n"));
            let parsed = blocks(text.as_bytes());
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(parsed[0].label, label.as_str());
            prop_assert_eq!(decode_block(&parsed[0]).unwrap(), der);
        }

        #[test]
        fn blocks_never_panic(input in proptest::collection::vec(any::<u8>(), 0..400)) {
            for b in blocks(&input) {
                let _ = decode_block(&b);
            }
        }
    }
}
