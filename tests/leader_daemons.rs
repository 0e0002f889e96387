//! Two (or three) real daemons with leader election on one Kubernetes simulator: each replica
//! with its own SQLite store (a per-pod file), or all sharing the Kubernetes store (as
//! `deploy/` runs them); all watch the same GL-002 Deployment and scrape the same synthetic
//! agent. Only the Lease holder acts: a breach both replicas see is rolled back once, and
//! when the leader stops or crashes the standby takes the Lease and handles the next bad
//! deploy, once. On the shared store both replicas show every incident, and each message is
//! delivered once, by the leader. A standby forwards writes to the leader that advertises
//! its API on the Lease, and answers them 503 with `Retry-After` when it cannot.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use rollbackd::daemon::collect::MetricSource;
use rollbackd::daemon::leader::from_micro_time;
use rollbackd::daemon::{DaemonHandle, LeaderOptions, start};
use rollbackd::signals::scrape::Scraper;
use rollbackd::store::{
    Incident, IncidentFilter, KubeStore, SqliteStore, StateStore, Store, Synchronous,
};
use rollbackd::synthetic_agent::SyntheticAgent;
use rollbackd_core::engine::DecisionKind;
use rollbackd_core::policy::Policy;
use rollbackd_sim::SimHandle;
use serde_json::Value;
use support::world::{
    World, agent, daemon_options, deploy_image, undo_patches, wait_available_in, wait_for,
    wait_resolved_in, world_custom, world_prepared,
};

const LEASE_NS: &str = "rollbackd";
const LEASE: &str = "rollbackd-leader";
const LEASE_DURATION: Duration = Duration::from_secs(1);
const RENEW: Duration = Duration::from_millis(100);
/// The daemons' evaluation interval (see `daemon_options`).
const INTERVAL: Duration = Duration::from_millis(250);

fn image(v: &str) -> String {
    format!("registry.local/greenlang/gl-002-boiler-efficiency:{v}")
}

fn election(identity: &str) -> LeaderOptions {
    LeaderOptions {
        namespace: LEASE_NS.into(),
        lease_name: LEASE.into(),
        identity: identity.into(),
        lease_duration: LEASE_DURATION,
        renew_every: RENEW,
        advertise_url: None,
    }
}

fn scrape() -> MetricSource {
    MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap())
}

fn store_file(dir: &Path, identity: &str) -> Arc<dyn StateStore> {
    let store = Store::open(&dir.join(format!("{identity}.db")), Synchronous::Normal).unwrap();
    Arc::new(SqliteStore::new(store))
}

/// One daemon replica. One started on its own runtime can crash: its runtime is shut down,
/// every task it spawned is dropped where it stands, and nothing is released.
struct Replica {
    identity: String,
    daemon: Option<DaemonHandle>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    /// The world's own daemon, started as `identity`.
    fn first(daemon: DaemonHandle, identity: &str) -> Replica {
        Replica {
            identity: identity.into(),
            daemon: Some(daemon),
            runtime: None,
        }
    }

    /// Another replica on the world's simulator, agent and notification receiver, with its
    /// own store file in `dir`.
    async fn start(s: &Shared, dir: &Path, identity: &str, own_runtime: bool) -> Replica {
        Self::start_with(s, dir, identity, own_runtime, false).await
    }

    /// As [`Replica::start`], advertising its API on the Lease when it leads (so that
    /// standbys forward writes to it).
    async fn start_advertising(s: &Shared, dir: &Path, identity: &str) -> Replica {
        Self::start_with(s, dir, identity, false, true).await
    }

    async fn start_with(
        s: &Shared,
        dir: &Path,
        identity: &str,
        own_runtime: bool,
        advertise: bool,
    ) -> Replica {
        let (url, policy, hook_url) = (s.sim.url(), s.policy.clone(), s.hook_url.clone());
        let store = store_file(dir, identity);
        let mut leader = election(identity);
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], support::free_port()));
        if advertise {
            leader.advertise_url = Some(format!("http://{listen}"));
        }
        // The kube client's and scraper's connection tasks run where the daemon runs.
        let launch = async move {
            let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
            let mut options = daemon_options(policy, client, scrape(), hook_url);
            options.store = store;
            if advertise {
                options.listen = listen;
            }
            options.leader = Some(leader);
            start(options).await.unwrap()
        };
        let (daemon, runtime) = if own_runtime {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            (rt.spawn(launch).await.unwrap(), Some(rt))
        } else {
            (launch.await, None)
        };
        Replica {
            identity: identity.into(),
            daemon: Some(daemon),
            runtime,
        }
    }

    /// Another replica on the world's simulator, agent and notification receiver, on the
    /// Kubernetes store of the simulator.
    async fn start_on_kube(s: &Shared, identity: &str) -> Replica {
        let client =
            kube::Client::try_from(kube::Config::new(s.sim.url().parse().unwrap())).unwrap();
        let mut options = daemon_options(
            s.policy.clone(),
            client.clone(),
            scrape(),
            s.hook_url.clone(),
        );
        options.store = Arc::new(KubeStore::open(client, LEASE_NS).await.unwrap());
        options.leader = Some(election(identity));
        Replica {
            identity: identity.into(),
            daemon: Some(start(options).await.unwrap()),
            runtime: None,
        }
    }

    fn daemon(&self) -> &DaemonHandle {
        self.daemon.as_ref().unwrap()
    }

    fn store(&self) -> Arc<dyn StateStore> {
        self.daemon().store.clone()
    }

    async fn incidents(&self) -> Vec<Incident> {
        self.store()
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
    }

    /// Whether this replica's evaluation loop has evaluated anything (only a leader does).
    fn has_evaluated(&self) -> bool {
        !self.daemon().status.read().unwrap().is_empty()
    }

    /// Graceful stop: steps down, releases the Lease, waits for its tasks.
    async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Crash: every task of the replica is dropped at once; the Lease is not released.
    fn crash(mut self) {
        let rt = self
            .runtime
            .take()
            .expect("only a replica on its own runtime can crash");
        rt.shutdown_background();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        // A runtime may not be dropped (blocking) inside the test's runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn holder(client: &kube::Client) -> Option<String> {
    kube::Api::<Lease>::namespaced(client.clone(), LEASE_NS)
        .get_opt(LEASE)
        .await
        .unwrap()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Waits until the Lease names `identity`; returns how long that took.
async fn wait_holder(client: &kube::Client, identity: &str, within: Duration) -> Duration {
    let t0 = Instant::now();
    wait_for(
        &format!("{identity} to hold the Lease"),
        within,
        async || (holder(client).await.as_deref() == Some(identity)).then_some(()),
    )
    .await;
    t0.elapsed()
}

/// What the replicas share: the simulator seeded with GL-002 at v1, the synthetic agent and
/// the notification receiver.
struct Shared {
    sim: SimHandle,
    agent: SyntheticAgent,
    client: kube::Client,
    policy: Arc<Policy>,
    hook_url: String,
    hook: Arc<Mutex<Vec<Value>>>,
}

/// A world's shared parts, and its daemon as replica `pod-a`.
fn split(w: World) -> (Shared, Replica) {
    let World {
        sim,
        agent,
        daemon,
        hook,
        client,
        policy,
        hook_url,
    } = w;
    let shared = Shared {
        sim,
        agent,
        client,
        policy,
        hook_url,
        hook,
    };
    (shared, Replica::first(daemon, "pod-a"))
}

/// The shared world, with its daemon as replica `pod-a` (storing in `dir`).
async fn world_of_replicas(dir: &Path) -> (Shared, Replica) {
    let store = store_file(dir, "pod-a");
    let world = world_custom(
        agent().await,
        scrape(),
        |_| {},
        |o| {
            o.store = store;
            o.leader = Some(election("pod-a"));
        },
    )
    .await;
    split(world)
}

/// The shared world on the Kubernetes store, with its daemon as replica `pod-a`.
async fn world_of_kube_replicas() -> (Shared, Replica) {
    let world = world_prepared(
        agent().await,
        scrape(),
        |_| {},
        |sim| {
            sim.create(support::incident_crd()).unwrap();
        },
        |o| {
            o.store = Arc::new(KubeStore::new(o.client.clone(), LEASE_NS));
            o.leader = Some(election("pod-a"));
        },
    )
    .await;
    split(world)
}

/// How many times the receiver got each (incident, stage) message.
fn deliveries(s: &Shared) -> BTreeMap<(String, String), usize> {
    let mut n = BTreeMap::new();
    for m in s.hook.lock().unwrap().iter() {
        let key = (
            m["incident_id"].as_str().unwrap_or_default().to_string(),
            m["stage"].as_str().unwrap_or_default().to_string(),
        );
        *n.entry(key).or_default() += 1;
    }
    n
}

/// The incidents the receiver was told about (each replica announces its own).
fn announced_incidents(s: &Shared) -> Vec<String> {
    let mut ids: Vec<String> = s
        .hook
        .lock()
        .unwrap()
        .iter()
        .filter_map(|m| m["incident_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A bad deploy of `v` (becoming `revision`) handled by `leader`: waits for its healthy
/// window on the leader, raises the agent's error rate to 60 % (GL-002's P0 error-rate row),
/// waits for the undo PATCH number `undo`, restores the agent (the previous version is
/// healthy) and waits for the leader's incident to resolve.
async fn bad_deploy(s: &Shared, leader: &Replica, v: &str, revision: u64, undo: usize) -> Incident {
    deploy_image(
        &s.client,
        &leader.daemon().status,
        &image(v),
        revision,
        DecisionKind::None,
    )
    .await;
    s.agent.handle().set_error_ratio(0.6).unwrap();
    wait_for(
        &format!("undo PATCH number {undo}"),
        Duration::from_secs(10),
        async || (undo_patches(&s.sim).len() >= undo).then_some(()),
    )
    .await;
    s.agent.handle().set_error_ratio(0.0).unwrap();
    let inc = wait_resolved_in(
        &leader.store(),
        &format!("{}'s incident to resolve", leader.identity),
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(inc.row.as_deref(), Some("p0-error-rate"));
    assert_eq!(inc.revision, Some(revision));
    inc
}

/// Lets `n` evaluation intervals of `leader` pass (it evaluates every interval).
async fn evaluations(leader: &Replica, n: u32) {
    let status = leader.daemon().status.clone();
    let since = chrono::Utc::now();
    let until = since + chrono::TimeDelta::from_std(INTERVAL * n).unwrap();
    wait_for(
        &format!("{n} evaluation intervals"),
        INTERVAL * n + Duration::from_secs(10),
        async || {
            let s = status.read().unwrap().get("GL-002").cloned()?;
            (s.evaluated_at? >= until).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_replicas_see_the_breach_one_rolls_back_and_the_standby_takes_over_a_stopped_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (s, a) = world_of_replicas(dir.path()).await;
    let b = Replica::start(&s, dir.path(), "pod-b", false).await;

    // Exactly one holds the Lease, and only it evaluates.
    let leader_id = wait_for("a Lease holder", Duration::from_secs(5), async || {
        holder(&s.client).await
    })
    .await;
    let (leader, standby) = if leader_id == a.identity {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(leader.identity, leader_id);
    wait_available_in(&s.sim, 3).await;

    // The bad deploy: both replicas watch it and read the same agent, one rolls it back.
    let first = bad_deploy(&s, &leader, "v2", 2, 1).await;
    // Several evaluation intervals later, still one rollback: the standby did not act.
    evaluations(&leader, 8).await;
    assert_eq!(undo_patches(&s.sim).len(), 1, "exactly one undo PATCH");
    assert_eq!(
        leader
            .incidents()
            .await
            .iter()
            .map(|i| &i.id)
            .collect::<Vec<_>>(),
        [first.id.as_str()],
        "the leader's store holds the one incident"
    );
    assert!(
        standby.incidents().await.is_empty(),
        "the standby opened no incident: {:?}",
        standby.incidents().await
    );
    assert!(!standby.has_evaluated(), "a standby decides nothing");
    assert_eq!(holder(&s.client).await.as_deref(), Some(leader_id.as_str()));
    assert_eq!(
        announced_incidents(&s),
        [first.id.as_str()],
        "announced once"
    );

    // The leader stops: it releases the Lease and the standby takes it on its next poll.
    let t0 = Instant::now();
    leader.stop().await;
    wait_holder(&s.client, &standby.identity, LEASE_DURATION + RENEW).await;
    eprintln!(
        "graceful hand-over to {} took {:?}",
        standby.identity,
        t0.elapsed()
    );

    // A new bad deploy (v1 was renumbered 3 by the undo, so v3 is revision 4) is rolled
    // back exactly once, by the former standby.
    let second = bad_deploy(&s, &standby, "v3", 4, 2).await;
    evaluations(&standby, 8).await;
    assert_eq!(undo_patches(&s.sim).len(), 2, "one more undo PATCH");
    assert_eq!(
        standby
            .incidents()
            .await
            .iter()
            .map(|i| &i.id)
            .collect::<Vec<_>>(),
        [&second.id]
    );
    let mut both = vec![first.id.clone(), second.id.clone()];
    both.sort();
    assert_eq!(announced_incidents(&s), both);
    let deploy = s
        .sim
        .get(
            "apps/v1",
            "Deployment",
            "greenlang",
            "gl-002-boiler-efficiency",
        )
        .unwrap();
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        image("v1")
    );
    standby.stop().await;
    assert_eq!(
        holder(&s.client).await,
        None,
        "the last one out frees the Lease"
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_once_its_lease_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (s, a) = world_of_replicas(dir.path()).await;
    wait_holder(&s.client, "pod-a", Duration::from_secs(5)).await;
    // pod-b runs on its own runtime so that it can crash; a rolling restart makes it the
    // leader (pod-a stops, releasing the Lease) and brings up pod-c as its standby.
    let b = Replica::start(&s, dir.path(), "pod-b", true).await;
    a.stop().await;
    wait_holder(&s.client, "pod-b", LEASE_DURATION + RENEW).await;
    let c = Replica::start(&s, dir.path(), "pod-c", false).await;
    wait_available_in(&s.sim, 3).await;
    let b_store = b.store();

    // pod-b crashes: nothing releases the Lease; pod-c takes it once it expires.
    let t0 = Instant::now();
    b.crash();
    let api = kube::Api::<Lease>::namespaced(s.client.clone(), LEASE_NS);
    let mut last_renewal_of_b = None;
    let taken = wait_for("pod-c to take the Lease", LEASE_DURATION * 3, async || {
        let spec = api.get(LEASE).await.unwrap().spec.unwrap();
        match spec.holder_identity.as_deref() {
            Some("pod-b") => {
                last_renewal_of_b = spec.renew_time.as_ref().and_then(from_micro_time);
                None
            }
            Some("pod-c") => Some(spec),
            other => panic!("unexpected holder {other:?}"),
        }
    })
    .await;
    let took = t0.elapsed();
    eprintln!("take-over after a crash took {took:?}");
    let renewed = last_renewal_of_b.expect("pod-b's Lease seen after the crash");
    let acquired = from_micro_time(taken.acquire_time.as_ref().unwrap()).unwrap();
    let waited = (acquired - renewed).to_std().unwrap();
    // Not before pod-b's Lease expired (nothing released it), and within a poll of that.
    assert!(
        waited >= LEASE_DURATION,
        "pod-c took the Lease {waited:?} after pod-b's last renewal"
    );
    assert!(
        waited <= LEASE_DURATION + RENEW + Duration::from_millis(500),
        "pod-c took the Lease {waited:?} after pod-b's last renewal"
    );
    // Created by pod-a, released to pod-b, expired to pod-c.
    assert_eq!(taken.lease_transitions, Some(2));

    // The next bad deploy is rolled back exactly once, by pod-c.
    let inc = bad_deploy(&s, &c, "v2", 2, 1).await;
    evaluations(&c, 8).await;
    assert_eq!(undo_patches(&s.sim).len(), 1, "exactly one undo PATCH");
    assert_eq!(
        c.incidents()
            .await
            .iter()
            .map(|i| &i.id)
            .collect::<Vec<_>>(),
        [&inc.id]
    );
    assert!(
        b_store
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(announced_incidents(&s), [inc.id.as_str()]);
    c.stop().await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_the_kubernetes_store_show_every_incident_and_announce_it_once() {
    let (s, a) = world_of_kube_replicas().await;
    let b = Replica::start_on_kube(&s, "pod-b").await;
    let leader_id = wait_for("a Lease holder", Duration::from_secs(5), async || {
        holder(&s.client).await
    })
    .await;
    let (leader, standby) = if leader_id == a.identity {
        (a, b)
    } else {
        (b, a)
    };
    wait_available_in(&s.sim, 3).await;

    // One rollback, by the leader; both replicas show the one incident.
    let first = bad_deploy(&s, &leader, "v2", 2, 1).await;
    evaluations(&leader, 8).await;
    assert_eq!(undo_patches(&s.sim).len(), 1, "exactly one undo PATCH");
    for r in [&leader, &standby] {
        let ids: Vec<String> = r.incidents().await.into_iter().map(|i| i.id).collect();
        assert_eq!(
            ids,
            std::slice::from_ref(&first.id),
            "{} shows the one incident",
            r.identity
        );
    }
    assert!(!standby.has_evaluated(), "a standby decides nothing");
    // every message of it delivered, each once: the standby's worker sent none
    let resolved = (first.id.clone(), "resolved".to_string());
    wait_for(
        "the resolved message",
        Duration::from_secs(10),
        async || deliveries(&s).contains_key(&resolved).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = deliveries(&s);
    assert!(sent.len() >= 3, "{sent:?}");
    assert!(
        sent.values().all(|n| *n == 1),
        "each message once: {sent:?}"
    );

    // The leader stops; the standby takes over with the store as it was, and rolls back
    // the next bad deploy once.
    leader.stop().await;
    wait_holder(&s.client, &standby.identity, LEASE_DURATION + RENEW).await;
    let second = bad_deploy(&s, &standby, "v3", 4, 2).await;
    evaluations(&standby, 8).await;
    assert_eq!(undo_patches(&s.sim).len(), 2, "one more undo PATCH");
    let mut ids: Vec<String> = standby
        .incidents()
        .await
        .into_iter()
        .map(|i| i.id)
        .collect();
    ids.sort();
    let mut both = vec![first.id.clone(), second.id.clone()];
    both.sort();
    assert_eq!(ids, both, "the former standby shows both incidents");
    let resolved = (second.id.clone(), "resolved".to_string());
    wait_for(
        "the second resolved message",
        Duration::from_secs(10),
        async || deliveries(&s).contains_key(&resolved).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = deliveries(&s);
    assert!(
        sent.values().all(|n| *n == 1),
        "each message once: {sent:?}"
    );
    let table = s
        .sim
        .get(
            "rollbackd.io/v1alpha1",
            "RollbackIncident",
            LEASE_NS,
            &second.id.to_lowercase(),
        )
        .unwrap();
    assert_eq!(table["status"]["state"], "resolved");
    standby.stop().await;
    s.sim.shutdown().await;
}

/// An Alertmanager (payload version 4) notification of one firing GL-002 alert.
fn alertmanager_payload() -> Value {
    serde_json::json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"GL002CosmeticIssue\"}",
        "status": "firing",
        "receiver": "rollbackd",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "GL002CosmeticIssue", "agent": "GL-002", "condition": "cosmetic_issue"},
            "annotations": {"summary": "a label is misaligned"},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "c0ffee0123456789"
        }]
    })
}

async fn post(http: &reqwest::Client, r: &Replica, path: &str, body: &Value) -> (u16, Value) {
    let resp = http
        .post(format!("http://{}{path}", r.daemon().api_addr))
        .bearer_auth(support::world::TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

/// As [`post`], with the `Retry-After` header.
async fn post_raw(
    http: &reqwest::Client,
    r: &Replica,
    path: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let resp = http
        .post(format!("http://{}{path}", r.daemon().api_addr))
        .bearer_auth(support::world::TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (code, retry_after, resp.json().await.unwrap_or(Value::Null))
}

async fn get_status(http: &reqwest::Client, r: &Replica, path: &str) -> u16 {
    http.get(format!("http://{}{path}", r.daemon().api_addr))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Delivers `alert` to `r` as Alertmanager would: retried while it answers 503 (its
/// leadership may be reported a moment after the Lease names it).
async fn deliver(http: &reqwest::Client, r: &Replica, alert: &Value) -> Value {
    wait_for(
        &format!("{} to take the webhook", r.identity),
        Duration::from_secs(5),
        async || {
            let (code, body) = post(http, r, "/api/v1/alerts", alert).await;
            assert!(code == 200 || code == 503, "{code}: {body}");
            (code == 200).then_some(body)
        },
    )
    .await
}

async fn recorded_alerts(r: &Replica) -> usize {
    r.store()
        .alerts_since(None, chrono::DateTime::UNIX_EPOCH)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_forwards_writes_to_the_leader_or_answers_503_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    // pod-a advertises no API URL on the Lease: its standby cannot forward to it
    let (s, a) = world_of_replicas(dir.path()).await;
    wait_holder(&s.client, "pod-a", Duration::from_secs(5)).await;
    let b = Replica::start_advertising(&s, dir.path(), "pod-b").await;
    let http = reqwest::Client::new();
    let alert = alertmanager_payload();

    // Alertmanager reaches the standby: 503 with Retry-After and a JSON error saying why,
    // nothing recorded in the standby's store, and the standby stays live and ready.
    // (until pod-b has read the Lease once it knows no leader at all: also a 503)
    let started = std::time::Instant::now();
    let mut attempts = 0;
    let (code, retry_after, body) = loop {
        attempts += 1;
        let answer = post_raw(&http, &b, "/api/v1/alerts", &alert).await;
        let read_the_lease = answer.2["error"]
            .as_str()
            .is_some_and(|e| !e.contains("knows no live leader"));
        if read_the_lease || started.elapsed() > Duration::from_secs(5) {
            break answer;
        }
        assert_eq!(answer.0, 503, "{}", answer.2);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"));
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("not the leader") && error.contains("pod-a advertises no API URL"),
        "{body}"
    );
    assert_eq!(recorded_alerts(&b).await, 0);
    assert_eq!(get_status(&http, &b, "/healthz").await, 200);
    assert_eq!(get_status(&http, &b, "/readyz").await, 200);
    assert!(
        b.daemon().metrics.render().contains(&format!(
            "rollbackd_webhook_requests_total{{code=\"503\"}} {attempts}"
        )),
        "each refusal counted once"
    );
    // So does an operator pausing automation: a pause the leader never saw would be worse
    // than a refusal.
    let reason = serde_json::json!({"reason": "maintenance"});
    let (code, body) = post(&http, &b, "/api/v1/pause", &reason).await;
    assert_eq!(code, 503, "{body}");
    assert!(b.store().pauses().await.unwrap().is_empty());

    // Retried, it reaches the leader, which records it.
    let body = deliver(&http, &a, &alert).await;
    assert_eq!(body["new"], 1, "{body}");
    assert_eq!(recorded_alerts(&a).await, 1);

    // After a hand-over pod-b leads, advertising its API; a new standby, pod-c, forwards
    // the webhook and an operator's pause to it: both land in pod-b's store (each replica
    // has its own SQLite file here), none in pod-c's.
    a.stop().await;
    wait_holder(&s.client, "pod-b", LEASE_DURATION + RENEW).await;
    let c = Replica::start(&s, dir.path(), "pod-c", false).await;
    let second = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "rollbackd",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "GL002CosmeticIssue", "agent": "GL-002", "condition": "cosmetic_issue", "n": "2"},
            "startsAt": "2026-01-01T00:00:00Z",
            "fingerprint": "c0ffee0123456790"
        }]
    });
    // pod-c forwards once its elector has read pod-b's Lease (503 until then)
    let (forwarded_to, body) = wait_for(
        "pod-c to forward the webhook",
        Duration::from_secs(5),
        async || {
            let resp = http
                .post(format!("http://{}/api/v1/alerts", c.daemon().api_addr))
                .json(&second)
                .send()
                .await
                .unwrap();
            let to = resp
                .headers()
                .get("x-rollbackd-forwarded-to")
                .map(|v| v.to_str().unwrap().to_string());
            let code = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            assert!(code == 200 || code == 503, "{code}: {body}");
            (code == 200).then_some((to, body))
        },
    )
    .await;
    assert_eq!(forwarded_to.as_deref(), Some("pod-b"));
    assert_eq!(body["new"], 1, "{body}");
    assert_eq!(recorded_alerts(&b).await, 1);
    assert_eq!(recorded_alerts(&c).await, 0);
    let (code, body) = post(&http, &c, "/api/v1/agents/GL-002/pause", &reason).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["by"], "oncall");
    assert_eq!(b.store().pauses().await.unwrap().len(), 1);
    assert!(c.store().pauses().await.unwrap().is_empty());
    assert!(
        c.daemon()
            .metrics
            .render()
            .contains("rollbackd_forwarded_requests_total{outcome=\"200\"} 2")
    );
    c.stop().await;
    b.stop().await;
    s.sim.shutdown().await;
}
