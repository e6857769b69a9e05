//! Driver v1.5 (grpc-go dialing the socket path) sends the socket path as `:authority`. A raw HTTP/2
//! client built from frames, like grpc-go's on the wire, gets real answers on the same socket that
//! serves tonic clients with `localhost`.

use std::time::Duration;

use akv_csi_provider::proto::{MountRequest, VersionRequest, VersionResponse};
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::support::harness::*;
use akv_csi_provider::cli::grpc_v15::frame;

const SOCKET_AUTHORITY: &[u8] = b"/etc/kubernetes/secrets-store-csi-providers/azure.sock";

fn literal(out: &mut Vec<u8>, first: u8, value: &[u8]) {
    out.push(first);
    assert!(value.len() < 127);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

/// A request header block as grpc-go writes it. `authority_indexed`: refer to dynamic entry 62
/// (added by the first request's literal-with-incremental-indexing) instead of sending the value.
fn grpc_headers(path: &str, authority_indexed: bool) -> Vec<u8> {
    let mut b = vec![0x83, 0x86]; // :method POST, :scheme http
    literal(&mut b, 0x04, path.as_bytes()); // :path, literal without indexing
    if authority_indexed {
        b.push(0xbe);
    } else {
        literal(&mut b, 0x41, SOCKET_AUTHORITY); // :authority, literal with incremental indexing
    }
    // content-type: static index 31 does not fit the 4-bit prefix: 15, then 31 - 15.
    b.push(0x0f);
    literal(&mut b, 0x10, b"application/grpc");
    // te: trailers, a new name, literal without indexing.
    b.extend_from_slice(&[0x00, 2, b't', b'e']);
    b.push(8);
    b.extend_from_slice(b"trailers");
    b
}

type Headers = Vec<(Vec<u8>, Vec<u8>)>;
/// One stream's answer: its headers (and trailers) and its DATA bytes.
type Answer = (Headers, Vec<u8>);

fn grpc_message(msg: &impl prost::Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads frames until `streams` have all ended; returns per stream (headers, data).
async fn responses(
    conn: &mut UnixStream,
    streams: &[u32],
) -> Vec<(Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>)> {
    let mut decoder = loona_hpack::Decoder::new();
    let mut results: Vec<Answer> = vec![(Vec::new(), Vec::new()); streams.len()];
    let mut open: Vec<u32> = streams.to_vec();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !open.is_empty() {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (ty, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            assert_ne!(
                ty, 0x3,
                "stream {stream} was reset: the authority was refused"
            );
            assert_ne!(ty, 0x7, "connection closed with GOAWAY");
            if ty == 0x4 && flags & 1 == 0 {
                conn.write_all(&frame(0x4, 1, 0, &[])).await.unwrap();
            }
            let Some(i) = streams.iter().position(|s| *s == stream) else {
                continue;
            };
            match ty {
                0x1 => {
                    assert_ne!(flags & 0x4, 0, "test expects whole header blocks");
                    let headers = decoder.decode(&payload).expect("server HPACK");
                    results[i].0.extend(headers);
                }
                0x0 => results[i].1.extend_from_slice(&payload),
                _ => {}
            }
            if flags & 0x1 != 0 {
                open.retain(|s| *s != stream);
            }
        }
        if open.is_empty() {
            break;
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, conn.read(&mut chunk))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "connection closed before the answers");
        buf.extend_from_slice(&chunk[..n]);
    }
    results
}

fn header<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| std::str::from_utf8(v).unwrap())
}

#[tokio::test]
async fn socket_path_authority_gets_version_and_mount_answered() {
    let emu = emulator().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let mut conn = UnixStream::connect(&provider.socket).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(
        0x1,
        0x4,
        1,
        &grpc_headers("/v1alpha1.CSIDriverProvider/Version", false),
    ));
    out.extend(frame(
        0x0,
        0x1,
        1,
        &grpc_message(&VersionRequest {
            version: "v1alpha1".into(),
        }),
    ));
    // A v1.5 rotation Mount on the same connection, its authority by dynamic-table reference.
    let mount = MountRequest {
        attributes: r#"{"keyvaultName":"kv-main"}"#.into(),
        secrets: "{}".into(),
        target_path: "/var/lib/kubelet/pods/x".into(),
        permission: "420".into(),
        current_object_version: Vec::new(),
    };
    out.extend(frame(
        0x1,
        0x4,
        3,
        &grpc_headers("/v1alpha1.CSIDriverProvider/Mount", true),
    ));
    out.extend(frame(0x0, 0x1, 3, &grpc_message(&mount)));
    conn.write_all(&out).await.unwrap();

    let results = responses(&mut conn, &[1, 3]).await;
    let (version_headers, version_data) = &results[0];
    assert_eq!(header(version_headers, ":status"), Some("200"));
    assert_eq!(header(version_headers, "grpc-status"), Some("0"));
    let version = VersionResponse::decode(&version_data[5..]).expect("VersionResponse");
    assert_eq!(version.runtime_name, "akv-csi-provider");
    assert_eq!(version.version, "v1alpha1");

    let (mount_headers, _) = &results[1];
    assert_eq!(
        header(mount_headers, "grpc-status"),
        Some("3"),
        "INVALID_ARGUMENT, a real answer"
    );
    assert!(header(mount_headers, "grpc-message").is_some_and(|m| m.contains("tenantID")));

    // A v1.6-style tonic client on the same socket still works.
    assert_eq!(provider.version().await, "akv-csi-provider");
    // The v1.5 connection is counted once (two requests on it); the v1.6 one is not.
    let metrics = provider.metrics().await;
    assert!(
        metrics.contains("akv_authority_rewritten_connections_total 1\n"),
        "{metrics}"
    );
}
