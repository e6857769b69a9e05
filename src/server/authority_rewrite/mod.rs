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
//! stream before `h2` parses it; server→client bytes go through unchanged (only their frame
//! boundaries are followed, for the GOAWAY below). [`Rewriter`] (in `frames`) follows the HTTP/2
//! framing after the 24-byte client preface, and hands each header block to `hpack`:
//!
//! - Every frame other than HEADERS and CONTINUATION (DATA, SETTINGS, PING, WINDOW_UPDATE,
//!   RST_STREAM, GOAWAY, PRIORITY, PUSH_PROMISE, unknown types) is forwarded byte for byte as it
//!   arrives, without waiting for the whole frame and whatever its length (its limits are `h2`'s
//!   business). On the common path the bytes are read straight into `h2`'s buffer and only the
//!   9-byte frame headers are looked at, so DATA costs no copy and no buffering.
//! - A header block (HEADERS plus its CONTINUATIONs) is collected, decoded with HPACK, its
//!   `:authority` replaced by `localhost` when it is not a valid URI authority (the very check `h2`
//!   makes; valid authorities are kept), then re-encoded and re-split into HEADERS + CONTINUATION
//!   frames of at most 16 KiB: the SETTINGS_MAX_FRAME_SIZE the server advertises, and the smallest
//!   a peer may. END_STREAM and the PRIORITY fields are kept; padding is dropped (it is optional,
//!   and HEADERS do not count against flow control).
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
//! # Limits
//!
//! The driver's header blocks are a few hundred bytes. A hostile client gets no more than `h2`
//! under tonic would give it, checked before anything grows:
//!
//! - A HEADERS or CONTINUATION frame over 16 KiB is refused on its 9-byte frame header, before any
//!   of it is buffered: tonic leaves hyper's and `h2`'s default SETTINGS_MAX_FRAME_SIZE of 16 KiB,
//!   so `h2` would refuse the frame too (FRAME_SIZE_ERROR). If the server's setting is ever
//!   raised, `frames::MAX_FRAME_SIZE` must follow.
//! - A header block over 64 KiB as received (its frames' payloads, padding included) is refused on
//!   the frame header that would take it over: four full frames, and as much as a list within the
//!   next cap needs, since no encoder that uses Huffman only where it saves bytes writes a header
//!   in more bytes than it counts below.
//! - A decoded header list over 64 KiB is refused, counted as RFC 7541 §4.1 sizes table entries
//!   (name + value + 32 per header), as `h2` counts its SETTINGS_MAX_HEADER_LIST_SIZE. The check
//!   runs as each header is decoded and decoding stops at the first header over the cap, so
//!   one-byte references to a 4 KiB dynamic-table entry (16,384 of them fit one frame: 64 MiB)
//!   cost at most 64 KiB of output. 64 KiB is where `h2` itself gives up on the connection
//!   (ENHANCE_YOUR_CALM, at 4 times the 16 KiB list size hyper advertises for tonic): a list
//!   between 16 and 64 KiB still reaches `h2`, which refuses that stream alone, as it would
//!   without this layer.
//! - While rewritten bytes wait for `h2` to read them, no new frame is taken once 16 KiB wait, so
//!   many small blocks that each expand to 64 KiB do not pile up.
//!
//! Worst case per connection, in bytes held at once: the pending header block (64 KiB); input not
//! yet rewritten (a partial frame, 16 KiB + 9, plus one 16 KiB read; or one read of `h2`'s own
//! buffer, which it sizes to fit a 16 KiB frame); output waiting (16 KiB + one re-encoded block,
//! 64 KiB); the client's HPACK table (4 KiB of entries, at most 128, about 16 KiB of heap with
//! their bookkeeping); and, while one header decodes, a Huffman-decoded string (at most 8/5 of the
//! 64 KiB block, 102.4 KiB), or, while a block over 16 KiB is re-split, a copy of it (64 KiB).
//! That is under 300 KiB; buffers that grow by doubling may have up to twice that allocated.
//!
//! # Errors
//!
//! Over a limit, undecodable HPACK, a frame interleaved with a header block or a HEADERS frame too
//! short for its padding are connection errors (RFC 9113 §5.4.1): the read fails with
//! `InvalidData` and `h2` drops the connection, as it does for those protocol errors itself.
//! Nothing garbled is ever forwarded, and nothing here panics on client input (see the fuzz target
//! `fuzz/fuzz_targets/authority.rs`). A client that does not open with the HTTP/2 preface is
//! passed through untouched, for `h2` to refuse.
//!
//! Before failing the read, [`AuthorityFix`] sends a GOAWAY naming the error (FRAME_SIZE_ERROR,
//! ENHANCE_YOUR_CALM, COMPRESSION_ERROR or PROTOCOL_ERROR, with the reason as debug data; last
//! stream: the highest one a header block was re-encoded for, which `h2` may have acted on), so
//! that the client's logs say why. It goes into the server→client stream only where it
//! cannot corrupt a frame of `h2`'s: the writes are followed, counting only the bytes the socket
//! accepted, and the GOAWAY is written only when they end with a whole frame, after the server's
//! SETTINGS (which must come first). `h2` writes nothing more once its read has failed (it resets
//! its streams and returns the error), and [`AuthorityFix`] refuses any later write, so the GOAWAY
//! is the last frame. When the socket took only part of a frame of `h2`'s, no GOAWAY is sent and
//! the connection just closes, which grpc-go handles like any broken connection.
//!
//! # Choice of HPACK crate
//!
//! Decoding uses `loona-hpack` 0.4, the maintained successor of `fluke-hpack` (itself a fork of
//! `hpack`): Huffman, size updates, and a per-header callback that borrows from its table, so a
//! block decodes without allocating per header (Huffman-coded strings aside). The callback cannot
//! stop the decoder, so `hpack` hands it one field representation at a time, to stop at the cap. `hpack` 0.3 is unmaintained and panics on the
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
