//! End-to-end Mounts through the gRPC server: workload identity, secrets, versions, aliases,
//! encodings, permissions and Key Vault errors.

use tonic::Code;

use crate::support::harness::*;

const V1: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const V2: &str = "f9e8d7c6b5a4938271605f4e3d2c1b0a";

fn secret(version: &str, value: &str, created: i64) -> SecretVersion {
    plain_secret(version, value, created)
}

/// A emu with the managed identity federated for the default pod and allowed on kv-main, holding
/// `db-password` in two versions (V2 newest).
async fn fixture() -> Emulator {
    let emu = federated_emulator().await;
    emu.vault(VAULT)
        .put_secret("db-password", secret(V1, "old-password", 1_690_000_000));
    emu.vault(VAULT)
        .put_secret("db-password", secret(V2, "s3cr3t!", 1_700_000_000));
    emu
}

#[tokio::test]
async fn workload_identity_mounts_the_latest_secret() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let builder =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]));
    let presented = builder.token.clone().expect("token");
    let response = provider.mount(builder.build()).await.expect("mount");
    assert_eq!(response.files.len(), 1);
    let f = file(&response, "db-password");
    assert_eq!(f.contents, b"s3cr3t!");
    assert_eq!(f.mode, 0o644);
    assert_eq!(response.object_version.len(), 1);
    assert_eq!(response.object_version[0].id, "secret/db-password");
    assert_eq!(response.object_version[0].version, V2);
    assert!(response.error.is_none());

    // The exchange sent exactly the client-assertion grant of spec 3.1.
    let form = emu.entra().last_form().expect("a token request");
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    assert_eq!(form.get("client_id").map(String::as_str), Some(CLIENT_ID));
    assert_eq!(
        form.get("scope").map(String::as_str),
        Some("https://vault.azure.net/.default")
    );
    assert_eq!(
        form.get("client_assertion_type").map(String::as_str),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(form.get("client_assertion"), Some(&presented));
    // Every Key Vault call carried the bearer token (no unauthenticated challenge probe).
    let requests = emu.kv_requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.authorization_present),
        "{requests:?}"
    );
    assert!(requests.iter().all(|r| r.query.contains("api-version=")));
    provider.stop().await;
}

#[tokio::test]
async fn pinned_version_alias_and_file_permission() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[&format!(
        "objectName: db-password\nobjectType: secret\nobjectVersion: {V1}\nobjectAlias: config/db.txt\nfilePermission: \"0600\""
    )]))
    .build();
    let response = provider.mount(request).await.expect("mount");
    let f = file(&response, "config/db.txt");
    assert_eq!(f.contents, b"old-password");
    assert_eq!(f.mode, 0o600);
    assert_eq!(response.object_version[0].version, V1);
    assert_eq!(response.object_version[0].id, "secret/db-password");
}

#[tokio::test]
async fn request_permission_is_the_default_mode() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let mut builder =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]));
    builder.permission = "256".into(); // 0400
    let response = provider.mount(builder.build()).await.expect("mount");
    assert_eq!(response.files[0].mode, 0o400);
}

#[tokio::test]
async fn each_encoding_is_decoded() {
    let emu = fixture().await;
    emu.vault(VAULT)
        .put_secret("b64", secret(V1, "aGVsbG8gd29ybGQ=", 1));
    emu.vault(VAULT)
        .put_secret("hex", secret(V1, "48657845", 1));
    emu.vault(VAULT)
        .put_secret("plain", secret(V1, "päss wörd", 1));
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[
        "objectName: b64\nobjectType: secret\nobjectEncoding: base64",
        "objectName: hex\nobjectType: secret\nobjectEncoding: HEX",
        "objectName: plain\nobjectType: secret\nobjectEncoding: utf-8",
    ]))
    .build();
    let response = provider.mount(request).await.expect("mount");
    let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["b64", "hex", "plain"],
        "files keep SecretProviderClass order"
    );
    assert_eq!(file(&response, "b64").contents, b"hello world");
    assert_eq!(file(&response, "hex").contents, b"HexE");
    assert_eq!(file(&response, "plain").contents, "päss wörd".as_bytes());
}

#[tokio::test]
async fn a_value_that_is_not_in_its_encoding_fails_the_whole_mount() {
    let emu = fixture().await;
    emu.vault(VAULT)
        .put_secret("notb64", secret(V1, "this is not base64!", 1));
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[
        "objectName: db-password\nobjectType: secret",
        "objectName: notb64\nobjectType: secret\nobjectEncoding: base64",
    ]))
    .build();
    let status = provider.mount(request).await.expect_err("must fail");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("notb64") && status.message().contains(VAULT),
        "{}",
        status.message()
    );
    assert!(status.message().contains("base64"), "{}", status.message());
}

#[tokio::test]
async fn app_registration_before_and_after_its_federated_credential() {
    let emu = fixture().await;
    let app = "5d2c7e0f-3a4b-4c6d-8e9f-0a1b2c3d4e5f";
    // The app exists (it has a secret) but nothing is federated with the pod yet.
    emu.entra().add_client_secret(TENANT, app, "unrelated");
    emu.vault(VAULT).grant(app);
    let provider = Provider::start(&emu, |_| {}).await;
    let request =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .param("clientID", app)
            .build();
    let status = provider
        .mount(request.clone())
        .await
        .expect_err("not federated yet");
    let msg = status.message();
    assert_eq!(status.code(), Code::Unauthenticated, "{msg}");
    assert!(msg.contains("AADSTS70021"), "{msg}");
    assert!(msg.contains(ISSUER), "names the presented issuer: {msg}");
    assert!(
        msg.contains(&Pod::default().subject()),
        "names the presented subject: {msg}"
    );
    assert!(
        msg.contains("az identity federated-credential create"),
        "{msg}"
    );
    assert!(msg.contains(app), "{msg}");
    assert!(
        emu.kv_requests().is_empty(),
        "no Key Vault call without a token"
    );

    emu.entra().add_federated_credential(
        TENANT,
        app,
        ISSUER,
        &Pod::default().subject(),
        WI_AUDIENCE,
    );
    let response = provider.mount(request).await.expect("federated now");
    assert_eq!(response.files[0].contents, b"s3cr3t!");
}

#[tokio::test]
async fn key_vault_404_and_403_name_vault_object_and_fix() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let missing = MountBuilder::workload(&objects(&[
        "objectName: db-password\nobjectType: secret",
        "objectName: does-not-exist\nobjectType: secret",
    ]))
    .build();
    let status = provider.mount(missing).await.expect_err("404");
    assert_eq!(status.code(), Code::NotFound);
    let msg = status.message();
    assert!(
        msg.contains("does-not-exist") && msg.contains(VAULT),
        "{msg}"
    );
    assert!(msg.contains("SecretNotFound"), "{msg}");

    let other_vault =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .param("keyvaultName", "kv-other")
            .build();
    let status = provider.mount(other_vault).await.expect_err("403");
    assert_eq!(status.code(), Code::PermissionDenied);
    let msg = status.message();
    assert!(
        msg.contains("kv-other") && msg.contains("db-password"),
        "{msg}"
    );
    assert!(
        msg.contains("ForbiddenByRbac") && msg.contains("Key Vault Secrets User"),
        "{msg}"
    );
}

#[tokio::test]
async fn disabled_secret_is_reported() {
    let emu = fixture().await;
    let mut disabled = secret(V1, "x", 1);
    disabled.enabled = false;
    emu.vault(VAULT).put_secret("off", disabled);
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[&format!(
        "objectName: off\nobjectType: secret\nobjectVersion: {V1}"
    )]))
    .build();
    let status = provider.mount(request).await.expect_err("disabled");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("disabled"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn unknown_vault_fails_fast_naming_its_host() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let request =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .param("keyvaultName", "kv-typo-nope")
            .build();
    let started = std::time::Instant::now();
    let status = provider.mount(request).await.expect_err("no such vault");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let msg = status.message();
    assert_eq!(status.code(), Code::NotFound, "{msg}");
    assert!(msg.contains("kv-typo-nope.vault.azure.net"), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
}

#[tokio::test]
async fn objects_are_fetched_concurrently() {
    let emu = fixture().await;
    emu.set_latency(std::time::Duration::from_millis(300));
    let names: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    for n in &names {
        emu.vault(VAULT).put_secret(n, secret(V1, n, 1));
    }
    let provider = Provider::start(&emu, |_| {}).await;
    let items: Vec<String> = names
        .iter()
        .map(|n| format!("objectName: {n}\nobjectType: secret"))
        .collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let response = provider
        .mount(MountBuilder::workload(&objects(&refs)).build())
        .await
        .expect("mount");
    let elapsed = started.elapsed();
    assert_eq!(response.files.len(), 8);
    for (f, n) in response.files.iter().zip(&names) {
        assert_eq!(&f.path, n);
        assert_eq!(f.contents, n.as_bytes());
    }
    // One at a time would take 8 x 300 ms (plus the token exchange); concurrently about 600 ms.
    assert!(
        elapsed < std::time::Duration::from_millis(1800),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn service_principal_from_node_publish_secret() {
    let emu = fixture().await;
    let app = "11111111-2222-3333-4444-555555555555";
    emu.entra().add_client_secret(TENANT, app, "correct horse");
    emu.vault(VAULT).grant(app);
    let provider = Provider::start(&emu, |_| {}).await;
    let mut builder =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .without("clientID");
    builder.token = None;
    builder.secrets = format!(r#"{{"clientid":"{app}","clientsecret":"correct horse"}}"#);
    let response = provider.mount(builder.build()).await.expect("mount");
    assert_eq!(response.files[0].contents, b"s3cr3t!");

    builder.secrets = format!(r#"{{"clientid":"{app}","clientsecret":"wrong"}}"#);
    let status = provider
        .mount(builder.build())
        .await
        .expect_err("bad secret");
    let msg = status.message();
    assert!(
        msg.contains("AADSTS7000215") && msg.contains("clientsecret"),
        "{msg}"
    );
    assert!(!msg.contains("wrong\""), "never echo the secret: {msg}");
}

/// Driver v1.5 rotation: `secrets` is `{}`, `current_object_version` is filled, and
/// `secretProviderClass` and `ephemeral` are absent.
#[tokio::test]
async fn driver_v1_5_rotation_request_is_served() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let builder =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]));
    let mut request = builder.build();
    let mut attrs: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&request.attributes).unwrap();
    attrs.remove("secretProviderClass");
    attrs.remove("csi.storage.k8s.io/ephemeral");
    request.attributes = serde_json::Value::Object(attrs).to_string();
    request.secrets = "{}".into();
    request.current_object_version = vec![akv_csi_provider::proto::ObjectVersion {
        id: "secret/db-password".into(),
        version: V1.into(),
    }];
    let response = provider.mount(request).await.expect("rotation mount");
    assert_eq!(response.files[0].contents, b"s3cr3t!");
    assert_eq!(
        response.object_version[0].version, V2,
        "rotation picks up the new version"
    );
}

/// Driver v1.5 rotation sends no deadline: the provider bounds each Mount itself, and says which
/// peer was too slow (UNAVAILABLE, so the driver retries).
#[tokio::test]
async fn a_hanging_key_vault_hits_the_mount_timeout() {
    let emu = fixture().await;
    emu.set_latency(std::time::Duration::from_secs(5));
    let provider = Provider::start(&emu, |c| {
        c.mount_timeout = std::time::Duration::from_millis(800)
    })
    .await;
    let started = std::time::Instant::now();
    let status = provider
        .mount(
            MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
                .build(),
        )
        .await
        .expect_err("times out");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status
            .message()
            .contains("kv-main.vault.azure.net did not answer in time"),
        "{}",
        status.message()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}
