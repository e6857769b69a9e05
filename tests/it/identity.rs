//! Every identity mode end to end, and the token cache's rules: one exchange per workload, never a
//! hit across workloads.

use std::sync::Arc;

use tonic::Code;

use crate::support::harness::*;

const NODE_MI: &str = "6a1e2b3c-0000-4000-8000-00000000a001";
const ADDON_MI: &str = "6a1e2b3c-0000-4000-8000-00000000a002";
const SYSTEM_MI: &str = "6a1e2b3c-0000-4000-8000-00000000a003";

async fn emulator_with_secret() -> Emulator {
    let emu = emulator().await;
    emu.vault(VAULT).put_secret(
        "db-password",
        plain_secret("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "s3cr3t!", 1),
    );
    emu
}

fn vm_identity(user_assigned: Option<&str>) -> MountBuilder {
    let mut b = MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
        .without("clientID")
        .param("useVMManagedIdentity", "true");
    if let Some(id) = user_assigned {
        b = b.param("userAssignedIdentityID", id);
    }
    b.token = None;
    b
}

#[tokio::test]
async fn node_user_assigned_identity_and_the_addon_identity() {
    let emu = emulator_with_secret().await;
    let node = emu.node();
    node.assign_user_identity(NODE_MI);
    node.assign_user_identity(ADDON_MI);
    emu.vault(VAULT).grant(NODE_MI);
    emu.vault(VAULT).grant(ADDON_MI);
    let imds = emu.local_url();
    let provider = Provider::start(&emu, |c| c.imds_endpoint = imds).await;
    for id in [NODE_MI, ADDON_MI] {
        let response = provider
            .mount(vm_identity(Some(id)).build())
            .await
            .expect("mount");
        assert_eq!(response.files[0].contents, b"s3cr3t!");
    }
    assert_eq!(node.requests_without_metadata_header(), 0);
    // Several identities and none named: IMDS refuses, and we say which parameter fixes it.
    let status = provider
        .mount(vm_identity(None).build())
        .await
        .expect_err("ambiguous");
    assert!(
        status.message().contains("userAssignedIdentityID"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn system_assigned_identity() {
    let emu = emulator_with_secret().await;
    let node = emu.node();
    node.set_system_identity(SYSTEM_MI);
    emu.vault(VAULT).grant(SYSTEM_MI);
    let imds = emu.local_url();
    let provider = Provider::start(&emu, |c| c.imds_endpoint = imds).await;
    let response = provider
        .mount(vm_identity(None).build())
        .await
        .expect("mount");
    assert_eq!(response.files[0].contents, b"s3cr3t!");
}

#[tokio::test]
async fn unassigned_identity_says_how_to_assign_it() {
    let emu = emulator_with_secret().await;
    let node = emu.node();
    node.assign_user_identity(NODE_MI);
    let imds = emu.local_url();
    let provider = Provider::start(&emu, |c| c.imds_endpoint = imds).await;
    let status = provider
        .mount(vm_identity(Some("99999999-0000-4000-8000-000000000000")).build())
        .await
        .expect_err("not assigned");
    assert_eq!(status.code(), Code::Unauthenticated);
    let msg = status.message();
    assert!(
        msg.contains("Identity not found") && msg.contains("az vmss identity assign"),
        "{msg}"
    );
    assert!(
        msg.contains("99999999-0000-4000-8000-000000000000"),
        "{msg}"
    );
}

#[tokio::test]
async fn transient_imds_failures_are_retried_and_tokens_cached() {
    let emu = emulator_with_secret().await;
    let node = emu.node();
    node.assign_user_identity(NODE_MI);
    emu.vault(VAULT).grant(NODE_MI);
    node.fail_next(&[503, 429, 500]);
    let imds = emu.local_url();
    let provider = Provider::start(&emu, |c| c.imds_endpoint = imds).await;
    let response = provider
        .mount(vm_identity(Some(NODE_MI)).build())
        .await
        .expect("retried");
    assert_eq!(response.files[0].contents, b"s3cr3t!");
    assert_eq!(node.requests(), 4);
    provider
        .mount(vm_identity(Some(NODE_MI)).build())
        .await
        .expect("cached");
    assert_eq!(node.requests(), 4, "second Mount served from the cache");
}

/// IMDS refusing connections fails the Mount as unavailable (the driver retries), says how the
/// provider reaches IMDS, and counts as a transport failure.
#[tokio::test]
async fn imds_refusing_connections_is_a_transport_failure() {
    let emu = emulator_with_secret().await;
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let imds = format!("http://{closed}");
    let provider = Provider::start(&emu, |c| {
        c.imds_endpoint = imds.clone();
        // Room for a few retries, not for all five.
        c.mount_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let status = provider
        .mount(vm_identity(Some(NODE_MI)).build())
        .await
        .expect_err("IMDS unreachable");
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    let msg = status.message();
    assert!(
        msg.contains(&format!(
            "cannot reach IMDS at {imds}: request to 127.0.0.1 failed"
        )) && msg.contains("hostNetwork: true"),
        "{msg}"
    );
    let metrics = provider.metrics().await;
    assert!(
        metrics.lines().any(|l| l
            == "akv_token_requests_total{mode=\"vm_managed_identity\",outcome=\"transport\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn pod_identity_through_nmi() {
    let emu = emulator_with_secret().await;
    let node = emu.node();
    let pod = Pod::default();
    node.bind_pod(&pod.namespace, &pod.name, NODE_MI);
    emu.vault(VAULT).grant(NODE_MI);
    let nmi = emu.local_url();
    let provider = Provider::start(&emu, |c| c.nmi_endpoint = nmi).await;
    let mut b = MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
        .without("clientID")
        .param("usePodIdentity", "true");
    b.token = None;
    let response = provider.mount(b.build()).await.expect("mount");
    assert_eq!(response.files[0].contents, b"s3cr3t!");
    let other = b.pod(Pod {
        name: "unbound".into(),
        ..Pod::default()
    });
    let status = provider.mount(other.build()).await.expect_err("no binding");
    assert!(
        status.message().contains("AzureIdentityBinding"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn twenty_pods_of_one_service_account_cause_one_exchange() {
    let emu = emulator_with_secret().await;
    federate(&emu);
    let provider = Arc::new(Provider::start(&emu, |_| {}).await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            let pod = Pod {
                name: format!("web-{i}"),
                ..Pod::default()
            };
            let b =
                MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
                    .pod(pod);
            provider.mount(b.build()).await
        }));
    }
    for t in tasks {
        let response = t.await.expect("join").expect("mount");
        assert_eq!(response.files[0].contents, b"s3cr3t!");
    }
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 1);
}

#[tokio::test]
async fn another_namespace_naming_the_same_client_id_gets_no_cached_token() {
    let emu = emulator_with_secret().await;
    federate(&emu);
    let provider = Provider::start(&emu, |_| {}).await;
    let request = |pod: Pod| {
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .pod(pod)
            .build()
    };
    provider
        .mount(request(Pod::default()))
        .await
        .expect("legitimate pod");
    let intruders = [
        Pod {
            namespace: "attacker".into(),
            ..Pod::default()
        },
        Pod {
            service_account: "other-sa".into(),
            ..Pod::default()
        },
    ];
    for intruder in intruders {
        let status = provider
            .mount(request(intruder.clone()))
            .await
            .expect_err("must not ride on the cache");
        assert!(
            status.message().contains("AADSTS70021"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains(&intruder.subject()),
            "{}",
            status.message()
        );
    }
    assert_eq!(
        emu.entra().requests_for(CLIENT_ID),
        3,
        "each workload asked Entra itself"
    );
}

#[tokio::test]
async fn tokens_close_to_expiry_are_not_reused() {
    let emu = emulator_with_secret().await;
    federate(&emu);
    // Four minutes: below the five minutes a handed-out token must have left.
    emu.entra().set_token_lifetime(240);
    let provider = Provider::start(&emu, |_| {}).await;
    let request = || {
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"])).build()
    };
    provider.mount(request()).await.expect("first");
    provider.mount(request()).await.expect("second");
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 2);
}

#[tokio::test]
async fn a_wrong_client_secret_never_rides_on_a_right_ones_token() {
    let emu = emulator_with_secret().await;
    let app = "11111111-2222-3333-4444-555555555555";
    emu.entra().add_client_secret(TENANT, app, "right");
    emu.vault(VAULT).grant(app);
    let provider = Provider::start(&emu, |_| {}).await;
    let sp = |secret: &str| {
        let mut b =
            MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
                .without("clientID");
        b.token = None;
        b.secrets = format!(r#"{{"clientid":"{app}","clientsecret":"{secret}"}}"#);
        b.build()
    };
    provider.mount(sp("right")).await.expect("right secret");
    provider.mount(sp("right")).await.expect("cached");
    assert_eq!(emu.entra().requests_for(app), 1);
    let status = provider.mount(sp("wrong")).await.expect_err("wrong secret");
    assert!(
        status.message().contains("AADSTS7000215"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn identity_binding_goes_through_the_token_proxy_under_its_sni_name() {
    let emu = emulator_with_secret().await;
    emu.vault(VAULT).grant(CLIENT_ID);
    let provider = Provider::start(&emu, with_token_proxy).await;
    let b = identity_binding(
        &emu,
        &objects(&["objectName: db-password\nobjectType: secret"]),
    );
    let response = provider.mount(b.build()).await.expect("mount");
    assert_eq!(response.files[0].contents, b"s3cr3t!");
    assert_eq!(
        emu.entra().last_host().as_deref(),
        Some("tokenproxy.aks.example")
    );

    // Without --token-proxy-url the mode is refused with the fix.
    let plain = Provider::start(&emu, |_| {}).await;
    let status = plain.mount(b.build()).await.expect_err("not configured");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("--token-proxy-url"),
        "{}",
        status.message()
    );
}

/// Two workload identities mounting the same object: each fetch carries the token of the identity
/// whose pod asked (the emulator's request log records the bearer token's client id), so nothing
/// one identity fetched is ever served to the other.
#[tokio::test]
async fn two_identities_never_share_a_fetched_object() {
    const CLIENT_B: &str = "2b7d4c55-9a1e-4c55-8c9f-6f0d2b3c4d5e";
    let emu = emulator_with_secret().await;
    let pod_b = Pod {
        namespace: "team-b".into(),
        name: "api-0".into(),
        service_account: "api".into(),
    };
    let entra = emu.entra();
    entra.add_federated_credential(
        TENANT,
        CLIENT_ID,
        ISSUER,
        &Pod::default().subject(),
        WI_AUDIENCE,
    );
    entra.add_federated_credential(TENANT, CLIENT_B, ISSUER, &pod_b.subject(), WI_AUDIENCE);
    emu.vault(VAULT).grant(CLIENT_ID).grant(CLIENT_B);
    let provider = Provider::start(&emu, |_| {}).await;
    let request = |pod: Pod, client_id: &str| {
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .param("clientID", client_id)
            .pod(pod)
            .build()
    };
    for _ in 0..2 {
        for (pod, client_id) in [(Pod::default(), CLIENT_ID), (pod_b.clone(), CLIENT_B)] {
            let before = emu.kv_requests().len();
            let response = provider
                .mount(request(pod, client_id))
                .await
                .expect("mount");
            assert_eq!(response.files[0].contents, b"s3cr3t!");
            let fetched: Vec<_> = emu.kv_requests().split_off(before);
            assert!(!fetched.is_empty(), "{client_id}: served without fetching");
            assert!(
                fetched
                    .iter()
                    .all(|r| r.client_id.as_deref() == Some(client_id)),
                "{client_id}: {fetched:?}"
            );
        }
    }
    let exchanges = emu.counters().token_exchanges;
    assert_eq!(
        (exchanges.get(CLIENT_ID), exchanges.get(CLIENT_B)),
        (Some(&1), Some(&1))
    );
}
