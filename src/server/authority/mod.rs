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
//! [`AuthorityFix`] (in `io`) wraps each accepted connection and rewrites the client→server byte
//! stream before `h2` parses it; the server→client direction is untouched. [`Rewriter`] (in
//! `frames`) follows the HTTP/2 framing after the 24-byte client preface, and hands each header
//! block to `hpack` for re-encoding:
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
//! [`Rewriter::has_rewritten`] tells whether a connection needed the rewrite, that is, whether its
//! client is a driver that dials the socket path; [`AuthorityFix::with_rewrite_hook`] reports it
//! once per connection, for a metric of how many such drivers are out there.
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

mod frames;
mod hpack;
mod io;
#[cfg(test)]
mod test_support;

pub use frames::Rewriter;
pub use io::{AuthorityFix, RewriteHook};
