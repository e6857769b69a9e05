//! The listing of a Mount's files that `mount` and `demo` print: path, mode, size, object id and
//! version, as a tree in the order the driver writes them. Sizes only, never contents.

use std::fmt::Write as _;

use crate::proto::MountResponse;

/// The files of a response, one line each, indented by directory depth.
pub fn files(response: &MountResponse) -> String {
    let mut out = String::new();
    let width = response
        .files
        .iter()
        .map(|f| display_name(&f.path).chars().count())
        .max()
        .unwrap_or(0);
    // Ids of other vaults and JSON keys (`secret/db@kv-b`, `secret/db#user`) run longer than 28.
    let ids = response
        .object_version
        .iter()
        .map(|v| v.id.chars().count())
        .max()
        .unwrap_or(0)
        .max(28);
    let _ = writeln!(
        out,
        "{:width$}  {:>4}  {:>6}  {:<ids$} version",
        "file",
        "mode",
        "bytes",
        "object",
        width = width
    );
    let mut shown_dirs: Vec<String> = Vec::new();
    for (file, version) in response.files.iter().zip(&response.object_version) {
        // Directories once, before their first file.
        let parts: Vec<&str> = file.path.split('/').collect();
        for depth in 0..parts.len().saturating_sub(1) {
            let dir = parts[..=depth].join("/");
            if !shown_dirs.contains(&dir) {
                let _ = writeln!(out, "{}{}/", "  ".repeat(depth), parts[depth]);
                shown_dirs.push(dir);
            }
        }
        let _ = writeln!(
            out,
            "{:width$}  {:04o}  {:>6}  {:<ids$} {}",
            display_name(&file.path),
            file.mode,
            file.contents.len(),
            version.id,
            version.version,
            width = width
        );
    }
    out
}

fn display_name(path: &str) -> String {
    let depth = path.matches('/').count();
    let name = path.rsplit('/').next().unwrap_or(path);
    format!("{}{name}", "  ".repeat(depth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{File, ObjectVersion};

    #[test]
    fn a_tree_with_modes_sizes_and_versions() {
        let response = MountResponse {
            files: vec![
                File {
                    path: "db".into(),
                    mode: 0o600,
                    contents: b"secret".to_vec(),
                },
                File {
                    path: "tls/cert.pem".into(),
                    mode: 0o644,
                    contents: vec![0; 1234],
                },
            ],
            object_version: vec![
                ObjectVersion {
                    id: "secret/db".into(),
                    version: "v1".into(),
                },
                ObjectVersion {
                    id: "cert/web".into(),
                    version: "v2".into(),
                },
            ],
            error: None,
        };
        let text = files(&response);
        assert!(
            text.contains("\ndb          0600       6  secret/db "),
            "{text}"
        );
        assert!(
            text.contains("\ntls/\n  cert.pem  0644    1234  cert/web "),
            "{text}"
        );
        assert!(
            !text.contains("secret\n"),
            "contents are never printed: {text}"
        );
    }
}
