//! The SQLite store on a real file: incidents survive reopening, transitions are
//! compare-and-set, the outbox keeps per-target order, alerts are deduplicated.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use rollbackd::store::*;
use rollbackd_core::incident::{Event, State};
use serde_json::json;

fn t(s: i64) -> DateTime<Utc> {
    "2025-11-17T14:30:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(s)
}

fn new_incident(agent: &str) -> NewIncident {
    NewIncident {
        agent: agent.into(),
        namespace: "greenlang".into(),
        workload: "gl-002-boiler-efficiency".into(),
        revision: Some(12),
        from_image: Some("ghcr.io/greenlang/gl-002:v1.2.5".into()),
        row: Some("p0-error-rate".into()),
        severity: Some("P0".into()),
        method: Some("quick".into()),
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "P0 p0-error-rate: error_rate=0.6 > 0.5".into(),
        decision: json!({"decision": "rollback"}),
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: Some(t(-600)),
    }
}

fn outbox(stage: &str) -> NewOutbox {
    NewOutbox {
        target_key: "slack:#gl-002-incidents".into(),
        target: json!({"slack": {"channel": "#gl-002-incidents"}}),
        message: json!({"stage": stage}),
    }
}

#[test]
fn incident_lifecycle_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollbackd.db");
    let id = {
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        let inc = store
            .create_incident(
                &new_incident("GL-002"),
                Event::Start,
                t(0),
                &[outbox("initiated")],
                None,
            )
            .unwrap();
        assert_eq!(inc.state, State::RollingBack);
        assert_eq!(inc.id, "gl-002-20251117T143000Z-1");
        store
            .transition(
                &Transition::new(&inc.id, Event::StepsDone, t(60), "undo done")
                    .expecting(State::RollingBack),
            )
            .unwrap();
        inc.id
    };
    let store = Store::open(&path, Synchronous::Normal).unwrap();
    let inc = store.incident(&id).unwrap().unwrap();
    assert_eq!(inc.state, State::Verifying);
    assert_eq!(inc.revision, Some(12));
    let transitions = store.transitions(&id).unwrap();
    let path: Vec<_> = transitions
        .iter()
        .map(|t| (t.event.as_str(), t.to))
        .collect();
    assert_eq!(
        path,
        [
            ("start", State::RollingBack),
            ("steps_done", State::Verifying)
        ]
    );
    assert_eq!(store.in_flight().unwrap().len(), 1);
    assert_eq!(store.in_flight_count().unwrap(), 1);
    assert_eq!(store.incident_counts().unwrap(), [(State::Verifying, 1)]);
    assert_eq!(store.outbox_for(&id).unwrap().len(), 1);
}

#[test]
fn transitions_are_compare_and_set_and_follow_the_lifecycle() {
    let store = Store::in_memory().unwrap();
    let inc = store
        .create_incident(
            &new_incident("GL-008"),
            Event::RequestApproval,
            t(0),
            &[],
            None,
        )
        .unwrap();
    assert_eq!(inc.state, State::AwaitingApproval);
    store
        .transition(
            &Transition::new(&inc.id, Event::Cancel, t(1), "by alice")
                .expecting(State::AwaitingApproval),
        )
        .unwrap();
    // an approve that raced the cancel fails cleanly and changes nothing
    let err = store
        .transition(
            &Transition::new(&inc.id, Event::Approve, t(2), "by bob")
                .expecting(State::AwaitingApproval),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Concurrent { .. }), "{err}");
    let err = store
        .transition(&Transition::new(&inc.id, Event::Approve, t(2), "by bob"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot Approve an incident that is cancelled"
    );
    assert_eq!(
        store.incident(&inc.id).unwrap().unwrap().state,
        State::Cancelled
    );
    assert_eq!(store.transitions(&inc.id).unwrap().len(), 2);
    // cancelled is finished: nothing to resume after a restart
    assert!(store.in_flight().unwrap().is_empty());
    assert_eq!(store.in_flight_count().unwrap(), 0);
    assert_eq!(store.incident_counts().unwrap(), [(State::Cancelled, 1)]);
}

#[test]
fn outbox_releases_one_row_per_incident_and_target_in_order() {
    let store = Store::in_memory().unwrap();
    let a = store
        .create_incident(
            &new_incident("GL-002"),
            Event::Start,
            t(0),
            &[outbox("initiated")],
            None,
        )
        .unwrap();
    store
        .transition(
            &Transition::new(&a.id, Event::StepsDone, t(1), "").notifying(&[outbox("in_progress")]),
        )
        .unwrap();
    let b = store
        .create_incident(
            &new_incident("GL-009"),
            Event::Start,
            t(2),
            &[outbox("initiated")],
            None,
        )
        .unwrap();
    let due = store.outbox_due(t(10), 10).unwrap();
    let ids: Vec<_> = due
        .iter()
        .map(|r| (r.incident_id.as_str(), r.message["stage"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [(a.id.as_str(), "initiated"), (b.id.as_str(), "initiated")]
    );
    // a failing first message holds back the second of the same incident only
    store
        .outbox_retry(due[0].id, 1, t(100), "HTTP 500")
        .unwrap();
    store.outbox_sent(due[1].id, t(10)).unwrap();
    assert!(store.outbox_due(t(11), 10).unwrap().is_empty());
    store.outbox_sent(due[0].id, t(100)).unwrap();
    let next = store.outbox_due(t(100), 10).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].message["stage"], "in_progress");
    store
        .save_thread(
            &a.id,
            "slack:#gl-002-incidents",
            &json!({"channel": "C1", "ts": "1.2"}),
        )
        .unwrap();
    assert_eq!(
        store
            .thread(&a.id, "slack:#gl-002-incidents")
            .unwrap()
            .unwrap()["ts"],
        "1.2"
    );
}

#[test]
fn alerts_are_recorded_once_and_unmatched_ones_are_kept() {
    let store = Store::in_memory().unwrap();
    let alert = |fp: &str, status: &str, agent: Option<&str>| AlertRecord {
        fingerprint: fp.into(),
        status: status.into(),
        starts_at: t(0),
        ends_at: None,
        agent: agent.map(str::to_string),
        labels: [("alertname".to_string(), "X".to_string())].into(),
        annotations: BTreeMap::new(),
    };
    let batch = [
        alert("a", "firing", Some("GL-002")),
        alert("b", "firing", None),
    ];
    assert_eq!(store.record_alerts(&batch, t(1)).unwrap(), [true, true]);
    assert_eq!(
        store.record_alerts(&batch, t(2)).unwrap(),
        [false, false],
        "redelivery"
    );
    assert_eq!(
        store
            .record_alerts(&[alert("a", "resolved", Some("GL-002"))], t(3))
            .unwrap(),
        [true]
    );
    assert_eq!(
        store.alerts_since(Some(None), t(0)).unwrap().len(),
        1,
        "unmatched"
    );
    assert_eq!(
        store
            .alerts_since(Some(Some("GL-002")), t(0))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(store.alerts_since(None, t(0)).unwrap().len(), 3);
    // group commit: several requests in one transaction, each told what was new; the same
    // alert in two requests of one commit is new once
    let fresh = store
        .record_alert_groups(
            &[
                vec![alert("c", "firing", Some("GL-002"))],
                vec![
                    alert("c", "firing", Some("GL-002")),
                    alert("a", "firing", Some("GL-002")),
                ],
                vec![],
            ],
            t(4),
        )
        .unwrap();
    assert_eq!(fresh, [vec![true], vec![false, false], vec![]]);
    assert_eq!(store.alerts_since(None, t(0)).unwrap().len(), 4);
}

#[test]
fn rate_limit_counts_and_pauses() {
    let store = Store::in_memory().unwrap();
    store
        .create_incident(&new_incident("GL-002"), Event::Start, t(0), &[], None)
        .unwrap();
    let mut dry = new_incident("GL-002");
    dry.dry_run = true;
    store
        .create_incident(&dry, Event::Start, t(1), &[], None)
        .unwrap();
    store
        .create_incident(
            &new_incident("GL-009"),
            Event::RequestApproval,
            t(2),
            &[],
            None,
        )
        .unwrap();
    assert_eq!(
        store.rollbacks_since(Some("GL-002"), t(-10), true).unwrap(),
        1,
        "dry runs do not count"
    );
    assert_eq!(store.rollbacks_since(None, t(-10), true).unwrap(), 1);
    assert_eq!(store.rollbacks_since(None, t(5), true).unwrap(), 0);
    store
        .pause(&Pause {
            scope: "GL-002".into(),
            paused_by: "alice".into(),
            reason: "deploy freeze".into(),
            at: t(3),
        })
        .unwrap();
    assert_eq!(store.paused("GL-002").unwrap().unwrap().paused_by, "alice");
    assert!(store.paused("GL-009").unwrap().is_none());
    store
        .pause(&Pause {
            scope: GLOBAL.into(),
            paused_by: "bob".into(),
            reason: "incident".into(),
            at: t(4),
        })
        .unwrap();
    assert_eq!(store.paused("GL-009").unwrap().unwrap().scope, "global");
    assert!(store.resume(GLOBAL).unwrap());
    assert!(!store.resume(GLOBAL).unwrap());
}

#[test]
fn steps_and_audit_and_backups() {
    let store = Store::in_memory().unwrap();
    let inc = store
        .create_incident(&new_incident("GL-002"), Event::Start, t(0), &[], None)
        .unwrap();
    let mut step = StepRow {
        incident_id: inc.id.clone(),
        index: 0,
        workload: "gl-002".into(),
        name: "undo".into(),
        kind: "undo".into(),
        state: "started".into(),
        started_at: Some(t(1)),
        finished_at: None,
        detail: json!(null),
    };
    store.save_step(&step).unwrap();
    step.state = "done".into();
    step.started_at = Some(t(5));
    step.finished_at = Some(t(2));
    store.save_step(&step).unwrap();
    let steps = store.steps(&inc.id).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].state.as_str(), steps[0].started_at),
        ("done", Some(t(1))),
        "start time kept"
    );
    store
        .audit(&AuditEntry {
            at: t(3),
            actor: "alice".into(),
            action: "rollback.approve".into(),
            target: inc.id.clone(),
            reason: "ok".into(),
            detail: json!({}),
        })
        .unwrap();
    assert_eq!(
        store.audit_log(Some(&inc.id), 10).unwrap()[0].actor,
        "alice"
    );
    store
        .save_backup(
            &inc.id,
            "Deployment",
            "greenlang",
            "gl-002",
            &json!({"spec": {}}),
            t(1),
        )
        .unwrap();
    assert_eq!(store.backups(&inc.id).unwrap().len(), 1);
}

/// Drives an incident opened with `Event::Start` to `resolved` at `at`.
fn resolve(store: &Store, id: &str, at: DateTime<Utc>) {
    for event in [Event::StepsDone, Event::Verified, Event::WatchElapsed] {
        store
            .transition(&Transition::new(id, event, at, ""))
            .unwrap();
    }
    assert_eq!(store.incident(id).unwrap().unwrap().state, State::Resolved);
}

fn audit_at(target: &str, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        at,
        actor: "alice".into(),
        action: "rollback.approve".into(),
        target: target.into(),
        reason: String::new(),
        detail: json!({}),
    }
}

#[test]
fn retention_deletes_what_is_old_and_finished_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("rollbackd.db"), Synchronous::Normal).unwrap();
    let open = |agent: &str| {
        let inc = store
            .create_incident(
                &new_incident(agent),
                Event::Start,
                t(0),
                &[outbox("initiated")],
                None,
            )
            .unwrap();
        store
            .save_step(&StepRow {
                incident_id: inc.id.clone(),
                index: 0,
                workload: "gl-002".into(),
                name: "undo".into(),
                kind: "undo".into(),
                state: "done".into(),
                started_at: Some(t(1)),
                finished_at: Some(t(2)),
                detail: json!(null),
            })
            .unwrap();
        store
            .save_backup(
                &inc.id,
                "Deployment",
                "greenlang",
                "gl-002",
                &json!({}),
                t(1),
            )
            .unwrap();
        store.audit(&audit_at(&inc.id, t(3))).unwrap();
        inc.id
    };
    // old and resolved, its notification delivered: goes with everything it owns
    let old = open("GL-002");
    resolve(&store, &old, t(100));
    // old and resolved, but a notification still pending: stays until delivered
    let undelivered = open("GL-009");
    resolve(&store, &undelivered, t(100));
    // old but still rolling back: stays, with its backup and audit
    let in_flight = open("GL-008");
    // resolved recently: stays
    let recent = open("GL-001");
    resolve(&store, &recent, t(2000));
    for row in store.outbox_due(t(10), 100).unwrap() {
        if row.incident_id != undelivered {
            store.outbox_sent(row.id, t(10)).unwrap();
        }
    }
    store.audit(&audit_at("global", t(5))).unwrap();
    store.audit(&audit_at("global", t(1500))).unwrap();
    let alert = |fp: &str| AlertRecord {
        fingerprint: fp.into(),
        status: "firing".into(),
        starts_at: t(0),
        ends_at: None,
        agent: Some("GL-002".into()),
        labels: [("alertname".to_string(), "X".to_string())].into(),
        annotations: BTreeMap::new(),
    };
    store.record_alerts(&[alert("old")], t(1)).unwrap();
    store.record_alerts(&[alert("new")], t(1500)).unwrap();

    let pruned = store.prune_older_than(t(1000)).unwrap();
    assert_eq!(
        pruned,
        Pruned {
            incidents: 1,
            backups: 1,
            // the old incident's "initiated"; kept incidents keep their whole record
            outbox: 1,
            // the old incident's approval and the old global entry
            audit: 2,
            alerts: 1,
        }
    );
    assert!(store.incident(&old).unwrap().is_none());
    assert!(store.transitions(&old).unwrap().is_empty());
    assert!(store.steps(&old).unwrap().is_empty());
    assert!(store.backups(&old).unwrap().is_empty());
    assert!(store.audit_log(Some(&old), 10).unwrap().is_empty());
    for kept in [&undelivered, &in_flight, &recent] {
        assert!(store.incident(kept).unwrap().is_some(), "{kept}");
        assert_eq!(store.backups(kept).unwrap().len(), 1, "{kept}");
        assert_eq!(store.steps(kept).unwrap().len(), 1, "{kept}");
        assert_eq!(store.audit_log(Some(kept), 10).unwrap().len(), 1, "{kept}");
    }
    assert_eq!(
        store.outbox_due(t(2000), 100).unwrap().len(),
        1,
        "pending stays"
    );
    let audit = store.audit_log(Some("global"), 10).unwrap();
    assert_eq!(audit.iter().map(|a| a.at).collect::<Vec<_>>(), [t(1500)]);
    let alerts = store.alerts_since(None, t(0)).unwrap();
    assert_eq!(alerts.len(), 1);
    // a second pass finds nothing more; once delivered, the other old incident goes too
    assert_eq!(store.prune_older_than(t(1000)).unwrap().total(), 0);
    for row in store.outbox_due(t(2000), 100).unwrap() {
        store.outbox_sent(row.id, t(2000)).unwrap();
    }
    let later = store.prune_older_than(t(1000)).unwrap();
    assert_eq!((later.incidents, later.backups), (1, 1));
    assert!(store.incident(&undelivered).unwrap().is_none());
}
