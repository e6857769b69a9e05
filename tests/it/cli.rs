//! The `check` and `mount` subcommands, run as the binary a user runs: `mount` against the emulator
//! (reached through `--resolve`, its CA trusted through `SSL_CERT_FILE` as an operator would), for a
//! success and each class of failure; `check` on files with their exit status.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

use crate::support::harness::*;

const SPC: &str = "\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app-secrets
  namespace: app
spec:
  provider: azure
  parameters:
    keyvaultName: kv-main
    tenantID: 33333333-3333-3333-3333-333333333333
    clientID: 8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e
    objects: |
      array:
        - |
          objectName: db-password
          objectType: secret
          filePermission: \"0600\"
";

struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new(emu: &akv_emulator::Emulator, spc: &str, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), emu.ca_pem()).unwrap();
        std::fs::write(dir.path().join("spc.yaml"), spc).unwrap();
        std::fs::write(dir.path().join("token"), token).unwrap();
        Self { dir }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }

    fn mount(&self, emu: &akv_emulator::Emulator, extra: &[&str]) -> Output {
        self.mount_as(emu, "web", extra)
    }

    fn mount_as(&self, emu: &akv_emulator::Emulator, sa: &str, extra: &[&str]) -> Output {
        let addr = emu.addr();
        std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
            .arg("mount")
            .arg("-f")
            .arg(self.path("spc.yaml"))
            .args([
                "--namespace",
                "app",
                "--service-account",
                sa,
                "--token-file",
            ])
            .arg(self.path("token"))
            .arg(format!("--resolve=login.microsoftonline.com={addr}"))
            .arg(format!("--resolve=kv-main.vault.azure.net={addr}"))
            .arg(format!("--resolve=kv-other.vault.azure.net={addr}"))
            .args(extra)
            .env("SSL_CERT_FILE", self.path("ca.pem"))
            .env_remove("SSL_CERT_DIR")
            .output()
            .expect("run mount")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn seeded() -> akv_emulator::Emulator {
    let emu = federated_emulator().await;
    emu.vault(VAULT).put_secret(
        "db-password",
        plain_secret("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "s3cr3t", 1_700_000_000),
    );
    emu
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_writes_the_files_with_their_modes() {
    let emu = seeded().await;
    let w = Workdir::new(&emu, SPC, &Pod::default().token(WI_AUDIENCE));
    let out = w.path("out");
    let o = w.mount(&emu, &["--out", out.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(out.join("db-password")).unwrap(), b"s3cr3t");
    assert_eq!(mode(&out.join("db-password")), 0o600);
    let text = stdout(&o);
    assert!(
        text.contains("secret/db-password") && text.contains("0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
        "{text}"
    );
    assert!(
        !text.contains("s3cr3t"),
        "contents are never printed: {text}"
    );
    // A dry run fetches but writes nothing.
    let dry = w.path("dry");
    let o = w.mount(&emu, &["--dry-run", "--out", dry.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("dry run"));
    assert!(!dry.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_failures_print_what_the_pod_would_get() {
    let emu = seeded().await;
    let other_pod = Pod {
        service_account: "batch".into(),
        ..Pod::default()
    };
    let cases: Vec<(&str, String, Pod, &[&str])> = vec![
        (
            "no federated credential",
            SPC.to_owned(),
            other_pod,
            &[
                "code = Unauthenticated",
                "AADSTS70021",
                "az identity federated-credential create",
            ],
        ),
        (
            "no role on the vault",
            SPC.replace("kv-main", "kv-other"),
            Pod::default(),
            &[
                "code = PermissionDenied",
                "ForbiddenByRbac",
                "Key Vault Secrets User",
            ],
        ),
        // What the emulator's printed flags give for a misspelled vault: Azure's own answer, a
        // name that does not resolve (it used to be the emulator's 403 ForbiddenByRbac).
        (
            "no such vault",
            SPC.replace("kv-main", "kv-mian"),
            Pod::default(),
            &[
                "code = NotFound",
                "DNS lookup of kv-mian.vault.azure.net failed",
                "does not exist or its name is misspelled",
            ],
        ),
        (
            "no such object",
            SPC.replace("objectName: db-password", "objectName: missing"),
            Pod::default(),
            &["code = NotFound", "\"missing\"", "SecretNotFound"],
        ),
        (
            "invalid SecretProviderClass",
            SPC.replace("objectType: secret", "objectType: secrets"),
            Pod::default(),
            &[
                "code = InvalidArgument",
                "objects.array[0] (db-password): objectType \"secrets\"",
            ],
        ),
    ];
    for (name, spc, pod, wanted) in cases {
        let w = Workdir::new(&emu, &spc, &pod.token(WI_AUDIENCE));
        let out = w.path("out");
        let o = w.mount_as(
            &emu,
            &pod.service_account,
            &["--out", out.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        let text = stdout(&o);
        assert!(text.contains("the pod would get"), "{name}: {text}");
        for w in wanted {
            assert!(text.contains(w), "{name}: {w:?} missing from {text}");
        }
        assert!(!out.exists(), "{name}: nothing written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_with_a_service_principal() {
    let emu = seeded().await;
    emu.entra()
        .add_client_secret(TENANT, "11111111-2222-3333-4444-555555555555", "right");
    emu.vault(VAULT)
        .grant("11111111-2222-3333-4444-555555555555");
    let spc = SPC.replace("    clientID: 8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e\n", "");
    for (secret, ok) in [("right", true), ("Wr0ng-S3cret-xyz", false)] {
        let w = Workdir::new(&emu, &spc, "");
        std::fs::write(w.path("secret"), secret).unwrap();
        let out = w.path("out");
        let o = w.mount(
            &emu,
            &[
                "--client-id",
                "11111111-2222-3333-4444-555555555555",
                "--client-secret-file",
                w.path("secret").to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.success(), ok, "{}", stdout(&o));
        if !ok {
            assert!(stdout(&o).contains("AADSTS7000215"), "{}", stdout(&o));
            assert!(
                !stdout(&o).contains("Wr0ng-S3cret"),
                "the secret is never echoed"
            );
        }
    }
}

#[test]
fn check_exit_status_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&good, SPC).unwrap();
    std::fs::write(&bad, SPC.replace("\"0600\"", "\"0999\"")).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
            .arg("check")
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&[good.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = run(&[good.as_os_str(), bad.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(
        text.contains(&format!("{}:17: app/app-secrets: error: objects.array[0] (db-password): filePermission \"0999\"", bad.display())),
        "{text}"
    );
    let o = run(&["--format".as_ref(), "json".as_ref(), bad.as_os_str()]);
    let findings: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["severity"] == "error" && f["line"] == 17)
    );
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["--bogus".as_ref()]).status.code(), Some(2));
}

/// `SPC` with these `objects` entries (each a block of `key: value` lines) instead of its one object.
fn spc_with_objects(objects: &[&str]) -> String {
    let mut array = String::new();
    for o in objects {
        array.push_str("        - |\n");
        for line in o.lines() {
            array.push_str(&format!("          {line}\n"));
        }
    }
    let start = SPC.find("        - |\n").unwrap();
    format!("{}{array}", &SPC[..start])
}

/// 1-based line of the `nth` (0-based) line of `text` that is `needle` once trimmed.
fn line_of(text: &str, needle: &str, nth: usize) -> u64 {
    let (i, _) = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} not in\n{text}"));
    i as u64 + 1
}

fn run_check(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .arg("check")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// The error lines of a `check` run: (line, message).
/// `check` on `text` (written to a file), which must find errors (exit status 1): its output and its
/// error lines.
fn check_errors(text: &str) -> (Output, Vec<(u64, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spc.yaml");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let o = run_check(&[file], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let errors = error_lines(&o, file);
    (o, errors)
}

fn error_lines(o: &Output, file: &str) -> Vec<(u64, String)> {
    stdout(o)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{file}:"))?;
            let (line, rest) = rest.split_once(": ")?;
            let message = rest.strip_prefix("app/app-secrets: error: ")?;
            Some((line.parse().unwrap(), message.to_owned()))
        })
        .collect()
}

/// A path collision is reported once, at the line of the object that collides with an earlier one
/// (its objectAlias, or its objectName when the path comes from the name): that is the one to change.
#[test]
fn check_reports_path_collisions_at_the_second_object() {
    struct Case {
        name: &'static str,
        objects: &'static [&'static str],
        split: bool,
        message: &'static str,
        /// The line expected: the `nth` line equal to this.
        at: (&'static str, usize),
    }
    let cases = [
        Case {
            name: "alias vs alias",
            objects: &[
                "objectName: db-password\nobjectType: secret\nobjectAlias: shared",
                "objectName: api-key\nobjectType: secret",
                "objectName: db-user\nobjectType: secret\nobjectAlias: shared",
            ],
            split: false,
            message: "objects.array[0] (db-password) and objects.array[2] (db-user) both write the file \"shared\"",
            at: ("objectAlias: shared", 1),
        },
        Case {
            name: "alias vs another object's name",
            objects: &[
                "objectName: db-password\nobjectType: secret",
                "objectType: secret\nobjectName: db-user\nobjectAlias: db-password",
            ],
            split: false,
            message: "both write the file \"db-password\"",
            at: ("objectAlias: db-password", 0),
        },
        Case {
            name: "history directory, then a file of that name",
            objects: &[
                "objectName: api\nobjectType: secret\nobjectVersionHistory: 3",
                "objectName: db-password\nobjectType: secret\nobjectAlias: api",
            ],
            split: false,
            message: "objects.array[1] (db-password) writes the file \"api\" but objects.array[0] (api) writes \"api/0\" inside a directory of that name",
            at: ("objectAlias: api", 0),
        },
        Case {
            name: "a file, then a history directory of that name",
            objects: &[
                "objectName: db-password\nobjectType: secret\nobjectAlias: api",
                "objectType: secret\nobjectName: api\nobjectVersionHistory: 3",
            ],
            split: false,
            message: "objects.array[0] (db-password) writes the file \"api\" but objects.array[1] (api) writes \"api/0\" inside a directory",
            at: ("objectName: api", 0),
        },
        Case {
            name: "history version file vs an alias",
            objects: &[
                "objectName: api\nobjectType: secret\nobjectVersionHistory: 3",
                "objectName: db-password\nobjectType: secret\nobjectAlias: api/1",
            ],
            split: false,
            message: "objects.array[0] (api) and objects.array[1] (db-password) both write the file \"api/1\"",
            at: ("objectAlias: api/1", 0),
        },
        Case {
            name: "split .crt, then an alias",
            objects: &[
                "objectName: tls\nobjectType: secret",
                "objectName: ca\nobjectType: cert\nobjectAlias: tls.crt",
            ],
            split: true,
            message: "objects.array[0] (tls) and objects.array[1] (ca) both write the file \"tls.crt\"",
            at: ("objectAlias: tls.crt", 0),
        },
        Case {
            name: "an alias, then split .key",
            objects: &[
                "objectName: ca\nobjectType: cert\nobjectAlias: tls.key",
                "objectType: secret\nobjectName: tls",
            ],
            split: true,
            message: "objects.array[0] (ca) and objects.array[1] (tls) both write the file \"tls.key\"",
            at: ("objectName: tls", 0),
        },
        Case {
            name: "an alias, then a jmesPath item's alias",
            objects: &[
                "objectName: db-password\nobjectType: secret\nobjectAlias: shared",
                "objectName: db-credentials\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: db-user\n  - path: password\n    objectAlias: shared",
            ],
            split: false,
            message: "objects.array[0] (db-password) and objects.array[1] (db-credentials) both write the file \"shared\"",
            at: ("objectAlias: shared", 1),
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    for case in cases {
        let text = spc_with_objects(case.objects);
        let file = dir.path().join("spc.yaml");
        std::fs::write(&file, &text).unwrap();
        let file = file.to_str().unwrap();
        let mut args = vec![file];
        if case.split {
            args.push("--write-cert-and-key-in-separate-files");
        }
        let o = run_check(&args, None);
        let name = case.name;
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        let errors = error_lines(&o, file);
        assert_eq!(errors.len(), 1, "{name}: {}", stdout(&o));
        let (line, message) = &errors[0];
        assert!(message.contains(case.message), "{name}: {message}");
        let expected = line_of(&text, case.at.0, case.at.1);
        assert_eq!(*line, expected, "{name}: {message}\n{text}");
        if !case.split {
            continue;
        }
        // Without the daemon's split-files flag the same objects do not collide.
        let o = run_check(&[file], None);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stdout(&o));
    }
}

/// Regression: a jmesPath item's finding was placed at the `jmesPath:` line of its entry. Each is at
/// the item's key it is about (or the item's first line when that key is missing); a finding about
/// the list as a whole stays at `jmesPath:`.
#[test]
fn check_places_a_jmespath_items_finding_at_the_item() {
    let text = spc_with_objects(&[
        "objectName: db-credentials\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: db-user\n  - path: connection-string\n    objectAlias: db-url",
        "objectName: api\nobjectType: secret\njmesPath:\n  - path: token\n    filePermission: \"0600\"",
        "objectName: empty\nobjectType: secret\njmesPath: []",
        "objectName: signing\nobjectType: key\njmesPath:\n  - path: kid\n    objectAlias: kid",
    ]);
    let (o, errors) = check_errors(&text);
    let expected = [
        (
            line_of(&text, "- path: connection-string", 0),
            "objects.array[0] (db-credentials): jmesPath[1]: path \"connection-string\" is not a JMESPath expression",
        ),
        (
            line_of(&text, "- path: token", 0),
            "objects.array[1] (api): jmesPath[0]: objectAlias is required",
        ),
        (
            line_of(&text, "jmesPath: []", 0),
            "objects.array[2] (empty): jmesPath is empty",
        ),
        (
            line_of(&text, "jmesPath:", 2),
            "objects.array[3] (signing): jmesPath is only valid with objectType: secret",
        ),
    ];
    assert_eq!(errors.len(), expected.len(), "{}", stdout(&o));
    for ((line, message), (want_line, want)) in errors.iter().zip(expected) {
        assert!(message.starts_with(want), "{message}\n{}", stdout(&o));
        assert_eq!(*line, want_line, "{message}\n{text}");
    }
}

/// Names the kubelet cannot write, or that only look like safe names, are reported at their line,
/// with the character's code point, even after a broken entry.
#[test]
fn check_reports_suspicious_characters_at_their_line() {
    let text = spc_with_objects(&[
        "objectName: db-password\nobjectType: secret",
        "objectName: tls\nobjectType: secret\nobjectAlias: \"tls\u{2215}key.pem\"",
    ]);
    let (o, errors) = check_errors(&text);
    assert_eq!(errors.len(), 1, "{}", stdout(&o));
    let (line, message) = &errors[0];
    assert!(
        message.contains("U+2215 (a look-alike of '/')"),
        "{message}"
    );
    let expected = line_of(&text, "objectAlias: \"tls\u{2215}key.pem\"", 0);
    assert_eq!(*line, expected, "{message}\n{text}");
}

#[test]
fn check_reads_the_manifest_from_standard_input() {
    // What `helm template … | akv-csi-provider check -` does.
    let o = run_check(&["-"], Some(SPC));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("checked 1 SecretProviderClass(es) with provider azure: 0 error(s)"),
        "{}",
        stdout(&o)
    );
    let bad = SPC.replace("\"0600\"", "\"0999\"");
    let o = run_check(&["-"], Some(&bad));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(
            "-:17: app/app-secrets: error: objects.array[0] (db-password): filePermission \"0999\""
        ),
        "{}",
        stdout(&o)
    );
    let o = run_check(&["--format=json", "-"], Some(&bad));
    let findings: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["file"] == "-" && f["line"] == 17 && f["severity"] == "error"),
        "{findings}"
    );
    // Empty input holds no class: a CI gate must not pass having checked nothing.
    let o = run_check(&["-"], Some(""));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("checked 0 SecretProviderClass(es)"),
        "{}",
        stdout(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nothing was checked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Regression: `check` exited 0 after checking nothing (`provider: Azure`, `kind:
/// SecretProviderClas`): a CI gate passed on a typo. Now exit 1 naming each skipped document and
/// the near miss.
#[test]
fn check_fails_when_it_checks_nothing_and_names_the_near_misses() {
    let cases = [
        (
            SPC.replace("provider: azure", "provider: Azure"),
            "provider \"Azure\" is not azure (provider names are case-sensitive)",
        ),
        (
            SPC.replace("kind: SecretProviderClass", "kind: SecretProviderClas"),
            "kind \"SecretProviderClas\" is not SecretProviderClass",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".to_owned(),
            "kind \"ConfigMap\", not a SecretProviderClass",
        ),
    ];
    for (text, why) in cases {
        let o = run_check(&["-"], Some(&text));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{why}: {stderr}");
        assert!(stderr.contains("nothing was checked"), "{stderr}");
        assert!(stderr.contains(&format!("skipped -:1: {why}")), "{stderr}");
    }
}

/// One parser for the subcommands: `--help` on standard output, an unknown value answered with the
/// accepted ones (not `Some("xml")`), a mistyped subcommand with the nearest one (it used to start
/// the daemon on the default socket and ports), and a stray argument to the daemon refused (it
/// used to end flag parsing silently).
#[test]
fn the_command_line_never_surprises() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for sub in ["check", "mount", "demo", "emulator"] {
        let o = run(&[sub, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{sub}");
        assert!(
            stdout(&o).contains("Usage: akv-csi-provider"),
            "{sub}: {}",
            stdout(&o)
        );
    }
    let o = run(&["check", "--format", "xml", "spc.yaml"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[possible values: text, json]"), "{stderr}");
    assert!(!stderr.contains("Some("), "{stderr}");

    let o = run(&["chek", "spc.yaml"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unrecognized subcommand 'chek'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("similar subcommand exists: 'check'"),
        "{stderr}"
    );

    let o = run(&["--healthz-port=0", "stray", "--prometheus-port=0"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unexpected argument \"stray\""), "{stderr}");
}

/// A finding's YAML snippet keeps its lines, indented under the finding (not flattened onto one).
#[test]
fn check_keeps_a_snippet_on_its_own_lines() {
    let text = SPC.replace("      array:\n", "      array: [\n");
    let o = run_check(&["-"], Some(&text));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("expected the form\n    objects: |\n      array:\n"),
        "{out}"
    );
}

/// Regression: `mount -f bad.yaml` said only "no SecretProviderClass with provider azure" for a
/// file that is not valid YAML; it now says where the YAML breaks.
#[test]
fn mount_says_where_the_yaml_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spc.yaml");
    std::fs::write(
        &file,
        "kind: SecretProviderClass\nspec:\n  provider: azure\n  parameters: [\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .args(["mount", "--dry-run", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("skipped {}:", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("not valid YAML"), "{stderr}");
}

/// `akv-csi-provider emulator` seeded from `seed`, its CA written to `ca`; what it prints (addresses,
/// flags, tokens) is read from the returned standard error.
fn spawn_emulator(
    seed: &str,
    listen: &str,
    ca: &Path,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .args([
            "emulator",
            "--config",
            seed,
            "--listen",
            listen,
            "--ca-file",
        ])
        .arg(ca)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    (child, stderr)
}

/// `emulator --listen ADDR:0`: every service gets a port of its own that the OS chose, and what it
/// prints (the banner, `AZURE_POD_IDENTITY_AUTHORITY_HOST`, the `--resolve` flags) is where it
/// listens: each printed address accepts a connection, and IMDS answers HTTP there.
#[test]
fn emulator_on_port_0_prints_the_ports_it_bound() {
    use std::io::{BufRead as _, Read as _, Write as _};
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/emulator/examples/seed.yaml");
    for listen in ["127.0.0.1:0", ":0"] {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let (mut child, mut stderr) = spawn_emulator(seed, listen, &ca);
        let mut banner = String::new();
        while !banner.contains("[other flags]") {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("{listen}: the emulator stopped before printing its addresses:\n{banner}");
            }
            banner.push_str(&line);
        }
        // Every `scheme://HOST:PORT` and `=HOST:PORT` printed.
        let after = |marker: &str| -> Vec<std::net::SocketAddr> {
            banner
                .match_indices(marker)
                .map(|(i, _)| {
                    let rest = &banner[i + marker.len()..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':'))
                        .unwrap_or(rest.len());
                    rest[..end]
                        .parse()
                        .unwrap_or_else(|e| panic!("{listen}: {:?}: {e}\n{banner}", &rest[..end]))
                })
                .collect()
        };
        let https = after("https://");
        let http = after("http://");
        let mut resolved = after("login.microsoftonline.com=");
        // One override per seeded vault (no wildcard: another vault name must fail in DNS).
        resolved.extend(after(".vault.azure.net="));
        assert!(!banner.contains("*.vault.azure.net"), "{listen}: {banner}");
        assert_eq!(https.len(), 1, "{listen}: {banner}");
        // The banner and AZURE_POD_IDENTITY_AUTHORITY_HOST.
        assert_eq!(http.len(), 2, "{listen}: {banner}");
        assert!(http.iter().all(|a| *a == http[0]), "{listen}: {banner}");
        assert!(resolved.len() >= 2, "{listen}: {banner}");
        assert!(
            resolved.iter().all(|a| *a == https[0]),
            "{listen}: {banner}"
        );
        let (https, imds) = (https[0], http[0]);
        assert!(
            https.port() != 0 && imds.port() != 0 && https.port() != imds.port(),
            "{listen}: {banner}"
        );
        // Neither is a privileged port that only root may bind ("the next port" after 0 is 1).
        assert!(
            https.port() >= 1024 && imds.port() >= 1024,
            "{listen}: {banner}"
        );
        assert!(
            https.ip().is_loopback() && imds.ip().is_loopback(),
            "{listen}: {banner}"
        );
        assert!(
            banner.contains(&format!("CA certificate: {}", ca.display())) && ca.exists(),
            "{listen}: {banner}"
        );
        let connect = |addr| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{listen}: connecting to {addr}: {e}\n{banner}"))
        };
        drop(connect(https));
        let mut conn = connect(imds);
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        conn.write_all(
            b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nHost: imds\r\nMetadata: true\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 "),
            "{listen}: IMDS at {imds}: {answer:?}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// `mount --socket`: the request goes to a running daemon through its socket, as driver v1.6 sends it
/// and as driver v1.5 does (the socket path as `:authority`), and the files are those the daemon
/// returned; daemon flags are refused, since they would not reach that daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_through_a_running_daemons_socket() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let w = Workdir::new(&emu, SPC, &Pod::default().token(WI_AUDIENCE));
    for driver in ["v1.6", "v1.5"] {
        let out = w.path(&format!("out-{driver}"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
            .arg("mount")
            .arg("-f")
            .arg(w.path("spc.yaml"))
            .args(["--service-account", "web", "--token-file"])
            .arg(w.path("token"))
            .arg("--socket")
            .arg(&provider.socket)
            .args(["--driver", driver, "--out"])
            .arg(&out)
            // No SSL_CERT_FILE and no --resolve here: only the daemon talks to the emulator.
            .env_remove("SSL_CERT_FILE")
            .output()
            .expect("run mount --socket");
        assert!(
            o.status.success(),
            "{driver}: {}{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(std::fs::read(out.join("db-password")).unwrap(), b"s3cr3t");
        assert_eq!(mode(&out.join("db-password")), 0o600);
    }
    let metrics = provider.metrics().await;
    assert!(
        metrics.contains("akv_authority_rewritten_connections_total 1"),
        "the v1.5 call reached the daemon with the socket path as :authority: {metrics}"
    );

    let o = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .arg("mount")
        .arg("-f")
        .arg(w.path("spc.yaml"))
        .arg("--dry-run")
        .arg("--socket")
        .arg(&provider.socket)
        .arg("--resolve=kv-main.vault.azure.net=127.0.0.1:1")
        .output()
        .expect("run mount --socket --resolve");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("would not reach the daemon"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    provider.stop().await;
}

/// The shipped example of every added object field (`emulator/examples/spc-additions.yaml` on its
/// seed `additions.yaml`), run as an operator runs it: the standalone emulator, then `mount
/// --dry-run` with the flags, CA and token it printed. The table shows each addition's files and ids.
#[test]
fn the_additions_example_mounts_as_documented() {
    use std::io::BufRead as _;
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let seed = format!("{root}/emulator/examples/additions.yaml");
    let (mut child, mut stderr) = spawn_emulator(&seed, "127.0.0.1:0", &ca);
    let (mut resolve, mut token) = (Vec::new(), None);
    while token.is_none() {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("the emulator stopped before printing a token");
        }
        if line.contains("[other flags]") {
            resolve = line
                .split_whitespace()
                .filter(|w| w.contains(".vault.azure.net=") || w.starts_with("login."))
                .map(|w| format!("--resolve={w}"))
                .collect();
        } else if line.starts_with("eyJ") {
            token = Some(line.trim().to_owned());
        }
    }
    std::fs::write(dir.path().join("token"), token.unwrap()).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .args([
            "mount",
            "--dry-run",
            "--namespace",
            "demo",
            "--service-account",
            "web",
            "-f",
        ])
        .arg(format!("{root}/emulator/examples/spc-additions.yaml"))
        .arg("--token-file")
        .arg(dir.path().join("token"))
        .args(&resolve)
        .env("SSL_CERT_FILE", &ca)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = stdout(&o);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rows: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 5).then(|| (cols[0], cols[3]))
        })
        .collect();
    assert_eq!(
        rows[1..],
        [
            ("db-credentials", "secret/db-credentials"),
            ("db-user", "secret/db-credentials#db-user"),
            ("db-url", "secret/db-credentials#db-url"),
            ("shared-config", "secret/shared-config@kv-shared"),
            ("app1-api-key", "secret/app1-api-key"),
            ("app1-db-password", "secret/app1-db-password"),
            ("web-tls.pfx", "secret/web-tls"),
        ],
        "{text}"
    );
    assert!(text.contains("app1/\n"), "{text}");
    assert!(text.contains("7 file(s) fetched (dry run"), "{text}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("optional object skipped"),
        "the absent optional object is logged"
    );
}
