//! The provider's Unix socket: a stale socket is removed only if it really is a socket that nobody
//! serves (a live one belongs to another provider, and taking it over would leave that one running
//! unreachable), and the new one is never reachable with wider permissions than 0600, because it is
//! bound inside a private 0700 directory, restricted, and only then renamed into place. The socket's
//! directory is not created: like the Go provider, the daemon expects it to be mounted.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Errors preparing the socket; shown at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Something other than a socket is in the way.
    #[error("{path} exists and is not a socket; refusing to remove it (is --endpoint right?)")]
    NotASocket {
        /// The configured socket path.
        path: PathBuf,
    },
    /// Another process accepts connections on the socket.
    #[error(
        "another provider is serving {path} (it accepts connections); stop it first, or give this \
         one another --endpoint"
    )]
    InUse {
        /// The configured socket path.
        path: PathBuf,
    },
    /// The socket's directory does not exist.
    #[error(
        "the socket's directory {dir} does not exist; the provider does not create it (the Go \
         provider does not either): mount the driver's providers directory there (the DaemonSet's \
         hostPath /var/run/secrets-store-csi-providers at /provider) or fix --endpoint"
    )]
    NoDirectory {
        /// The missing directory.
        dir: PathBuf,
    },
    /// A filesystem step failed.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error (printed above, so not a `source()`).
        error: io::Error,
    },
    /// The path does not fit in a `sockaddr_un`.
    #[error("socket path {path} is {len} bytes long; Unix sockets allow at most 107")]
    TooLong {
        /// The configured socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SocketError + 'a {
    move |error| SocketError::Io {
        action,
        path: path.to_owned(),
        error,
    }
}

/// Binds the listening socket at `path` with mode 0600. Must run inside a Tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    let len = path.as_os_str().len();
    if len > 107 {
        return Err(SocketError::TooLong {
            path: path.to_owned(),
            len,
        });
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A socket file outlives the process that bound it; only one that refuses connections
            // is stale. (A live one's backlog being full makes connect wait, not fail: still live.)
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(SocketError::InUse {
                        path: path.to_owned(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(io_err("connecting to the existing socket", path)(e)),
            }
            fs::remove_file(path).map_err(io_err("removing stale socket", path))?
        }
        Ok(_) => {
            return Err(SocketError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting", path)(e)),
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(SocketError::NoDirectory {
            dir: parent.to_owned(),
        });
    }

    let private = parent.join(format!(".akv-csi-provider-{}.tmp", std::process::id()));
    if fs::symlink_metadata(&private).is_ok() {
        fs::remove_dir_all(&private).map_err(io_err("removing leftover", &private))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_err("creating private directory", &private))?;
    let result = bind_in(&private, path);
    // Best effort: the directory is empty after a successful rename.
    let _ = fs::remove_dir_all(&private);
    result
}

/// Removes the socket at shutdown, if it is still a socket.
pub fn remove(path: &Path) {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
        && let Err(e) = fs::remove_file(path)
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the socket");
    }
}

fn bind_in(private: &Path, path: &Path) -> Result<UnixListener, SocketError> {
    let staged = private.join("s.sock");
    let listener =
        std::os::unix::net::UnixListener::bind(&staged).map_err(io_err("binding", &staged))?;
    fs::set_permissions(&staged, fs::Permissions::from_mode(0o600))
        .map_err(io_err("restricting", &staged))?;
    fs::rename(&staged, path).map_err(io_err("moving socket to", path))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("configuring", path))?;
    UnixListener::from_std(listener).map_err(io_err("registering", path))
}

/// Dials the socket at `path` the way driver v1.6 does: HTTP/2 with `:authority` localhost. The
/// liveness endpoint, `demo`, the tests and the benchmarks all connect through this.
pub async fn connect(path: &Path) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let path = std::sync::Arc::new(path.to_owned());
    // The URI is required by the API but unused: the connector dials the socket.
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path.as_path())
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[tokio::test]
    async fn socket_is_0600_and_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        let first = bind(&path).unwrap();
        drop(first);
        // The file is left behind like after a crash; binding again must replace it.
        let _listener = bind(&path).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "private directory not cleaned up");
    }

    #[tokio::test]
    async fn refuses_to_remove_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        fs::write(&path, b"important").unwrap();
        assert!(matches!(bind(&path), Err(SocketError::NotASocket { .. })));
        assert_eq!(fs::read(&path).unwrap(), b"important");
    }

    /// Regression: a missing directory was created (the Go provider's net.Listen fails instead, and
    /// a socket in a directory the driver does not watch is never used).
    #[tokio::test]
    async fn refuses_a_missing_directory_and_long_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/azure.sock");
        let err = bind(&path).unwrap_err();
        assert!(matches!(err, SocketError::NoDirectory { .. }), "{err}");
        assert!(err.to_string().contains("/a/b does not exist"), "{err}");
        assert!(!dir.path().join("a").exists());
        let long = dir.path().join("x".repeat(120));
        assert!(matches!(bind(&long), Err(SocketError::TooLong { .. })));
    }

    /// Regression: a second daemon silently replaced a live daemon's socket, leaving the first
    /// running and unreachable.
    #[tokio::test]
    async fn never_takes_over_a_live_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        let live = bind(&path).unwrap();
        let ino = fs::symlink_metadata(&path).unwrap().ino();
        let err = bind(&path).unwrap_err();
        assert!(matches!(err, SocketError::InUse { .. }), "{err}");
        assert!(
            err.to_string().contains("another provider is serving"),
            "{err}"
        );
        assert_eq!(fs::symlink_metadata(&path).unwrap().ino(), ino, "replaced");
        // Once the first is gone its socket is stale, and is replaced.
        drop(live);
        let _new = bind(&path).unwrap();
        std::os::unix::net::UnixStream::connect(&path).expect("the new socket is live");
    }
}
