//! A gRPC call made the way Secrets Store CSI Driver v1.5 makes it: grpc-go dialing the socket path
//! sends that path as the HTTP/2 `:authority`, which no `http::Uri`-based client (tonic, hyper) can
//! even express. The demo uses this to show that such requests are served, and the `authority`
//! benchmark its frames. It writes the frames itself (preface, SETTINGS, HEADERS with literal fields,
//! one DATA frame) and reads the answer's frames until the stream ends; it is a demonstration client,
//! not a general HTTP/2 implementation. (`tests/it/driver_v15.rs` has its own, independent writer
//! on purpose: the test must not share this module's understanding of the wire.)

use std::time::Duration;

use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;

use crate::proto::{MountRequest, MountResponse};

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame type DATA.
pub const DATA: u8 = 0x0;
/// Frame type HEADERS.
pub const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
/// Flag END_STREAM.
pub const END_STREAM: u8 = 0x1;
/// Flag END_HEADERS.
pub const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// One HTTP/2 frame.
pub fn frame(frame_type: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        frame_type,
        flags,
    ];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK string literal without Huffman coding (lengths here stay far below 127).
fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len().min(126) as u8);
    out.extend_from_slice(&s[..s.len().min(126)]);
}

/// The request header block grpc-go writes for `path`, with `authority` as given.
pub fn headers(path: &str, authority: &str) -> Vec<u8> {
    let mut b = vec![0x83, 0x86]; // :method POST, :scheme http (static table)
    b.push(0x04); // :path, literal without indexing, indexed name 4
    string(&mut b, path.as_bytes());
    b.push(0x41); // :authority, literal with incremental indexing, indexed name 1
    string(&mut b, authority.as_bytes());
    b.extend_from_slice(&[0x0f, 0x10]); // content-type: indexed name 31 (15 + 16)
    string(&mut b, b"application/grpc");
    b.push(0x00); // te: trailers (new name)
    string(&mut b, b"te");
    string(&mut b, b"trailers");
    b.push(0x00); // user-agent (new name)
    string(&mut b, b"user-agent");
    string(&mut b, b"grpc-go/1.60.1");
    b
}

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The socket failed.
    // The message carries the OS error, so it is not also the `source()` (chains would print it twice).
    #[error("provider socket: {0}")]
    Io(std::io::Error),
    /// The server refused the stream or the connection (what a plain tonic server does with a
    /// socket-path `:authority`).
    #[error("the provider reset the request ({0})")]
    Reset(&'static str),
    /// The answer was not a gRPC answer.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// The call ended with a non-OK gRPC status.
    #[error("rpc error: code = {code} desc = {message}")]
    Status {
        /// `grpc-status`.
        code: String,
        /// `grpc-message`, percent-decoded.
        message: String,
    },
}

/// Calls `Mount` over the socket at `socket` with `:authority` set to the socket path.
pub async fn mount(
    socket: &std::path::Path,
    request: &MountRequest,
) -> Result<MountResponse, CallError> {
    let mut conn = UnixStream::connect(socket).await.map_err(CallError::Io)?;
    let authority = socket.display().to_string();
    conn.write_all(&request_bytes(request, &authority))
        .await
        .map_err(CallError::Io)?;
    let answer = read_answer(&mut conn).await?;
    answer.into_response()
}

/// The connection preface, SETTINGS, and the Mount call on stream 1.
fn request_bytes(request: &MountRequest, authority: &str) -> Vec<u8> {
    let body = request.encode_to_vec();
    let mut message = vec![0];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes());
    message.extend_from_slice(&body);
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &headers("/v1alpha1.CSIDriverProvider/Mount", authority),
    ));
    // The default window (65,535 bytes) holds any Mount request we send.
    out.extend(frame(DATA, END_STREAM, 1, &message));
    out
}

/// Stream 1's answer: its header fields (decoded) and its DATA.
#[derive(Default)]
struct Answer {
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    data: Vec<u8>,
}

impl Answer {
    fn field(&self, name: &[u8]) -> Option<String> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    fn into_response(self) -> Result<MountResponse, CallError> {
        let code = self.field(b"grpc-status").unwrap_or_default();
        if code != "0" {
            let message = self.field(b"grpc-message").unwrap_or_default();
            return Err(CallError::Status {
                code,
                message: percent_encoding::percent_decode_str(&message)
                    .decode_utf8_lossy()
                    .into_owned(),
            });
        }
        let body = self
            .data
            .get(5..)
            .ok_or_else(|| CallError::Protocol("no gRPC message in the answer".into()))?;
        MountResponse::decode(body).map_err(|e| CallError::Protocol(format!("MountResponse: {e}")))
    }
}

/// Reads frames until stream 1 ends, answering SETTINGS and PING on the way.
async fn read_answer(conn: &mut UnixStream) -> Result<Answer, CallError> {
    let mut decoder = loona_hpack::Decoder::new();
    let mut answer = Answer::default();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        while let Some((kind, flags, stream, payload)) = next_frame(&mut buf) {
            match kind {
                RST_STREAM => return Err(CallError::Reset("RST_STREAM")),
                GOAWAY => return Err(CallError::Reset("GOAWAY")),
                SETTINGS if flags & ACK == 0 => conn
                    .write_all(&frame(SETTINGS, ACK, 0, &[]))
                    .await
                    .map_err(CallError::Io)?,
                PING if flags & ACK == 0 => conn
                    .write_all(&frame(PING, ACK, 0, &payload))
                    .await
                    .map_err(CallError::Io)?,
                HEADERS if stream == 1 => {
                    if flags & END_HEADERS == 0 {
                        return Err(CallError::Protocol(
                            "a header block in several frames".into(),
                        ));
                    }
                    let decoded = decoder
                        .decode(&payload)
                        .map_err(|e| CallError::Protocol(format!("HPACK: {e:?}")))?;
                    answer.fields.extend(decoded);
                }
                DATA if stream == 1 => answer.data.extend_from_slice(&payload),
                _ => {}
            }
            if stream == 1 && flags & END_STREAM != 0 && matches!(kind, HEADERS | DATA) {
                return Ok(answer);
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout_at(deadline, conn.read(&mut chunk))
            .await
            .map_err(|_| CallError::Protocol("no answer within 120 s".into()))?
            .map_err(CallError::Io)?;
        if n == 0 {
            return Err(CallError::Reset("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The next complete frame in `buf` (type, flags, stream, payload), taken out of it.
fn next_frame(buf: &mut Vec<u8>) -> Option<(u8, u8, u32, Vec<u8>)> {
    if buf.len() < 9 {
        return None;
    }
    let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
    if buf.len() < 9 + len {
        return None;
    }
    let (kind, flags) = (buf[3], buf[4]);
    let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
    let payload: Vec<u8> = buf.drain(..9 + len).skip(9).collect();
    Some((kind, flags, stream, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OS error is in `CallError::Io`'s message and so not also its `source()`: the alternate
    /// form of an anyhow chain (how `main` prints errors) names it once.
    #[tokio::test]
    async fn an_io_failure_names_the_os_error_once_in_a_chain() {
        let dir = tempfile::tempdir().unwrap();
        let err = mount(&dir.path().join("absent.sock"), &MountRequest::default())
            .await
            .unwrap_err();
        let CallError::Io(io) = &err else {
            panic!("expected an I/O failure, got {err:?}");
        };
        let os_text = io.to_string();
        let chain = format!("{:#}", anyhow::Error::new(err).context("mount"));
        assert_eq!(chain, format!("mount: provider socket: {os_text}"));
    }
}
