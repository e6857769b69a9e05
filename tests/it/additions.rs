//! The object fields this provider adds to Azure's (README, "Beyond Azure's provider"), each through
//! the socket against the emulator: `jmesPath`, `keyvaultName` on an object, patterns as
//! `objectName`, `optional`. Each test also pins the object-version rules: every file has an
//! `ObjectVersion`, ids are unique, and a second Mount gives the same ids and versions.

use std::collections::BTreeMap;

use tonic::Code;

use crate::support::harness::*;

const V: &str = "c35fc1a31f9144c2877aa67b6ad4c31a";
const OTHER: &str = "kv-other";

/// `array:` YAML keeping each entry's indentation (the harness's `objects` flattens it, and
/// `jmesPath` is a nested list).
fn entries(items: &[&str]) -> String {
    let mut out = String::from("array:\n");
    for item in items {
        out.push_str("  - |\n");
        for line in item.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// path → (id, version), asserting one version per file and unique ids.
fn versions(
    response: &akv_csi_provider::proto::MountResponse,
) -> BTreeMap<String, (String, String)> {
    assert_eq!(response.files.len(), response.object_version.len());
    let ids: std::collections::BTreeSet<&str> = response
        .object_version
        .iter()
        .map(|v| v.id.as_str())
        .collect();
    assert_eq!(ids.len(), response.object_version.len(), "ids are unique");
    response
        .files
        .iter()
        .zip(&response.object_version)
        .map(|(f, v)| (f.path.clone(), (v.id.clone(), v.version.clone())))
        .collect()
}

fn text(response: &akv_csi_provider::proto::MountResponse, path: &str) -> String {
    String::from_utf8(file(response, path).contents.clone()).expect("UTF-8")
}

const DB: &str =
    r#"{"username":"app","connection-string":"Server=db;Password=p4ss-json","port":5432}"#;

fn put_db_credentials(emu: &Emulator) {
    emu.vault(VAULT)
        .put_secret("db-credentials", plain_secret(V, DB, 1_700_000_000));
}

const JSON_ENTRY: &str = "objectName: db-credentials
objectType: secret
jmesPath:
  - path: username
    objectAlias: db-user
  - path: '\"connection-string\"'
    objectAlias: db-url
    filePermission: \"0600\"";

#[tokio::test]
async fn json_keys_become_files_that_share_the_secrets_version() {
    let emu = federated_emulator().await;
    put_db_credentials(&emu);
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&entries(&[JSON_ENTRY])).build();
    let response = provider.mount(request.clone()).await.expect("Mount");
    // The secret itself is still written, as AWS's provider does.
    assert_eq!(text(&response, "db-credentials"), DB);
    assert_eq!(text(&response, "db-user"), "app");
    assert_eq!(text(&response, "db-url"), "Server=db;Password=p4ss-json");
    assert_eq!(file(&response, "db-url").mode, 0o600);
    assert_eq!(file(&response, "db-user").mode, 0o644);
    let first = versions(&response);
    assert_eq!(
        first["db-user"],
        ("secret/db-credentials#db-user".to_owned(), V.to_owned())
    );
    assert_eq!(
        first["db-url"],
        ("secret/db-credentials#db-url".to_owned(), V.to_owned())
    );
    assert_eq!(
        first["db-credentials"],
        ("secret/db-credentials".to_owned(), V.to_owned())
    );
    // One GET for the secret and its keys.
    assert_eq!(emu.vault(VAULT).gets(), 1);
    let again = provider.mount(request).await.expect("second Mount");
    assert_eq!(versions(&again), first, "stable across Mounts");
}

#[tokio::test]
async fn a_json_key_that_is_not_a_string_fails_naming_the_path_never_the_value() {
    let emu = federated_emulator().await;
    put_db_credentials(&emu);
    emu.vault(VAULT)
        .put_secret("not-json", plain_secret(V, "Password=p4ss-plain", 1));
    let provider = Provider::start(&emu, |_| {}).await;
    let number = "objectName: db-credentials\nobjectType: secret\njmesPath:\n  - path: port\n    objectAlias: port";
    let (_, message) = provider
        .mount_fails(
            MountBuilder::workload(&entries(&[number])).build(),
            Code::FailedPrecondition,
            &[
                "\"db-credentials\" from vault kv-main",
                "\"port\"",
                "a number",
            ],
        )
        .await;
    assert!(
        !message.contains("5432") && !message.contains("p4ss"),
        "{message}"
    );
    let missing = "objectName: db-credentials\nobjectType: secret\njmesPath:\n  - path: password\n    objectAlias: pw";
    provider
        .mount_fails(
            MountBuilder::workload(&entries(&[missing])).build(),
            Code::FailedPrecondition,
            &["\"password\"", "null (no such field)"],
        )
        .await;
    let plain =
        "objectName: not-json\nobjectType: secret\njmesPath:\n  - path: a\n    objectAlias: a";
    let (_, message) = provider
        .mount_fails(
            MountBuilder::workload(&entries(&[plain])).build(),
            Code::FailedPrecondition,
            &["\"not-json\"", "not JSON", "line 1"],
        )
        .await;
    assert!(!message.contains("p4ss"), "{message}");
}

#[tokio::test]
async fn objects_from_another_vault_keep_apart_and_the_class_vault_keeps_azures_ids() {
    let emu = federated_emulator().await;
    emu.vault(VAULT)
        .put_secret("shared", plain_secret(V, "from-main", 1))
        .put_secret("main-too", plain_secret(V, "value-of-main-too", 1));
    emu.vault(OTHER)
        .grant(CLIENT_ID)
        .put_secret("shared", plain_secret(V, "from-other", 1));
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&entries(&[
        "objectName: shared\nobjectType: secret",
        "objectName: shared\nobjectType: secret\nkeyvaultName: kv-other\nobjectAlias: shared-other",
        // Naming the class's own vault changes nothing, not even the id.
        "objectName: main-too\nobjectType: secret\nkeyvaultName: KV-MAIN",
    ]))
    .build();
    let response = provider.mount(request.clone()).await.expect("Mount");
    assert_eq!(text(&response, "shared"), "from-main");
    assert_eq!(text(&response, "shared-other"), "from-other");
    let ids = versions(&response);
    assert_eq!(ids["shared"].0, "secret/shared");
    assert_eq!(ids["shared-other"].0, "secret/shared@kv-other");
    assert_eq!(ids["main-too"].0, "secret/main-too");
    assert_eq!(text(&response, "main-too"), "value-of-main-too");
    assert_eq!(emu.vault(OTHER).gets(), 1);
    assert_eq!(
        versions(&provider.mount(request).await.expect("again")),
        ids
    );
}

#[tokio::test]
async fn a_denial_by_another_vault_names_that_vault() {
    let emu = federated_emulator().await;
    emu.vault(VAULT).put_secret("a", plain_secret(V, "a", 1));
    emu.vault(OTHER).put_secret("b", plain_secret(V, "b", 1));
    let provider = Provider::start(&emu, |_| {}).await;
    provider
        .mount_fails(
            MountBuilder::workload(&entries(&[
                "objectName: a\nobjectType: secret",
                "objectName: b\nobjectType: secret\nkeyvaultName: kv-other",
            ]))
            .build(),
            Code::PermissionDenied,
            &["secret \"b\" from vault kv-other", "ForbiddenByRbac"],
        )
        .await;
}

#[tokio::test]
async fn an_optional_object_that_is_missing_or_disabled_is_skipped_and_counted() {
    let emu = federated_emulator().await;
    emu.vault(VAULT)
        .put_secret("here", plain_secret(V, "here", 1));
    let mut off = plain_secret(V, "off", 1);
    off.enabled = false;
    emu.vault(VAULT).put_secret("off", off);
    let provider = Provider::start(&emu, |_| {}).await;
    let response = provider
        .mount(
            MountBuilder::workload(&entries(&[
                "objectName: here\nobjectType: secret",
                "objectName: gone\nobjectType: secret\noptional: \"true\"",
                "objectName: off\nobjectType: secret\noptional: true",
                "objectName: gone-key\nobjectType: key\noptional: \"true\"",
            ]))
            .build(),
        )
        .await
        .expect("Mount");
    let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["here"]);
    assert_eq!(response.object_version.len(), 1);
    let metrics = provider.metrics().await;
    for line in [
        "akv_optional_objects_skipped_total{object_type=\"secret\",reason=\"not_found\"} 1",
        "akv_optional_objects_skipped_total{object_type=\"secret\",reason=\"disabled\"} 1",
        "akv_optional_objects_skipped_total{object_type=\"key\",reason=\"not_found\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    // Without optional, the same object still fails the Mount.
    provider
        .mount_fails(
            MountBuilder::workload(&entries(&["objectName: gone\nobjectType: secret"])).build(),
            Code::NotFound,
            &["secret \"gone\""],
        )
        .await;
}

#[tokio::test]
async fn an_optional_object_still_fails_on_anything_but_absence() {
    let emu = federated_emulator().await;
    emu.vault(OTHER).put_secret("b", plain_secret(V, "b", 1));
    emu.vault(VAULT).fail_next(1000, 503);
    let provider = Provider::start(&emu, |c| {
        c.mount_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    // 403: not granted on the other vault.
    provider
        .mount_fails(
            MountBuilder::workload(&entries(&[
                "objectName: b\nobjectType: secret\nkeyvaultName: kv-other\noptional: \"true\"",
            ]))
            .build(),
            Code::PermissionDenied,
            &["from vault kv-other"],
        )
        .await;
    // 5xx until the deadline: still a failure, which the driver retries.
    let status = provider
        .mount(
            MountBuilder::workload(&entries(&[
                "objectName: a\nobjectType: secret\noptional: \"true\"",
            ]))
            .build(),
        )
        .await
        .expect_err("a vault answering 503 fails the Mount");
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
}

/// A secret of `kv-main` with `value`, plain or (with `managed`) behind a certificate.
fn put(emu: &Emulator, name: &str, value: &str, enabled: bool, managed: bool) {
    let mut secret = plain_secret(V, value, 1);
    secret.enabled = enabled;
    if managed {
        // PEM passes through unchanged: the value need not be a real certificate here.
        secret.kid = Some(format!("https://kv-main.vault.azure.net/keys/{name}/{V}"));
        secret.content_type = Some("application/x-pem-file".to_owned());
    }
    emu.vault(VAULT).put_secret(name, secret);
}

#[tokio::test]
async fn a_pattern_mounts_every_enabled_match_and_rotation_sees_new_ones() {
    let emu = federated_emulator().await;
    // Pages of two: the listing is followed across pages.
    emu.set_page_size(2);
    put(&emu, "app1-a", "value-a", true, false);
    put(&emu, "APP1-b", "value-b", true, false);
    put(&emu, "app1-off", "value-off", false, false);
    put(&emu, "app1-tls", "value-tls", true, true);
    put(&emu, "app2-x", "value-x", true, false);
    put(&emu, "app1-named", "value-named", true, false);
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&entries(&[
        "objectName: \"app1-*\"\nobjectType: secret\nobjectAlias: app1/",
        // Named on its own: the pattern leaves it to this entry.
        "objectName: app1-named\nobjectType: secret\nobjectAlias: named.txt",
    ]))
    .build();
    let response = provider.mount(request.clone()).await.expect("Mount");
    let first = versions(&response);
    let paths: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(paths, ["app1/APP1-b", "app1/app1-a", "named.txt"]);
    assert_eq!(text(&response, "app1/app1-a"), "value-a");
    assert_eq!(first["app1/app1-a"].0, "secret/app1-a");
    assert_eq!(first["app1/APP1-b"].0, "secret/APP1-b");
    let listings = emu
        .vault(VAULT)
        .requests()
        .iter()
        .filter(|r| r.path == "/secrets")
        .count();
    assert!(listings >= 3, "{listings} pages");
    // Stable across Mounts; a new match appears on the next one.
    assert_eq!(
        versions(&provider.mount(request.clone()).await.expect("again")),
        first
    );
    put(&emu, "app1-new", "value-new", true, false);
    let after = versions(
        &provider
            .mount(request.clone())
            .await
            .expect("after a new secret"),
    );
    assert!(after.contains_key("app1/app1-new"), "{after:?}");
    assert_eq!(after.len(), first.len() + 1);
    // A match whose current version is disabled is gone at the next Mount.
    let mut disabled = plain_secret("d1sab1ed", "value-a2", 2);
    disabled.enabled = false;
    emu.vault(VAULT).put_secret("app1-a", disabled);
    let later = versions(
        &provider
            .mount(request)
            .await
            .expect("after a disabled version"),
    );
    assert!(!later.contains_key("app1/app1-a"), "{later:?}");
    assert_eq!(later.len(), after.len() - 1);
}

#[tokio::test]
async fn include_managed_adds_certificate_backed_secrets_and_no_match_is_an_error() {
    let emu = federated_emulator().await;
    put(&emu, "web-tls", "tls-value", true, true);
    put(&emu, "web-key", "key-value", true, false);
    let provider = Provider::start(&emu, |_| {}).await;
    let response = provider
        .mount(
            MountBuilder::workload(&entries(&[
                "objectName: \"web-*\"\nobjectType: secret\nincludeManaged: \"true\"",
            ]))
            .build(),
        )
        .await
        .expect("Mount");
    assert_eq!(versions(&response).len(), 2);
    provider
        .mount_fails(
            MountBuilder::workload(&entries(&["objectName: \"api-*\"\nobjectType: secret"]))
                .build(),
            Code::FailedPrecondition,
            &[
                "\"api-*\" from vault kv-main",
                "no enabled secrets",
                "optional",
            ],
        )
        .await;
    let empty = provider
        .mount(
            MountBuilder::workload(&entries(&[
                "objectName: web-key\nobjectType: secret",
                "objectName: \"api-*\"\nobjectType: secret\noptional: \"true\"",
            ]))
            .build(),
        )
        .await
        .expect("an optional pattern may match nothing");
    assert_eq!(empty.files.len(), 1);
}

#[tokio::test]
async fn a_pattern_without_the_list_permission_names_it_in_both_models() {
    let emu = emulator().await;
    federate(&emu);
    emu.vault(VAULT).grant_without_list(CLIENT_ID);
    put(&emu, "app1-a", "value-a", true, false);
    let provider = Provider::start(&emu, |_| {}).await;
    let request = || {
        MountBuilder::workload(&entries(&["objectName: \"app1-*\"\nobjectType: secret"])).build()
    };
    provider
        .mount_fails(
            request(),
            Code::PermissionDenied,
            &[
                "listing the secrets of vault kv-main for the pattern \"app1-*\"",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                "list permission for secrets",
            ],
        )
        .await;
    emu.vault(VAULT).use_access_policies();
    provider
        .mount_fails(
            request(),
            Code::PermissionDenied,
            &["AccessDenied", "list permission"],
        )
        .await;
    // Reading the object by name needs no listing.
    provider
        .mount(
            MountBuilder::workload(&entries(&["objectName: app1-a\nobjectType: secret"])).build(),
        )
        .await
        .expect("get-only identities still read named objects");
}

#[tokio::test]
async fn a_pattern_over_the_object_limit_fails_naming_pattern_and_count() {
    let emu = federated_emulator().await;
    for i in 0..257 {
        put(&emu, &format!("many-{i:03}"), "value-many", true, false);
    }
    let provider = Provider::start(&emu, |_| {}).await;
    provider
        .mount_fails(
            MountBuilder::workload(&entries(&["objectName: \"many-*\"\nobjectType: secret"]))
                .build(),
            Code::FailedPrecondition,
            &["\"many-*\"", "matches 257 objects", "more than the 256"],
        )
        .await;
}

#[tokio::test]
async fn a_match_colliding_with_another_file_fails_at_the_mount_naming_both() {
    let emu = federated_emulator().await;
    put(&emu, "app1-a", "value-a", true, false);
    put(&emu, "other", "value-other", true, false);
    let provider = Provider::start(&emu, |_| {}).await;
    provider
        .mount_fails(
            MountBuilder::workload(&entries(&[
                "objectName: other\nobjectType: secret\nobjectAlias: app1-a",
                "objectName: \"app1-*\"\nobjectType: secret",
            ]))
            .build(),
            Code::InvalidArgument,
            &[
                "objects.array[0] (other)",
                "objects.array[1] (app1-a)",
                "\"app1-a\"",
            ],
        )
        .await;
}

/// Regression: a `jmesPath` path nested deeply enough (100,000 `!`) overflowed the parser's stack,
/// which aborts the whole daemon. Paths are bounded at validation; the deepest accepted one is
/// parsed and evaluated on the runtime's thread without harm.
#[tokio::test]
async fn a_deeply_nested_jmespath_is_refused_and_the_deepest_accepted_one_is_harmless() {
    let emu = federated_emulator().await;
    put_db_credentials(&emu);
    let provider = Provider::start(&emu, |_| {}).await;
    let entry = |path: String| {
        MountBuilder::workload(&entries(&[&format!(
            "objectName: db-credentials\nobjectType: secret\njmesPath:\n  - path: \"{path}\"\n    objectAlias: x"
        )]))
        .build()
    };
    provider
        .mount_fails(
            entry(format!("{}a", "!".repeat(100_000))),
            Code::InvalidArgument,
            &["jmesPath[0]: path is 100001 bytes long, more than 128"],
        )
        .await;
    provider
        .mount_fails(
            entry(format!("{}username", "!".repeat(120))),
            Code::FailedPrecondition,
            &["a boolean, not a string"],
        )
        .await;
    provider
        .mount(MountBuilder::workload(&entries(&[JSON_ENTRY])).build())
        .await
        .expect("the daemon still serves");
}

/// Throttling is per vault: one vault's 429 fails the Mounts that need it, naming it, while
/// Mounts of the other vault go on at once.
#[tokio::test]
async fn one_vaults_throttling_names_it_and_holds_only_its_objects() {
    let emu = federated_emulator().await;
    emu.vault(VAULT)
        .put_secret("a", plain_secret(V, "value-a", 1));
    emu.vault(OTHER)
        .grant(CLIENT_ID)
        .put_secret("b", plain_secret(V, "value-b", 1))
        .throttle_next(1, 120);
    let provider = Provider::start(&emu, |_| {}).await;
    let both = MountBuilder::workload(&entries(&[
        "objectName: a\nobjectType: secret",
        "objectName: b\nobjectType: secret\nkeyvaultName: kv-other",
    ]))
    .build();
    provider
        .mount_fails(
            both,
            Code::Unavailable,
            &["secret \"b\" from vault kv-other", "throttling"],
        )
        .await;
    let started = std::time::Instant::now();
    provider
        .mount(MountBuilder::workload(&entries(&["objectName: a\nobjectType: secret"])).build())
        .await
        .expect("the class's vault is not held by the other's throttling");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let metrics = provider.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "akv_keyvault_throttled_total{vault=\"kv-other\"} 1"),
        "{metrics}"
    );
}
