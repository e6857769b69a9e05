//! Clouds: a named sovereign cloud, and Azure Stack from an environment file read per request.

use crate::support::harness::*;

async fn fixture() -> Emulator {
    let emu = federated_emulator().await;
    emu.vault(VAULT).put_secret(
        "db-password",
        plain_secret("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "s3cr3t!", 1),
    );
    emu
}

#[tokio::test]
async fn us_government_cloud_uses_its_authority_suffix_and_scope() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let request =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .param("cloudName", "AzureUSGovernmentCloud")
            .build();
    provider.mount(request).await.expect("mount");
    let form = emu.entra().last_form().expect("token request");
    assert_eq!(form["scope"], "https://vault.usgovcloudapi.net/.default");
    let hosts: Vec<String> = emu.kv_requests().into_iter().map(|r| r.host).collect();
    assert_eq!(hosts, vec![format!("{VAULT}.vault.usgovcloudapi.net")]);
}

#[tokio::test]
async fn default_cloud_flag_applies_when_the_spc_sets_none() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |c| {
        c.default_cloud = akv_csi_provider::cloud::CloudName::UsGovernment
    })
    .await;
    let request =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"])).build();
    provider.mount(request).await.expect("mount");
    assert!(
        emu.kv_requests()[0]
            .host
            .ends_with(".vault.usgovcloudapi.net")
    );
}

#[tokio::test]
async fn azure_stack_environment_file_is_read_per_request() {
    let emu = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("azurestackcloud.json");
    std::fs::write(
        &env_file,
        r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.example/","keyVaultEndpoint":"https://vault.example/","keyVaultDNSSuffix":"vault.example"}"#,
    )
    .unwrap();
    let provider = Provider::start(&emu, |c| c.custom_user_agent = "stack-hub-test".into()).await;
    let request =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .param("cloudName", "AzureStackCloud")
            .param("cloudEnvFileName", env_file.to_str().unwrap())
            .build();
    let response = provider.mount(request).await.expect("mount");
    assert_eq!(response.files[0].contents, b"s3cr3t!");
    assert_eq!(
        emu.entra().last_form().unwrap()["scope"],
        "https://vault.example/.default"
    );
    let kv = emu.kv_requests();
    assert_eq!(kv[0].host, format!("{VAULT}.vault.example"));
    let ua = kv[0].user_agent.clone().unwrap_or_default();
    assert!(
        ua.starts_with("akv-csi-provider/") && ua.ends_with(" stack-hub-test"),
        "{ua}"
    );

    // A broken file is a clear error naming the field, not a crash.
    std::fs::write(&env_file, r#"{"keyVaultDNSSuffix":"vault.example"}"#).unwrap();
    let request =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .param("cloudName", "AzureStackCloud")
            .param("cloudEnvFileName", env_file.to_str().unwrap())
            .build();
    let status = provider.mount(request).await.expect_err("missing field");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("activeDirectoryEndpoint"),
        "{}",
        status.message()
    );
}
