//! `objectVersionHistory`, version listing with `nextLink` paging, and Key Vault throttling.

use tonic::Code;

use crate::support::harness::*;

fn version(i: usize) -> String {
    format!("{i:032x}")
}

/// `rotating` has versions 1..=5 created at 100..500; version 4 is disabled.
async fn fixture() -> Emulator {
    let emu = emulator().await;
    federate(&emu);
    // Inserted out of order: the listing's order is not guaranteed, the provider sorts by created.
    for i in [3, 1, 5, 2, 4] {
        emu.vault(VAULT).put_secret(
            "rotating",
            SecretVersion {
                version: version(i),
                value: format!("value-{i}"),
                content_type: None,
                kid: None,
                created: 100 * i as i64,
                enabled: i != 4,
            },
        );
    }
    emu
}

#[tokio::test]
async fn history_writes_exactly_n_enabled_versions_newest_first() {
    let emu = fixture().await;
    emu.set_page_size(2); // three pages: nextLink must be followed
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[
        "objectName: rotating\nobjectType: secret\nobjectVersionHistory: 3\nobjectAlias: hist\nfilePermission: \"0640\"",
    ]))
    .build();
    let response = provider.mount(request).await.expect("mount");
    let got: Vec<(&str, &[u8], i32)> = response
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.contents.as_slice(), f.mode))
        .collect();
    assert_eq!(
        got,
        vec![
            ("hist/0", b"value-5".as_slice(), 0o640),
            ("hist/1", b"value-3".as_slice(), 0o640),
            ("hist/2", b"value-2".as_slice(), 0o640),
        ],
        "exactly N files (the Go provider writes N+1), skipping the disabled version"
    );
    let ids: Vec<(&str, &str)> = response
        .object_version
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect();
    let (v5, v3, v2) = (version(5), version(3), version(2));
    assert_eq!(
        ids,
        vec![
            ("secret/rotating/0", v5.as_str()),
            ("secret/rotating/1", v3.as_str()),
            ("secret/rotating/2", v2.as_str()),
        ]
    );
    let listings = emu
        .kv_requests()
        .iter()
        .filter(|r| r.path.ends_with("/versions"))
        .count();
    assert_eq!(listings, 3, "followed nextLink across three pages");
}

#[tokio::test]
async fn history_starts_at_object_version_and_stops_at_the_oldest() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[&format!(
        "objectName: rotating\nobjectType: secret\nobjectVersionHistory: 10\nobjectVersion: {}",
        version(3)
    )]))
    .build();
    let response = provider.mount(request).await.expect("mount");
    let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["rotating/0", "rotating/1", "rotating/2"]);
    assert_eq!(response.files[0].contents, b"value-3");
    assert_eq!(response.files[2].contents, b"value-1");
}

#[tokio::test]
async fn history_with_an_unknown_start_version_says_so() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[&format!(
        "objectName: rotating\nobjectType: secret\nobjectVersionHistory: 2\nobjectVersion: {}",
        version(4)
    )]))
    .build();
    let status = provider
        .mount(request)
        .await
        .expect_err("disabled start version");
    assert!(
        status.message().contains("rotating") && status.message().contains("enabled versions"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after() {
    let emu = fixture().await;
    emu.vault(VAULT).throttle_next(1, 1);
    let provider = Provider::start(&emu, |_| {}).await;
    let request =
        MountBuilder::workload(&objects(&["objectName: rotating\nobjectType: secret"])).build();
    let started = std::time::Instant::now();
    let response = provider.mount(request).await.expect("retried");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "honoured Retry-After"
    );
    assert_eq!(response.files[0].contents, b"value-5");
}

#[tokio::test]
async fn throttling_longer_than_the_mount_deadline_fails_at_once_so_the_driver_retries() {
    let emu = fixture().await;
    emu.vault(VAULT).throttle_next(10, 60);
    let provider = Provider::start(&emu, |_| {}).await;
    let request =
        MountBuilder::workload(&objects(&["objectName: rotating\nobjectType: secret"])).build();
    let started = std::time::Instant::now();
    let status = provider.mount(request).await.expect_err("throttled");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "failed at once"
    );
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("Throttled")
            && status.message().contains(VAULT)
            && status.message().contains("for another 60s"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn repeated_throttling_within_the_deadline_is_waited_out() {
    let emu = fixture().await;
    emu.vault(VAULT).throttle_next(10, 0);
    let provider = Provider::start(&emu, |_| {}).await;
    let request =
        MountBuilder::workload(&objects(&["objectName: rotating\nobjectType: secret"])).build();
    let response = provider.mount(request).await.expect("waited out");
    assert_eq!(response.files[0].contents, b"value-5");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let emu = fixture().await;
    emu.vault(VAULT).fail_next(2, 503);
    let provider = Provider::start(&emu, |_| {}).await;
    let request =
        MountBuilder::workload(&objects(&["objectName: rotating\nobjectType: secret"])).build();
    let response = provider
        .mount(request)
        .await
        .expect("retried past two 503s");
    assert_eq!(response.files[0].contents, b"value-5");
}

/// A version listing recorded from Key Vault drives the emu: the provider sorts its real entries.
#[tokio::test]
async fn recorded_version_listing_drives_history() {
    let emu = federated_emulator().await;
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/vectors/keyvault/f_versions_listing/node__keyVault-secret-tests@2016-11-16__036.json"
        ))
        .unwrap(),
    )
    .unwrap();
    emu.vault(VAULT).put_raw_json(
        "/secrets/nodeSecret/versions",
        200,
        recorded["response"]["body"].clone(),
    );
    // Created 1479343563 (older) and 1479343564 (newer).
    emu.vault(VAULT).put_secret(
        "nodeSecret",
        plain_secret("094c85e701c1406a968cdeeea8161720", "older", 1),
    );
    emu.vault(VAULT).put_secret(
        "nodeSecret",
        plain_secret("7b26fa2cfce74b1f898acfbb2ec8ff7d", "newer", 2),
    );
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[
        "objectName: nodeSecret\nobjectType: secret\nobjectVersionHistory: 2",
    ]))
    .build();
    let response = provider.mount(request).await.expect("mount");
    let got: Vec<(&str, &[u8], &str)> = response
        .files
        .iter()
        .zip(&response.object_version)
        .map(|(f, v)| (f.path.as_str(), f.contents.as_slice(), v.version.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "nodeSecret/0",
                b"newer".as_slice(),
                "7b26fa2cfce74b1f898acfbb2ec8ff7d"
            ),
            (
                "nodeSecret/1",
                b"older".as_slice(),
                "094c85e701c1406a968cdeeea8161720"
            ),
        ]
    );
}

/// Key Vault's service limit (here one request per second, the emulator's throttling model):
/// each throttled fetch of a Mount waits for `Retry-After` before asking for that object again,
/// and the Mount completes once the windows let every object through.
#[tokio::test]
async fn throttled_fetches_wait_for_retry_after_under_a_service_limit() {
    let emu = fixture().await;
    for name in ["a", "b", "c"] {
        emu.vault(VAULT)
            .put_secret(name, plain_secret(&version(9), name, 1));
    }
    emu.vault(VAULT)
        .limit_requests(1, std::time::Duration::from_secs(1));
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[
        "objectName: a\nobjectType: secret",
        "objectName: b\nobjectType: secret",
        "objectName: c\nobjectType: secret",
    ]))
    .build();
    let response = provider.mount(request).await.expect("mount");
    assert_eq!(response.files.len(), 3);
    let log = emu.vault(VAULT).requests();
    assert_eq!(log.iter().filter(|r| r.status == 200).count(), 3);
    assert!(log.iter().any(|r| r.status == 429), "the limit was hit");
    for (i, throttled) in log.iter().enumerate().filter(|(_, r)| r.status == 429) {
        let next = log[i + 1..]
            .iter()
            .find(|r| r.name == throttled.name)
            .expect("retried");
        assert!(
            next.at.duration_since(throttled.at) >= std::time::Duration::from_millis(950),
            "{:?} retried too early",
            throttled.name
        );
    }
    assert_eq!(
        emu.counters().throttled_total(),
        log.iter().filter(|r| r.status == 429).count() as u64
    );
}

/// Regression: the versions of an `objectVersionHistory` object were fetched one after another
/// (N + 1 round trips); they are fetched at once after the listing, in the listing's order.
#[tokio::test]
async fn history_versions_are_fetched_concurrently() {
    let emu = fixture().await;
    let provider = Provider::start(&emu, |_| {}).await;
    // Token first, so that only the listing and the version fetches are timed.
    provider
        .mount(
            MountBuilder::workload(&objects(&[
                "objectName: rotating\nobjectType: secret\nobjectAlias: warm",
            ]))
            .build(),
        )
        .await
        .expect("warm-up mount");
    emu.set_latency(std::time::Duration::from_millis(400));
    let started = std::time::Instant::now();
    let response = provider
        .mount(
            MountBuilder::workload(&objects(&[
                "objectName: rotating\nobjectType: secret\nobjectVersionHistory: 4\nobjectAlias: hist",
            ]))
            .build(),
        )
        .await
        .expect("mount");
    let elapsed = started.elapsed();
    let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["hist/0", "hist/1", "hist/2", "hist/3"]);
    assert_eq!(response.files[0].contents, b"value-5");
    assert_eq!(response.files[3].contents, b"value-1");
    // Listing + one wave is 2 x 400 ms; one version after another would be 5 x 400 ms.
    assert!(
        elapsed < std::time::Duration::from_millis(1600),
        "took {elapsed:?}"
    );
}

/// Regression: the versions of a listing were kept however many a page held, so a peer sending
/// a megabyte of tiny items per page, for 200 pages, grew the daemon's memory by gigabytes. A
/// listing keeps at most what 200 real pages of 25 hold.
#[tokio::test]
async fn a_listing_with_more_versions_than_200_pages_hold_is_refused() {
    let emu = fixture().await;
    let items: Vec<serde_json::Value> = (0..5001)
        .map(|i| serde_json::json!({ "id": format!("https://{VAULT}.vault.azure.net/secrets/many/{i}") }))
        .collect();
    emu.vault(VAULT).put_raw_json(
        "/secrets/many/versions",
        200,
        serde_json::json!({ "value": items, "nextLink": null }),
    );
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[
        "objectName: many\nobjectType: secret\nobjectVersionHistory: 2",
    ]))
    .build();
    let status = provider
        .mount(request)
        .await
        .expect_err("too many versions");
    assert!(
        status.message().contains("many") && status.message().contains("more than 5000 versions"),
        "{}",
        status.message()
    );
    let good = MountBuilder::workload(&objects(&[
        "objectName: rotating\nobjectType: secret\nobjectVersionHistory: 2",
    ]))
    .build();
    provider.mount(good).await.expect("still serves");
}
