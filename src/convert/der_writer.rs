//! A minimal DER writer for the few structures we emit (SubjectPublicKeyInfo, PKCS#8, ECPrivateKey).
//! Emitting them by hand keeps the exact bytes Go produces in plain sight: definite lengths in the
//! shortest form, INTEGERs minimal and positive, no optional fields we do not mean to write.

/// Universal tags used here.
/// OID content bytes of rsaEncryption (1.2.840.113549.1.1.1).
pub const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// OID content bytes of id-ecPublicKey (1.2.840.10045.2.1).
pub const EC_PUBLIC_KEY_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// Universal tag: INTEGER.
pub const INTEGER: u8 = 0x02;
/// Universal tag: BIT STRING.
pub const BIT_STRING: u8 = 0x03;
/// Universal tag: OCTET STRING.
pub const OCTET_STRING: u8 = 0x04;
/// Universal tag: NULL.
pub const NULL: u8 = 0x05;
/// Universal tag: OBJECT IDENTIFIER.
pub const OID: u8 = 0x06;
/// Universal tag: SEQUENCE (constructed).
pub const SEQUENCE: u8 = 0x30;
/// `[1] EXPLICIT` (ECPrivateKey's publicKey).
pub const CONTEXT_1: u8 = 0xa1;

/// One TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already encoded elements.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// An unsigned big-endian integer as a DER INTEGER: leading zeros stripped, a zero byte added when
/// the high bit is set.
pub fn unsigned_integer(be: &[u8]) -> Vec<u8> {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let digits = &be[skip..];
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    tlv(INTEGER, &content)
}

/// A BIT STRING with no unused bits.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(BIT_STRING, &content)
}

/// An OBJECT IDENTIFIER from its encoded content bytes.
pub fn oid(content: &[u8]) -> Vec<u8> {
    tlv(OID, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(tlv(OCTET_STRING, &[1, 2]), vec![0x04, 2, 1, 2]);
        assert_eq!(&tlv(OCTET_STRING, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(
            &tlv(OCTET_STRING, &[0; 300])[..4],
            &[0x04, 0x82, 0x01, 0x2c]
        );
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(&[0, 0, 1, 0]), vec![0x02, 2, 1, 0]);
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[]), vec![0x02, 1, 0]);
        assert_eq!(unsigned_integer(&[1, 0, 1]), vec![0x02, 3, 1, 0, 1]);
    }
}
