//! How the Kubernetes store reads: queries over many incidents read a copy that a watch
//! keeps current (as client-go's informers do), so they cost the API server nothing;
//! another replica's writes and deletes reach that copy through the watch; the reads that
//! must see every replica's writes go to the API; and while the watch cannot be opened
//! every query reads the API, so a broken watch costs speed, never a stale answer.
//! Requests are counted by the simulator as the API server counts them
//! (`apiserver_request_total{verb, resource}`).

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kube_store_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use kube_store_support::{Cluster, new_incident};
use rollbackd::store::*;
use rollbackd_core::incident::{Event, State};

const PLURAL: &str = "rollbackincidents";

fn lists(c: &Cluster) -> u64 {
    c.sim.request_count("LIST", PLURAL)
}

/// Waits until a query of `store` makes no LIST: its watch is open.
async fn until_watched(c: &Cluster, store: &dyn StateStore) {
    let t0 = Instant::now();
    loop {
        let before = lists(c);
        store.incidents(&IncidentFilter::default()).await.unwrap();
        if lists(c) == before {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the store's watch did not open within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `store`'s incident list until `done` holds (at most 5 s).
async fn until_listed(store: &dyn StateStore, what: &str, done: impl Fn(&[Incident]) -> bool) {
    let t0 = Instant::now();
    loop {
        let listed = store.incidents(&IncidentFilter::default()).await.unwrap();
        if done(&listed) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{what}: not seen within 5 s; listed {:?}",
            listed.iter().map(|i| (&i.id, i.state)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn open(store: &dyn StateStore, agent: &str, revision: u64) -> Incident {
    store
        .create_incident(
            &new_incident(agent, revision),
            Event::Start,
            Utc::now(),
            &[],
            None,
        )
        .await
        .unwrap()
}

/// Once the watch is open, the queries the daemon makes on every decision and every outbox
/// poll (lists, counts, rate limits, due rows, waiting incidents) make no LIST; another
/// replica's new incident, transition and delete reach the copy through the watch; the
/// in-flight incidents (read at start and on taking the Lease over) are read from the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_a_watched_copy_that_follows_the_other_replica() {
    let c = Cluster::start().await;
    let (a, b) = (c.store().await, c.store().await);
    let first = open(&*a, "GL-002", 1).await;
    until_watched(&c, &*a).await;
    until_watched(&c, &*b).await;

    let before = lists(&c);
    for _ in 0..20 {
        b.incidents(&IncidentFilter::default()).await.unwrap();
        b.incident_counts().await.unwrap();
        b.in_flight_count().await.unwrap();
        b.rollbacks_since(None, Utc::now() - TimeDelta::hours(1), true)
            .await
            .unwrap();
        b.outbox_due(Utc::now(), 10).await.unwrap();
        b.waiting_for_human("GL-002").await.unwrap();
        b.automatic_incident_for("GL-002", Some(1)).await.unwrap();
    }
    assert_eq!(lists(&c), before, "140 queries, no LIST");
    assert_eq!(
        b.rollbacks_since(None, Utc::now() - TimeDelta::hours(1), true)
            .await
            .unwrap(),
        1,
        "a's rollback counts in b's rate limit"
    );

    // a's next incident and a's transition reach b by the watch, with no LIST
    let second = open(&*a, "GL-003", 4).await;
    until_listed(&*b, "a's new incident", |l| {
        l.iter().any(|i| i.id == second.id)
    })
    .await;
    a.transition(&Transition::new(
        &first.id,
        Event::StepsDone,
        Utc::now(),
        "done",
    ))
    .await
    .unwrap();
    until_listed(&*b, "a's transition", |l| {
        l.iter()
            .any(|i| i.id == first.id && i.state == State::Verifying)
    })
    .await;
    assert_eq!(lists(&c), before, "seen through the watch");

    // the in-flight incidents are read from the API
    let in_flight = b.in_flight().await.unwrap();
    assert_eq!(in_flight.len(), 2);
    assert!(lists(&c) > before, "in_flight reads the API");

    // a's delete (retention) reaches b: the incident leaves b's list
    for event in [Event::Verified, Event::WatchElapsed] {
        a.transition(&Transition::new(
            &first.id,
            event,
            Utc::now() - TimeDelta::days(40),
            "",
        ))
        .await
        .unwrap();
    }
    // retention judges by the last update: write the transitions 40 days ago, prune at 30
    let pruned = a
        .prune_older_than(Utc::now() - TimeDelta::days(30))
        .await
        .unwrap();
    assert_eq!(pruned.incidents, 1);
    until_listed(&*b, "a's delete", |l| l.len() == 1 && l[0].id == second.id).await;
    c.sim.shutdown().await;
}

/// While the API refuses to open watches, every query reads the API and sees the other
/// replica's writes at once; when watches open again, the queries stop listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_watch_every_query_reads_the_api() {
    let c = Cluster::start().await;
    c.sim.refuse("WATCH", PLURAL);
    let (a, b) = (c.store().await, c.store().await);
    for revision in 1..=3 {
        let inc = open(&*a, "GL-002", revision).await;
        // no polling: the very next query sees it
        let before = lists(&c);
        let listed = b.incidents(&IncidentFilter::default()).await.unwrap();
        assert!(listed.iter().any(|i| i.id == inc.id), "{listed:?}");
        assert!(lists(&c) > before, "read from the API");
        assert_eq!(b.in_flight_count().await.unwrap(), revision as usize);
    }
    c.sim.stop_refusing();
    // the informer retries with a backoff of at most 10 s
    let t0 = Instant::now();
    loop {
        let before = lists(&c);
        b.incident_counts().await.unwrap();
        if lists(&c) == before {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the watch did not open again within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.in_flight_count().await.unwrap(), 3);
    c.sim.shutdown().await;
}

/// A write starts from the copy: one PUT, no GET, when the copy is current; a stale copy
/// (another replica wrote since) costs one refused PUT and a read, and the other write is
/// kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_starts_from_the_copy_and_a_stale_copy_costs_one_conflict() {
    let c = Cluster::start().await;
    c.sim.refuse("WATCH", PLURAL);
    let (a, b): (Arc<dyn StateStore>, Arc<dyn StateStore>) = (c.store().await, c.store().await);
    let inc = open(&*a, "GL-002", 1).await;
    let gets = || c.sim.request_count("GET", PLURAL);
    let puts = || c.sim.request_count("PUT", PLURAL);
    let (g0, p0) = (gets(), puts());
    a.transition(&Transition::new(&inc.id, Event::StepsDone, Utc::now(), ""))
        .await
        .unwrap();
    assert_eq!((gets() - g0, puts() - p0), (0, 1), "one PUT from the copy");
    // b writes; a's copy is stale (no watch tells it): refused once, read, written again
    b.audit(&AuditEntry {
        at: Utc::now(),
        actor: "bob".into(),
        action: "note".into(),
        target: inc.id.clone(),
        reason: "checked the boiler".into(),
        detail: serde_json::json!({}),
    })
    .await
    .unwrap();
    let (g0, p0) = (gets(), puts());
    let state = a
        .transition(
            &Transition::new(&inc.id, Event::Verified, Utc::now(), "").expecting(State::Verifying),
        )
        .await
        .unwrap();
    assert_eq!(state, State::Monitoring);
    assert_eq!((gets() - g0, puts() - p0), (1, 2), "a 409, a read, a PUT");
    let audit = a.audit_log(Some(&inc.id), 10).await.unwrap();
    assert!(audit.iter().any(|e| e.actor == "bob"), "b's entry kept");
    // a transition the stale copy would refuse is decided again on a fresh read
    let waiting = a
        .create_incident(
            &new_incident("GL-003", 2),
            Event::RequestApproval,
            Utc::now(),
            &[],
            None,
        )
        .await
        .unwrap();
    b.transition(
        &Transition::new(&waiting.id, Event::Approve, Utc::now(), "by bob")
            .expecting(State::AwaitingApproval),
    )
    .await
    .unwrap();
    let state = a
        .transition(
            &Transition::new(&waiting.id, Event::StepsDone, Utc::now(), "")
                .expecting(State::RollingBack),
        )
        .await
        .expect("a's copy says awaiting approval; the API says rolling back");
    assert_eq!(state, State::Verifying);
    c.sim.shutdown().await;
}
