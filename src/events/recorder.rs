//! The recorder: callers hand events to [`EventRecorder::record`] (never waiting: a full
//! queue drops and counts, as client-go's broadcaster does), and one task aggregates them
//! ([`Correlator`]) and writes `events.k8s.io/v1` Events, looking up each regarding
//! object's uid once so `kubectl describe` finds them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use kube::api::Patch;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::correlator::{Correlator, NewEvent, Regarding, Verdict, Write};
use crate::channel::{BoundedTx, bounded};
use crate::cluster::{Cluster, ClusterError, Kind};
use crate::metrics::Metrics;
use crate::text::{cap, truncate_chars};

/// `reportingController` of every event rollbackd writes.
pub const CONTROLLER: &str = "rollbackd.io/rollbackd";
/// Events waiting to be written; more are dropped (and counted).
pub const QUEUE: usize = 1000;
/// The API server refuses a longer `note`.
pub const NOTE_MAX_BYTES: usize = 1024;
/// How often ended or long series are written.
const TICK: Duration = Duration::from_secs(30);

/// Where events go; cheap to clone. A recorder built with [`EventRecorder::off`] drops
/// everything silently.
#[derive(Debug, Clone, Default)]
pub struct EventRecorder {
    tx: Option<BoundedTx<NewEvent>>,
}

impl EventRecorder {
    /// A recorder that records nothing (no cluster, or events turned off).
    pub fn off() -> Self {
        EventRecorder { tx: None }
    }

    /// Queues an event without waiting.
    pub fn record(&self, event: NewEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }

    /// Whether events are recorded at all.
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }
}

/// Starts the recorder's task, writing through `cluster` as `instance` (this replica)
/// until `cancel`.
pub fn start(
    cluster: Cluster,
    instance: String,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> (EventRecorder, impl std::future::Future<Output = ()>) {
    let (tx, rx) = bounded("events", QUEUE, metrics.clone());
    let writer = Writer {
        cluster,
        instance,
        metrics,
        uids: HashMap::new(),
    };
    (EventRecorder { tx: Some(tx) }, run(rx, writer, cancel))
}

async fn run(mut rx: mpsc::Receiver<NewEvent>, mut writer: Writer, cancel: CancellationToken) {
    let mut correlator = Correlator::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let writes = tokio::select! {
            _ = cancel.cancelled() => return,
            event = rx.recv() => match event {
                None => return,
                Some(event) => match correlator.observe(event) {
                    Verdict::Write(w) => vec![*w],
                    Verdict::Counted => {
                        writer.metrics.inc("rollbackd_events_total", &["counted"]);
                        vec![]
                    }
                    Verdict::Spam => {
                        writer.metrics.inc("rollbackd_events_total", &["spam"]);
                        vec![]
                    }
                },
            },
            _ = tick.tick() => correlator.tick(Utc::now()),
        };
        for w in writes {
            writer.write(w).await;
        }
    }
}

struct Writer {
    cluster: Cluster,
    instance: String,
    metrics: Arc<Metrics>,
    /// Each regarding object's uid (`None`: not found when looked up).
    uids: HashMap<Regarding, Option<String>>,
}

impl Writer {
    async fn write(&mut self, write: Write) {
        let outcome = match &write {
            Write::Create { name, event } => self.create(name, event, None).await,
            Write::Series {
                name,
                event,
                count,
                last_observed,
            } => {
                let series = series(*count, *last_observed);
                let patch = Patch::Merge(json!({ "series": series }));
                let ns = &event.regarding.namespace;
                match self
                    .cluster
                    .patch(Kind::Event, ns, name, &patch, false)
                    .await
                {
                    Err(ClusterError::NotFound { .. }) => {
                        self.create(name, event, Some(series)).await
                    }
                    other => other.map(|_| ()),
                }
            }
        };
        match outcome {
            Ok(()) => self.metrics.inc("rollbackd_events_total", &["written"]),
            Err(e) => {
                self.metrics.inc("rollbackd_events_total", &["failed"]);
                tracing::warn!(error = %e, "could not write a Kubernetes Event");
            }
        }
    }

    async fn create(
        &mut self,
        name: &str,
        event: &NewEvent,
        series: Option<Value>,
    ) -> Result<(), ClusterError> {
        let uid = self.uid(&event.regarding).await;
        let body = event_object(name, event, &self.instance, uid.as_deref(), series);
        self.cluster
            .create(Kind::Event, &event.regarding.namespace, &body)
            .await
            .map(|_| ())
    }

    async fn uid(&mut self, r: &Regarding) -> Option<String> {
        if let Some(uid) = self.uids.get(r) {
            return uid.clone();
        }
        let kind = match r.kind.as_str() {
            "Deployment" => Kind::Deployment,
            "Rollout" => Kind::Rollout,
            "ConfigMap" => Kind::ConfigMap,
            "Service" => Kind::Service,
            _ => return None,
        };
        let uid = match self.cluster.get_opt(kind, &r.namespace, &r.name).await {
            Ok(obj) => obj.and_then(|o| o.pointer("/metadata/uid")?.as_str().map(str::to_string)),
            // not remembered: asked again with the next event
            Err(_) => return None,
        };
        self.uids.insert(r.clone(), uid.clone());
        uid
    }
}

/// `metav1.MicroTime`: RFC 3339 with microseconds.
fn micro_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn series(count: u32, last_observed: DateTime<Utc>) -> Value {
    json!({"count": count, "lastObservedTime": micro_time(last_observed)})
}

/// The `events.k8s.io/v1` Event object for `event`.
pub fn event_object(
    name: &str,
    event: &NewEvent,
    instance: &str,
    uid: Option<&str>,
    series: Option<Value>,
) -> Value {
    let r = &event.regarding;
    let mut regarding = json!({
        "apiVersion": r.api_version,
        "kind": r.kind,
        "namespace": r.namespace,
        "name": r.name,
    });
    if let Some(uid) = uid {
        regarding["uid"] = json!(uid);
    }
    let mut body = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": r.namespace},
        "eventTime": micro_time(event.at),
        "reportingController": CONTROLLER,
        "reportingInstance": truncate_chars(instance, 128),
        "action": truncate_chars(&event.action, 128),
        "reason": truncate_chars(&event.reason, 128),
        "type": event.type_name(),
        "regarding": regarding,
        // room for cap's "… (N bytes cut)"
        "note": cap(&event.note, NOTE_MAX_BYTES - 32),
    });
    if let Some(series) = series {
        body["series"] = series;
    }
    body
}
