//! How the node's Key Vault load is shaped, counted on the emulator's request log (the load
//! generator `benches/node.rs` measures the same at scale; these are its count assertions with
//! small numbers): the object cache turns a workload's replicas into one fetch per object, never
//! across identities, and a throttling vault gets one round of 429s per window, then one probe.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use akv_emulator::KvRequest;
use futures_util::future::join_all;

use crate::support::harness::*;

const CACHE_TTL: Duration = Duration::from_secs(600);

fn versioned(i: usize) -> String {
    format!("{:032x}", 0x10ad_0000u128 + i as u128)
}

fn objects_named(names: &[String]) -> String {
    let items: Vec<String> = names
        .iter()
        .map(|n| format!("objectName: {n}\nobjectType: secret"))
        .collect();
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    objects(&items)
}

/// Replicas of one workload (same namespace and service account, their own pod names): with the
/// cache on, 100 Mounts at once and then a sequential rotation over all of them fetch each object
/// once, with one token exchange.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_mounts_of_one_workload_fetch_each_object_once_with_the_cache_on() {
    const PODS: usize = 100;
    let emu = federated_emulator().await;
    let names: Vec<String> = (0..3).map(|i| format!("shared-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        emu.vault(VAULT).put_secret(
            name,
            plain_secret(&versioned(i), &format!("value of {name}"), 1),
        );
    }
    let provider = Provider::start(&emu, |c| c.object_cache_ttl = CACHE_TTL).await;
    let client = provider.client().await;
    let requests: Vec<_> = (0..PODS)
        .map(|i| {
            MountBuilder::workload(&objects_named(&names))
                .pod(Pod {
                    name: format!("web-{i}"),
                    ..Pod::default()
                })
                .build()
        })
        .collect();
    let started = join_all(requests.iter().cloned().map(|r| {
        let mut client = client.clone();
        async move { client.mount(r).await }
    }))
    .await;
    for result in started {
        assert_eq!(result.expect("mount").into_inner().files.len(), names.len());
    }
    assert!(
        emu.vault(VAULT).gets() <= names.len() as u64,
        "{} GETs for {} objects",
        emu.vault(VAULT).gets(),
        names.len()
    );
    // A rotation cycle: every pod remounts, one after another.
    for request in requests {
        client.clone().mount(request).await.expect("remount");
    }
    assert!(emu.vault(VAULT).gets() <= names.len() as u64);
    assert_eq!(
        emu.counters().token_exchanges.get(CLIENT_ID),
        Some(&1),
        "one token exchange for the workload"
    );
}

/// With the cache on, an object one identity fetched is never served to another: the other's
/// first Mount fetches it again with its own token (the request log records the bearer token's
/// client id), also when both ask at the same moment (coalescing is per identity too).
#[tokio::test]
async fn two_identities_never_share_a_cached_entry() {
    const CLIENT_B: &str = "2b7d4c55-9a1e-4c55-8c9f-6f0d2b3c4d5e";
    let emu = federated_emulator().await;
    let pod_b = Pod {
        namespace: "team-b".into(),
        name: "api-0".into(),
        service_account: "api".into(),
    };
    emu.entra()
        .add_federated_credential(TENANT, CLIENT_B, ISSUER, &pod_b.subject(), WI_AUDIENCE);
    emu.vault(VAULT)
        .grant(CLIENT_B)
        .put_secret("db-password", plain_secret(&versioned(0), "s3cr3t!", 1))
        .put_secret("together", plain_secret(&versioned(1), "both", 1));
    let provider = Provider::start(&emu, |c| c.object_cache_ttl = CACHE_TTL).await;
    let request = |object: &str, pod: Pod, client_id: &str| {
        MountBuilder::workload(&objects(&[&format!(
            "objectName: {object}\nobjectType: secret"
        )]))
        .param("clientID", client_id)
        .pod(pod)
        .build()
    };
    let fetched_by = |log: &[KvRequest], object: &str| -> Vec<Option<String>> {
        log.iter()
            .filter(|r| r.name.as_deref() == Some(object))
            .map(|r| r.client_id.clone())
            .collect()
    };

    // One after the other: A fetches and caches, B fetches its own, then both are served from
    // their own entries.
    for (pod, client_id) in [
        (Pod::default(), CLIENT_ID),
        (pod_b.clone(), CLIENT_B),
        (Pod::default(), CLIENT_ID),
        (pod_b.clone(), CLIENT_B),
    ] {
        let response = provider
            .mount(request("db-password", pod, client_id))
            .await
            .expect("mount");
        assert_eq!(response.files[0].contents, b"s3cr3t!");
    }
    assert_eq!(
        fetched_by(&emu.kv_requests(), "db-password"),
        vec![Some(CLIENT_ID.to_owned()), Some(CLIENT_B.to_owned())],
        "each identity fetched once, with its own token"
    );

    // At the same moment, on a slow vault: two fetches, one per identity.
    emu.vault(VAULT).set_latency(Duration::from_millis(200));
    let (a, b) = tokio::join!(
        provider.mount(request("together", Pod::default(), CLIENT_ID)),
        provider.mount(request("together", pod_b.clone(), CLIENT_B)),
    );
    assert_eq!(a.expect("mount A").files[0].contents, b"both");
    assert_eq!(b.expect("mount B").files[0].contents, b"both");
    let together: BTreeSet<_> = fetched_by(&emu.kv_requests(), "together")
        .into_iter()
        .collect();
    assert_eq!(
        together,
        BTreeSet::from([Some(CLIENT_ID.to_owned()), Some(CLIENT_B.to_owned())])
    );
    assert_eq!(fetched_by(&emu.kv_requests(), "together").len(), 2);
}

/// Runs of consecutive 429 answers in a vault's log, as index ranges.
fn rounds_of_429(log: &[KvRequest]) -> Vec<std::ops::Range<usize>> {
    let mut rounds = Vec::new();
    let mut start = None;
    for (i, r) in log.iter().enumerate() {
        match (r.status == 429, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                rounds.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        rounds.push(s..log.len());
    }
    rounds
}

/// Mounts of `workloads` identities, each of `objects` objects (none coalesced), against a vault
/// that allows 4 requests per 1 s window, with at most `in_flight` requests in flight per vault and
/// 100 ms of latency. When the vault starts refusing, only the requests already in flight get a
/// 429 (one round, at most the in-flight bound, not one per Mount or per queued request); nothing
/// reaches the vault until `Retry-After` has passed; then exactly one request (the probe) goes
/// first, and the next one reaches the vault only after the probe's answer came back (at least the
/// vault's latency later).
async fn throttled_vault_sees_one_round_then_one_probe(
    workloads: usize,
    objects_per_mount: usize,
    in_flight: usize,
) {
    const LATENCY: Duration = Duration::from_millis(100);
    let emu = emulator().await;
    let names: Vec<String> = (0..objects_per_mount)
        .map(|i| format!("limited-{i}"))
        .collect();
    for (i, name) in names.iter().enumerate() {
        emu.vault(VAULT).put_secret(
            name,
            plain_secret(&versioned(i), &format!("value of {name}"), 1),
        );
    }
    let mut requests = Vec::new();
    for w in 0..workloads {
        let client_id = format!("{w:08x}-1b7d-4c55-9a1e-6f0d2b3c4d5e");
        let pod = Pod {
            namespace: format!("team-{w}"),
            name: format!("app-{w}-0"),
            service_account: format!("app-{w}"),
        };
        emu.entra().add_federated_credential(
            TENANT,
            &client_id,
            ISSUER,
            &pod.subject(),
            WI_AUDIENCE,
        );
        emu.vault(VAULT).grant(&client_id);
        requests.push(
            MountBuilder::workload(&objects_named(&names))
                .param("clientID", &client_id)
                .pod(pod)
                .build(),
        );
    }
    emu.vault(VAULT)
        .set_latency(LATENCY)
        .limit_requests(4, Duration::from_secs(1));
    let provider = Provider::start(&emu, |c| c.max_concurrent_fetches = in_flight).await;
    let client = provider.client().await;
    let results = join_all(requests.into_iter().map(|r| {
        let mut client = client.clone();
        async move { client.mount(r).await }
    }))
    .await;
    for result in results {
        assert_eq!(result.expect("mount").into_inner().files.len(), names.len());
    }

    let log = emu.vault(VAULT).requests();
    let summary: Vec<(u16, Option<String>)> =
        log.iter().map(|r| (r.status, r.name.clone())).collect();
    let mut answered: BTreeMap<(Option<String>, Option<String>), usize> = BTreeMap::new();
    for r in log.iter().filter(|r| r.status == 200) {
        *answered
            .entry((r.client_id.clone(), r.name.clone()))
            .or_default() += 1;
    }
    assert_eq!(answered.len(), workloads * objects_per_mount, "{summary:?}");
    assert!(answered.values().all(|n| *n == 1), "{summary:?}");
    let rounds = rounds_of_429(&log);
    assert!(!rounds.is_empty(), "the limit was hit: {summary:?}");
    for round in &rounds {
        assert!(
            round.len() <= in_flight,
            "a round of {} 429s with at most {in_flight} requests in flight: {summary:?}",
            round.len()
        );
        let Some(probe) = log.get(round.end) else {
            continue;
        };
        assert_eq!(
            probe.status, 200,
            "the probe came after the whole Retry-After: {summary:?}"
        );
        assert!(
            probe.at.duration_since(log[round.start].at) >= Duration::from_millis(900),
            "nothing reached the vault during the waiting period: {summary:?}"
        );
        if let Some(next) = log.get(round.end + 1) {
            assert!(
                next.at.duration_since(probe.at) >= LATENCY,
                "the probe went alone ({:?} after it came another): {summary:?}",
                next.at.duration_since(probe.at)
            );
        }
    }
}

/// One Mount of 10 objects with room for all of them in flight: each throttled window costs one
/// round of at most 10 429s, then one probe.
#[tokio::test]
async fn a_throttled_vault_sees_one_round_of_429s_then_one_probe_per_waiting_period() {
    throttled_vault_sees_one_round_then_one_probe(1, 10, 32).await;
}

/// The same with more requests than in-flight slots: 4 identities × 3 objects, 2 in flight.
///
/// Regression (found by the node benchmark): a request that found the vault open and then waited
/// for an in-flight slot was sent as soon as a slot freed, even when the vault had started
/// throttling meanwhile, so every request queued for a slot got its own 429 during the waiting
/// period (a round of 8 429s with 2 in flight). `Gates::enter` now looks again after the slot.
#[tokio::test]
async fn requests_queued_for_a_slot_also_wait_when_the_vault_throttles() {
    throttled_vault_sees_one_round_then_one_probe(4, 3, 2).await;
}

/// Concurrent Mounts of one workload with the cache off (the default) share in-flight fetches, and
/// every one of them succeeds.
///
/// Regression (found by the node benchmark): the Mounts that waited for a slot
/// (`--max-concurrent-mounts`, 64) started new fetches while the waiters of the first ones were
/// still leaving, and those fetches were aborted (4 to 36 of 100 Mounts failed with "the request
/// was lost"). It needs a multi-threaded runtime, as the daemon has, to show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mounts_of_one_workload_with_the_cache_off_all_succeed() {
    const PODS: usize = 100;
    let emu = federated_emulator().await;
    let names: Vec<String> = (0..10).map(|i| format!("shared-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        emu.vault(VAULT).put_secret(
            name,
            plain_secret(&versioned(i), &format!("value of {name}"), 1),
        );
    }
    emu.vault(VAULT).set_latency(Duration::from_millis(20));
    let provider = Provider::start(&emu, |_| {}).await;
    let client = provider.client().await;
    let results = join_all((0..PODS).map(|i| {
        let request = MountBuilder::workload(&objects_named(&names))
            .pod(Pod {
                name: format!("web-{i}"),
                ..Pod::default()
            })
            .build();
        let mut client = client.clone();
        async move { client.mount(request).await }
    }))
    .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|s| s.message().to_owned()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {PODS} Mounts failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}

/// The coalescer behind it, step by step: when a flight has finished and a new flight of the same
/// key has started, a waiter of the finished flight leaving must not count against the new one.
///
/// Regression: `Waiter::drop` in `src/coalesce.rs` found the flight by key only, so the old
/// flight's waiter decremented the new flight's count to zero and aborted it; its caller got
/// `Lost` ("the request was lost (internal error)"). Flights now carry an id.
#[tokio::test]
async fn a_finished_flights_waiter_does_not_abort_the_next_flight() {
    use akv_csi_provider::coalesce::{Abandon, Coalescer, Lost};

    #[derive(Debug, PartialEq)]
    struct Failed(&'static str);
    impl Lost for Failed {
        fn lost() -> Self {
            Failed("lost")
        }
    }

    /// Polls `future` once.
    async fn poll_once<F: std::future::Future + Unpin>(future: &mut F) {
        tokio::select! {
            biased;
            _ = future => panic!("finished on the first poll"),
            () = std::future::ready(()) => {}
        }
    }

    let c = Coalescer::<&str, u32, Failed>::new(Abandon::Abort);
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    // Flight 1: one caller starts it, a second joins it.
    let mut first = Box::pin(c.run("k", async move {
        let _ = released.await;
        Ok(1)
    }));
    poll_once(&mut first).await;
    let mut second = Box::pin(c.run("k", async { Ok(2) }));
    poll_once(&mut second).await;
    // Flight 1 finishes (and leaves the map); its first caller takes the result.
    release.send(()).unwrap();
    while c.in_flight(&"k") {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(*first.await.0.as_ref().unwrap(), 1);
    // Flight 2 starts for a new caller while flight 1's second caller has not yet returned.
    let mut third = Box::pin(c.run("k", async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(3)
    }));
    poll_once(&mut third).await;
    assert_eq!(*second.await.0.as_ref().unwrap(), 1);
    // Flight 2's own caller must get flight 2's result.
    assert_eq!(third.await.0.map_err(|e| e.0), Ok(3));
}
