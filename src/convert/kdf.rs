//! The PKCS#12 key derivation (RFC 7292, appendix B.2) with SHA-1, the one every Key Vault PFX
//! uses (its MAC key and both bags' keys and IVs: six chains of 2,048 hashes per PFX).
//!
//! Same output as `pkcs12::kdf::derive_key::<Sha1>`, which the tests check; it exists because that
//! generic version finalizes and resets a buffered hasher on every iteration, which the profile of a
//! burst of Mounts with a PFX showed as a third of the time spent in the derivation (BENCHMARKS.md,
//! "CPU per Mount"). Every iteration after the first hashes exactly the previous 20-byte digest, so
//! it is one compression of a single block whose padding never changes: that block is built once
//! and only its first 20 bytes are rewritten.

use sha1::Digest as _;
use zeroize::{Zeroize as _, Zeroizing};

/// SHA-1's block size (`v` in the RFC) and digest size (`u`).
const BLOCK: usize = 64;
const DIGEST: usize = 20;
/// SHA-1's initial state.
const H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// `key_len` bytes of key material of type `id` (1 key, 2 IV, 3 MAC) for `password` (already in
/// the BMPString form the PFX uses) and `salt`, with `rounds` iterations (at least 1).
pub(crate) fn derive_sha1(
    password: &[u8],
    salt: &[u8],
    id: u8,
    rounds: u32,
    key_len: usize,
) -> Zeroizing<Vec<u8>> {
    // I = S || P, each the salt (password) repeated to a whole number of blocks.
    let mut input = Zeroizing::new(Vec::new());
    for part in [salt, password] {
        let len = BLOCK * part.len().div_ceil(BLOCK);
        input.extend(part.iter().cycle().take(len));
    }
    // The block hashed by every iteration after the first: the digest, then the fixed padding
    // of a 20-byte message (0x80, zeros, the length in bits).
    let mut block = Zeroizing::new([0u8; BLOCK]);
    block[DIGEST] = 0x80;
    block[BLOCK - 8..].copy_from_slice(&((DIGEST as u64) * 8).to_be_bytes());
    let mut out = Zeroizing::new(Vec::with_capacity(key_len));
    loop {
        let mut digest = sha1::Sha1::new();
        digest.update([id; BLOCK]);
        digest.update(input.as_slice());
        block[..DIGEST].copy_from_slice(&digest.finalize());
        for _ in 1..rounds {
            let mut state = H0;
            sha1::block_api::compress(&mut state, std::slice::from_ref(&*block));
            for (chunk, word) in block[..DIGEST].chunks_exact_mut(4).zip(state) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            state.zeroize();
        }
        let a = &block[..DIGEST];
        let take = (key_len - out.len()).min(DIGEST);
        out.extend_from_slice(&a[..take]);
        if out.len() == key_len {
            return out;
        }
        // I_j = (I_j + B + 1) mod 2^512 for every block of I, where B is A repeated to a block.
        for chunk in input.chunks_exact_mut(BLOCK) {
            let mut carry = 1u16;
            for k in (0..BLOCK).rev() {
                carry += u16::from(chunk[k]) + u16::from(a[k % DIGEST]);
                chunk[k] = carry as u8;
                carry >>= 8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkcs12::kdf::{Pkcs12KeyType, derive_key};
    use proptest::prelude::*;

    fn generic(password: &[u8], salt: &[u8], id: u8, rounds: u32, len: usize) -> Vec<u8> {
        let id = match id {
            1 => Pkcs12KeyType::EncryptionKey,
            2 => Pkcs12KeyType::Iv,
            _ => Pkcs12KeyType::Mac,
        };
        derive_key::<sha1::Sha1>(password, salt, id, rounds as i32, len)
    }

    #[test]
    fn key_vault_shapes_match_the_generic_derivation() {
        // The empty password in both forms, an 8-byte salt, 2,048 and 1 iterations, and the
        // lengths Key Vault's PFX files need (3DES key, RC2-40 key, IV, SHA-1 MAC key).
        for password in [&[0u8, 0][..], &[]] {
            for rounds in [1, 2, 2048] {
                for (id, len) in [(1, 24), (1, 5), (1, 16), (2, 8), (3, 20)] {
                    let salt = [0x5c, 0xdc, 0x36, 0x20, 0x82, 0xb9, 0x40, 0xcc];
                    assert_eq!(
                        *derive_sha1(password, &salt, id, rounds, len),
                        generic(password, &salt, id, rounds, len),
                        "password {password:?}, {rounds} rounds, id {id}, {len} bytes"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_input_matches_the_generic_derivation(
            password in proptest::collection::vec(any::<u8>(), 0..150),
            salt in proptest::collection::vec(any::<u8>(), 0..150),
            id in 1u8..=3,
            rounds in 1u32..40,
            len in 1usize..100,
        ) {
            prop_assert_eq!(
                derive_sha1(&password, &salt, id, rounds, len).to_vec(),
                generic(&password, &salt, id, rounds, len)
            );
        }
    }
}
