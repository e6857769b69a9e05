//! Generates the v1alpha1 provider service from `proto/` with a pure-Rust protobuf compiler
//! (protox), so building needs no `protoc` on the machine; and records the git commit the binary is
//! built from (`--version`), so that an operator can tell which build runs on a node.

use std::path::Path;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/service.proto");
    let fds = protox::compile(["proto/service.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // These carry the pod's service-account tokens, the driver's secrets and the mounted
        // contents: their `Debug` is written by hand (src/proto/redact.rs) and shows sizes only.
        .skip_debug([
            ".v1alpha1.MountRequest",
            ".v1alpha1.MountResponse",
            ".v1alpha1.File",
        ])
        .compile_fds(fds)?;
    println!("cargo:rustc-env=AKV_GIT_COMMIT={}", git_commit());
    Ok(())
}

/// The commit, with `-dirty` when tracked files differ from it; `GIT_COMMIT` when set (a build
/// without `.git`, such as the Docker build context: `--build-arg GIT_COMMIT=$(git rev-parse HEAD)`);
/// otherwise "unknown". Never fails the build: a version string is not worth a broken build.
fn git_commit() -> String {
    println!("cargo:rerun-if-env-changed=GIT_COMMIT");
    if let Ok(commit) = std::env::var("GIT_COMMIT") {
        let commit = commit.trim();
        // Only what a commit name can contain, so that the JSON and log lines stay plain.
        if !commit.is_empty()
            && commit.len() <= 64
            && commit
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return commit.to_owned();
        }
    }
    from_git().unwrap_or_else(|| "unknown".to_owned())
}

fn git(args: &[&str]) -> Option<String> {
    // No optional locks: `git status` must not rewrite the index, or every build would see it change.
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn from_git() -> Option<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    // Only this repository's own checkout: a copy of the sources inside another checkout (such as
    // deploy/docker_context_check.py's target/docker-context) must not report that checkout's commit.
    let top = git(&["-C", &manifest_dir, "rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != Path::new(&manifest_dir).canonicalize().ok()? {
        return None;
    }
    let commit = git(&["-C", &manifest_dir, "rev-parse", "HEAD"])?;
    // Re-run when HEAD moves (checkout, commit: the branch's ref) and when the sources change (they
    // rebuild the crate anyway). Not on the index: `git status` elsewhere refreshes it, and watching it
    // would rebuild the crate for nothing. Edits outside these paths (tests/, docs) are seen at the next
    // commit or source change. Only files that exist: cargo takes a missing one as always changed.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["-C", &manifest_dir, "symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for what in &watched {
        if let Some(path) = git(&["-C", &manifest_dir, "rev-parse", "--git-path", what]) {
            let path = Path::new(&manifest_dir).join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    for dir in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "proto",
        "emulator/src",
    ] {
        println!("cargo:rerun-if-changed={dir}");
    }
    let status = git(&[
        "-C",
        &manifest_dir,
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])?;
    Some(if status.is_empty() {
        commit
    } else {
        format!("{commit}-dirty")
    })
}
