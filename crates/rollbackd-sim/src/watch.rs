//! Watch streams: newline-delimited JSON events over a chunked response.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::SinkExt;
use futures::channel::mpsc;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::conversion::{present, storage_of};
use super::discovery::Resource;
use super::representation::Representation;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{EventType, Store, StoredEvent, namespace_of};

/// What a watch request asked for.
pub struct WatchRequest {
    /// The resource watched, as the client named it (events arrive in its shape).
    pub resource: &'static Resource,
    /// Namespace filter (None: all namespaces).
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector, on the stored objects (see `events::field_selector`).
    pub fields: FieldSelector,
    /// Start after this resourceVersion (None/0: current state first).
    pub since: Option<u64>,
    /// End the stream after this long.
    pub timeout: Duration,
    /// Whether to send periodic BOOKMARK events.
    pub bookmarks: bool,
    /// How objects are sent (one-row `Table`s for `kubectl get -w`, metadata only, or full).
    pub representation: Representation,
    /// `sendInitialEvents=true`: after the current objects, send a BOOKMARK annotated
    /// `k8s.io/initial-events-end` (streaming lists).
    pub initial_events_end: bool,
}

impl WatchRequest {
    fn selects(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| namespace_of(obj) == ns)
            && self.labels.matches_object(obj)
            && self.fields.matches(obj)
    }

    /// The event this watcher should see for a change, if any: a modification that moves an
    /// object into (out of) the selection is an ADDED (DELETED), as the real API server does.
    fn translate(&self, ev: &StoredEvent) -> Option<EventType> {
        if !ev.resource.same_objects(storage_of(self.resource)) {
            return None;
        }
        let now = self.selects(&ev.object);
        match (ev.kind, ev.previous.as_ref().map(|p| self.selects(p))) {
            (EventType::Modified, Some(true)) if !now => Some(EventType::Deleted),
            (EventType::Modified, Some(false)) if now => Some(EventType::Added),
            (EventType::Modified, Some(false)) => None,
            (kind, _) => now.then_some(kind),
        }
    }

    /// The wire line for `ev`, if this watcher should see it.
    fn event_line(&self, ev: &StoredEvent) -> Option<Bytes> {
        let kind = self.translate(ev)?;
        let served = present(self.resource, ev.object.clone());
        let obj = self.representation.object(self.resource, &served, ev.rv);
        Some(line(kind.as_str(), &obj))
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Starts a watch and returns the streaming response.
pub fn respond(
    store: &Store,
    req: WatchRequest,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Response {
    let (mut tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let start = store.watch(req.resource, req.since);
    tokio::spawn(async move {
        let mut start = match start {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Ok(line("ERROR", &e.to_status()))).await;
                return;
            }
        };
        let mut seen = start.rv;
        for ev in &start.replay {
            if let Some(l) = req.event_line(ev)
                && tx.send(Ok(l)).await.is_err()
            {
                return;
            }
        }
        if req.initial_events_end {
            let obj = json!({
                "kind": req.resource.kind,
                "apiVersion": req.resource.api_version(),
                "metadata": {
                    "resourceVersion": seen.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            });
            if tx.send(Ok(line("BOOKMARK", &obj))).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(req.timeout);
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(Duration::from_secs(1));
        bookmark.reset();
        loop {
            tokio::select! {
                ev = start.live.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= seen {
                            continue;
                        }
                        seen = ev.rv;
                        if let Some(l) = req.event_line(&ev)
                            && tx.send(Ok(l)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = bookmark.tick() => {
                    if req.bookmarks {
                        let obj = json!({
                            "kind": req.resource.kind,
                            "apiVersion": req.resource.api_version(),
                            "metadata": {"resourceVersion": seen.to_string()},
                        });
                        if tx.send(Ok(line("BOOKMARK", &obj))).await.is_err() {
                            return;
                        }
                    } else if tx.is_closed() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = shutdown.changed() => return,
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(rx));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
