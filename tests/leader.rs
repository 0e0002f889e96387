//! Leader election (`daemon::leader`) against the Kubernetes simulator on 127.0.0.1: one
//! leader of two, hand-over on shutdown and on expiry, stepping down when the Lease is taken,
//! "both replicas see the same breach → exactly one acts", and the leader's API URL on the
//! Lease, read by the standby.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use rollbackd::api::LeaderAddr;
use rollbackd::api::forward::LEASE_ANNOTATION;
use rollbackd::daemon::leader::{LeaderElector, from_micro_time, to_micro_time};
use rollbackd_sim::{SimConfig, SimHandle, Simulator};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NS: &str = "rollbackd";
const LEASE: &str = "rollbackd-leader";
const DURATION: Duration = Duration::from_secs(1);
const RENEW: Duration = Duration::from_millis(100);

async fn start() -> (SimHandle, kube::Client) {
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
    (sim, client)
}

struct Replica {
    cancel: CancellationToken,
    rx: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Replica {
    fn start(client: &kube::Client, id: &str) -> Replica {
        let elector = LeaderElector::new(client.clone(), NS, LEASE, id, DURATION, RENEW);
        let (tx, rx) = watch::channel(false);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(elector.run(cancel.clone(), tx));
        Replica { cancel, rx, task }
    }

    fn leading(&self) -> bool {
        *self.rx.borrow()
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .unwrap()
            .unwrap();
    }

    /// Crash: the task is aborted, nothing is released.
    fn kill(self) {
        self.task.abort();
    }
}

/// Waits until `f` holds, or panics after `within`; returns how long it took.
async fn until(within: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t0.elapsed()
}

async fn lease(client: &kube::Client) -> Lease {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get(LEASE)
        .await
        .unwrap()
}

fn holder(l: &Lease) -> Option<String> {
    l.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

#[tokio::test]
async fn two_electors_one_leader_and_hand_over_on_shutdown() {
    let (sim, client) = start().await;
    let a = Replica::start(&client, "pod-a");
    let b = Replica::start(&client, "pod-b");
    until(Duration::from_secs(2), "a leader", || {
        a.leading() || b.leading()
    })
    .await;
    // Stays exactly one over several renewals.
    for _ in 0..50 {
        assert!(a.leading() ^ b.leading(), "exactly one leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let l = lease(&client).await;
    let spec = l.spec.clone().unwrap();
    let (leader, standby, leader_id, standby_id) = if a.leading() {
        (a, b, "pod-a", "pod-b")
    } else {
        (b, a, "pod-b", "pod-a")
    };
    assert_eq!(holder(&l).as_deref(), Some(leader_id));
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    // Renewals move renewTime forward.
    let r1 = from_micro_time(spec.renew_time.as_ref().unwrap()).unwrap();
    tokio::time::sleep(RENEW * 3).await;
    let r2 = from_micro_time(
        lease(&client)
            .await
            .spec
            .unwrap()
            .renew_time
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    assert!(r2 > r1, "renewTime {r1} → {r2}");

    // Graceful stop: reports false, releases, and the standby takes over well within the
    // lease duration (on its next poll).
    let t0 = Instant::now();
    let mut leader_rx = leader.rx.clone();
    leader.stop().await;
    assert!(!*leader_rx.borrow_and_update());
    let took = until(DURATION, "standby takes over", || standby.leading()).await;
    let took_total = t0.elapsed();
    eprintln!("hand-over after graceful stop: {took_total:?} (after stop returned: {took:?})");
    assert!(took_total < DURATION, "{took_total:?}");
    let l = lease(&client).await;
    assert_eq!(holder(&l).as_deref(), Some(standby_id));
    assert_eq!(l.spec.unwrap().lease_transitions, Some(1));
    standby.stop().await;
    // The last one out leaves the Lease free.
    assert_eq!(holder(&lease(&client).await), None);
    sim.shutdown().await;
}

#[tokio::test]
async fn crashed_leader_is_replaced_after_the_lease_expires() {
    let (sim, client) = start().await;
    let a = Replica::start(&client, "pod-a");
    until(Duration::from_secs(2), "a leads", || a.leading()).await;
    let b = Replica::start(&client, "pod-b");
    tokio::time::sleep(RENEW * 3).await;
    assert!(!b.leading(), "b must wait while a renews");
    let t0 = Instant::now();
    a.kill();
    let took = until(DURATION * 2, "b takes over", || b.leading()).await;
    eprintln!("take-over after a crash: {took:?}");
    // Not before the lease could have expired (the last renewal was at most RENEW ago).
    assert!(
        took + RENEW >= DURATION - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(
        t0.elapsed() <= DURATION + Duration::from_millis(600),
        "{took:?}"
    );
    assert_eq!(holder(&lease(&client).await).as_deref(), Some("pod-b"));
    b.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn leader_steps_down_when_the_lease_is_taken() {
    let (sim, client) = start().await;
    let a = Replica::start(&client, "pod-a");
    until(Duration::from_secs(2), "a leads", || a.leading()).await;
    // Another identity takes the Lease by a direct update, with a long duration.
    let api = Api::<Lease>::namespaced(client.clone(), NS);
    let mut l = api.get(LEASE).await.unwrap();
    let spec = l.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.lease_duration_seconds = Some(30);
    spec.renew_time = Some(to_micro_time(Utc::now()).unwrap());
    api.replace(LEASE, &PostParams::default(), &l)
        .await
        .unwrap();
    let took = until(RENEW * 5, "a steps down", || !a.leading()).await;
    eprintln!("stepped down after the lease was taken: {took:?}");
    // And stays down while the intruder's lease is valid; a does not release what it no
    // longer holds.
    tokio::time::sleep(DURATION + RENEW * 2).await;
    assert!(!a.leading());
    a.stop().await;
    assert_eq!(holder(&lease(&client).await).as_deref(), Some("intruder"));
    sim.shutdown().await;
}

#[tokio::test]
async fn renewal_conflicts_are_not_leadership() {
    // Three replicas racing for a free Lease: PUTs carry the resourceVersion read, so the
    // losers get 409 and stay standbys; sampled every 2 ms, never two leaders.
    let (sim, client) = start().await;
    let rs: Vec<Replica> = ["pod-a", "pod-b", "pod-c"]
        .iter()
        .map(|id| Replica::start(&client, id))
        .collect();
    until(Duration::from_secs(2), "a leader", || {
        rs.iter().any(Replica::leading)
    })
    .await;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(800) {
        let n = rs.iter().filter(|r| r.leading()).count();
        assert!(n <= 1, "{n} leaders");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for r in rs {
        r.stop().await;
    }
    sim.shutdown().await;
}

/// The spec'd scenario at the elector's level: both replicas observe the same breach, each
/// gates its rollback on its leadership receiver, exactly one rollback happens; after a
/// hand-over the next breach is handled once, by the other replica.
#[tokio::test]
async fn same_breach_seen_by_both_replicas_rolls_back_once() {
    let (sim, client) = start().await;
    let a = Replica::start(&client, "pod-a");
    let b = Replica::start(&client, "pod-b");
    until(Duration::from_secs(2), "a leader", || {
        a.leading() || b.leading()
    })
    .await;

    let rollbacks = Arc::new(AtomicUsize::new(0));
    let by_a = Arc::new(AtomicUsize::new(0));
    let breach = |rx: &watch::Receiver<bool>, mine: &Arc<AtomicUsize>| {
        // What the daemon's evaluator does with a Rollback decision: act only as leader.
        if *rx.borrow() {
            rollbacks.fetch_add(1, Ordering::SeqCst);
            mine.fetch_add(1, Ordering::SeqCst);
        }
    };
    let by_b = Arc::new(AtomicUsize::new(0));
    breach(&a.rx, &by_a);
    breach(&b.rx, &by_b);
    assert_eq!(rollbacks.load(Ordering::SeqCst), 1);
    let first_was_a = by_a.load(Ordering::SeqCst) == 1;

    // Hand over, then a second breach is handled once, by the other replica.
    let (leader, standby) = if first_was_a { (a, b) } else { (b, a) };
    leader.stop().await;
    until(DURATION, "hand-over", || standby.leading()).await;
    let (n_a, n_b) = (by_a.load(Ordering::SeqCst), by_b.load(Ordering::SeqCst));
    let mine = if first_was_a { &by_b } else { &by_a };
    breach(&standby.rx, mine);
    assert_eq!(rollbacks.load(Ordering::SeqCst), 2);
    assert_eq!(
        by_a.load(Ordering::SeqCst) + by_b.load(Ordering::SeqCst),
        n_a + n_b + 1
    );
    assert_eq!(mine.load(Ordering::SeqCst), 1);
    standby.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn leader_steps_down_before_expiry_when_the_api_is_unreachable() {
    let (sim, client) = start().await;
    // Longer than the other tests: the margin under test is `renew_every` (400 ms here),
    // which a loaded CI machine must not eat.
    const DURATION: Duration = Duration::from_secs(2);
    const RENEW: Duration = Duration::from_millis(400);
    let elector = LeaderElector::new(client.clone(), NS, LEASE, "pod-a", DURATION, RENEW);
    let (tx, rx) = watch::channel(false);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(elector.run(cancel.clone(), tx));
    let a = Replica { cancel, rx, task };
    until(Duration::from_secs(2), "a leads", || a.leading()).await;
    let renewed = from_micro_time(
        lease(&client)
            .await
            .spec
            .unwrap()
            .renew_time
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    // The API goes away: renewals fail. A transient failure does not end leadership at
    // once, but the leader must stop before a standby could take over (renewTime +
    // lease duration).
    let t0 = Instant::now();
    sim.shutdown().await;
    tokio::time::sleep(RENEW * 2).await;
    assert!(
        a.leading(),
        "a single failed renewal is not the end of leadership"
    );
    let took = until(DURATION, "a steps down", || !a.leading()).await + RENEW * 2;
    let stepped_down_at = Utc::now();
    eprintln!(
        "stepped down {took:?} after the API went away (t0 {:?} ago)",
        t0.elapsed()
    );
    // The last renewal is the one read above or at most one more (shutdown takes a few
    // milliseconds, renewals are RENEW apart): the leader stops within the renew deadline
    // (DURATION - RENEW) of it, i.e. before that lease expires.
    let last_possible_renewal = renewed + chrono::TimeDelta::from_std(RENEW).unwrap();
    let expiry = last_possible_renewal + chrono::TimeDelta::from_std(DURATION).unwrap();
    assert!(
        stepped_down_at < expiry,
        "stepped down at {stepped_down_at}, lease (renewed at most at {last_possible_renewal}) expires {expiry}"
    );
    assert!(
        took >= DURATION / 2,
        "kept leading through transient errors: {took:?}"
    );
    a.stop().await;
}

#[tokio::test]
async fn a_replica_that_lost_the_lease_writes_nothing() {
    use rollbackd::cluster::fence::Fence;
    use rollbackd::cluster::{Cluster, ClusterError, Kind};
    use serde_json::json;

    let (sim, client) = start().await;
    sim.create(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "flags", "namespace": NS},
        "data": {"mode": "a"}
    }))
    .unwrap();
    let (term_tx, term) = watch::channel(None);
    let elector =
        LeaderElector::new(client.clone(), NS, LEASE, "pod-a", DURATION, RENEW).with_term(term_tx);
    let (tx, rx) = watch::channel(false);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(elector.run(cancel.clone(), tx));
    until(Duration::from_secs(2), "a leads", || *rx.borrow()).await;
    assert_eq!(
        *term.borrow(),
        Some(0),
        "the term is the Lease's leaseTransitions"
    );
    let cluster = Cluster::new(client.clone()).with_fence(Fence::new(
        client.clone(),
        NS,
        LEASE,
        "pod-a",
        term.clone(),
    ));
    let set = |mode: &'static str| {
        let cluster = cluster.clone();
        async move {
            cluster
                .patch(
                    Kind::ConfigMap,
                    NS,
                    "flags",
                    &kube::api::Patch::Merge(json!({"data": {"mode": mode}})),
                    false,
                )
                .await
        }
    };
    set("b").await.expect("the leader writes");
    // another replica takes the Lease over; before pod-a's elector notices, it tries a write
    let api = Api::<Lease>::namespaced(client.clone(), NS);
    let mut l = api.get(LEASE).await.unwrap();
    let spec = l.spec.as_mut().unwrap();
    spec.holder_identity = Some("pod-b".into());
    spec.lease_transitions = Some(1);
    spec.lease_duration_seconds = Some(30);
    spec.renew_time = Some(to_micro_time(Utc::now()).unwrap());
    api.replace(LEASE, &PostParams::default(), &l)
        .await
        .unwrap();
    match set("c").await {
        Err(ClusterError::Fenced(why)) => {
            assert!(
                why.contains("pod-b") || why.contains("does not hold"),
                "{why}"
            );
        }
        other => panic!("a write after losing the Lease: {other:?}"),
    }
    let cm = sim.get("v1", "ConfigMap", NS, "flags").unwrap();
    assert_eq!(
        cm["data"]["mode"], "b",
        "nothing written after the Lease was lost"
    );
    // once the elector has seen it, the term is withdrawn too
    until(RENEW * 10, "the term is withdrawn", || {
        term.borrow().is_none()
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    sim.shutdown().await;
}

/// A replica whose elector advertises `url` and publishes the holder it reads.
fn advertising(
    client: &kube::Client,
    id: &str,
    url: Option<&str>,
) -> (Replica, watch::Receiver<Option<LeaderAddr>>) {
    let (addr_tx, addr_rx) = watch::channel(None);
    let elector = LeaderElector::new(client.clone(), NS, LEASE, id, DURATION, RENEW)
        .with_advertise_url(url.map(str::to_string))
        .with_leader_addr(addr_tx);
    let (tx, rx) = watch::channel(false);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(elector.run(cancel.clone(), tx));
    (Replica { cancel, rx, task }, addr_rx)
}

fn advertised(l: &Lease) -> Option<&str> {
    l.metadata
        .annotations
        .as_ref()?
        .get(LEASE_ANNOTATION)
        .map(String::as_str)
}

#[tokio::test]
async fn the_leader_advertises_its_api_on_the_lease_and_standbys_read_it() {
    let (sim, client) = start().await;
    let (a, a_addr) = advertising(&client, "pod-a", Some("http://10.0.0.1:8080"));
    until(Duration::from_secs(2), "pod-a leads", || a.leading()).await;
    assert_eq!(
        advertised(&lease(&client).await),
        Some("http://10.0.0.1:8080")
    );
    let (b, b_addr) = advertising(&client, "pod-b", None);
    // the standby publishes the holder, its URL and when its Lease runs out
    until(Duration::from_secs(2), "pod-b reads pod-a", || {
        b_addr.borrow().as_ref().map(|l| l.identity.as_str()) == Some("pod-a")
    })
    .await;
    let seen = b_addr.borrow().clone().unwrap();
    assert_eq!(seen.url.as_deref(), Some("http://10.0.0.1:8080"));
    assert!(seen.expires > Utc::now() && seen.expires <= Utc::now() + DURATION * 2);
    assert_eq!(
        a_addr.borrow().as_ref().map(|l| l.identity.as_str()),
        Some("pod-a"),
        "the leader publishes itself"
    );
    // renewals keep the annotation
    tokio::time::sleep(RENEW * 3).await;
    assert_eq!(
        advertised(&lease(&client).await),
        Some("http://10.0.0.1:8080")
    );

    // pod-a hands over to pod-b, which advertises nothing: pod-a's URL goes with it
    a.stop().await;
    until(Duration::from_secs(2), "pod-b leads", || b.leading()).await;
    let l = lease(&client).await;
    assert_eq!(holder(&l).as_deref(), Some("pod-b"));
    assert_eq!(advertised(&l), None, "no URL of a previous holder lingers");
    assert_eq!(*a_addr.borrow(), None, "a stopped elector knows no leader");
    assert_eq!(
        b_addr.borrow().clone().map(|l| (l.identity, l.url)),
        Some(("pod-b".to_string(), None))
    );
    b.stop().await;
    sim.shutdown().await;
}
