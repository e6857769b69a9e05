//! `Debug` for the contract's messages that carry secret material: a Mount request's attributes
//! hold the pod's service-account tokens and its `secrets` the driver's node-publish secrets (a
//! service principal's client secret), and a response's files hold the mounted objects. A
//! `{:?}` anywhere — a log line, a test failure, a panic message — shows their sizes, never them.

use std::fmt;

use super::{File, MountRequest, MountResponse};

/// Prints as `<N bytes>`.
struct Size(usize);

impl fmt::Debug for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

impl fmt::Debug for MountRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MountRequest")
            .field("attributes", &Size(self.attributes.len()))
            .field("secrets", &Size(self.secrets.len()))
            .field("target_path", &self.target_path)
            .field("permission", &self.permission)
            .field("current_object_version", &self.current_object_version)
            .finish()
    }
}

impl fmt::Debug for MountResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MountResponse")
            .field("object_version", &self.object_version)
            .field("error", &self.error)
            .field("files", &self.files)
            .finish()
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("contents", &Size(self.contents.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ObjectVersion;
    use super::*;

    /// Regression: the generated messages derived `Debug`, so `{:?}` of a Mount request printed
    /// the pod's token and the driver's client secret, and of a response the mounted secrets.
    #[test]
    fn debug_shows_sizes_not_material() {
        let request = MountRequest {
            attributes: r#"{"csi.storage.k8s.io/serviceAccount.tokens":"eyJ-pod-token"}"#.into(),
            secrets: r#"{"clientsecret":"sp-client-secret"}"#.into(),
            target_path: "/var/lib/kubelet/pods/p/volumes/v".into(),
            permission: "420".into(),
            current_object_version: vec![ObjectVersion {
                id: "secret/db".into(),
                version: "v1".into(),
            }],
        };
        let response = MountResponse {
            object_version: Vec::new(),
            error: None,
            files: vec![File {
                path: "db".into(),
                mode: 0o644,
                contents: b"hunter2-value".to_vec(),
            }],
        };
        let text = format!("{request:?} {response:?} {request:#?}");
        for secret in ["eyJ-pod-token", "sp-client-secret", "hunter2-value"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for shown in [
            "/var/lib/kubelet/pods/p/volumes/v",
            "secret/db",
            "<13 bytes>",
            "path: \"db\"",
        ] {
            assert!(text.contains(shown), "{shown} missing from {text}");
        }
    }
}
