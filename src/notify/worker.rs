//! The outbox delivery worker: sends due items concurrently, one at a time per
//! incident+target, and records each outcome in the store.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;

use super::error::NotifyError;
use super::message::{OutboxItem, ThreadRef};
use super::notifiers::Notifiers;
use super::outbox::{DeliveryObserver, OutboxStore};
use super::retry::RetryConfig;

/// An incident+target queue: `(incident_id, target key)`.
type QueueKey = (String, String);

/// Delivers due items until `shutdown` resolves, then flushes what is due once more
/// (within `shutdown_grace`) and returns. Deliveries still running then are dropped; their
/// items stay pending and go out after a restart.
///
/// Each incident+target queue has at most one delivery in flight, so its items go out in
/// order; queues are independent, so a slow or failing target delays only its own.
pub async fn run_outbox(
    store: Arc<dyn OutboxStore>,
    notifiers: Notifiers,
    observer: Arc<dyn DeliveryObserver>,
    shutdown: impl Future<Output = ()>,
) {
    let mut worker = Worker {
        store,
        notifiers: Arc::new(notifiers),
        observer,
        tasks: JoinSet::new(),
        in_flight: HashMap::new(),
        cooling: HashMap::new(),
    };
    let poll = worker.notifiers.config().poll_interval;
    let grace = worker.notifiers.config().shutdown_grace;
    tokio::pin!(shutdown);
    loop {
        worker.dispatch_due().await;
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = worker.tasks.join_next_with_id() => worker.finished(done),
            () = tokio::time::sleep(poll) => {}
        }
    }
    let flush = async {
        worker.drain().await;
        worker.dispatch_due().await;
        worker.drain().await;
    };
    if tokio::time::timeout(grace, flush).await.is_err() {
        tracing::warn!(
            in_flight = worker.in_flight.len(),
            "outbox: final flush cut short; unfinished items stay pending"
        );
    }
    worker.tasks.abort_all();
}

struct Worker {
    store: Arc<dyn OutboxStore>,
    notifiers: Arc<Notifiers>,
    observer: Arc<dyn DeliveryObserver>,
    /// Each task answers until when its queue must rest (after a store failure).
    tasks: JoinSet<Option<Instant>>,
    in_flight: HashMap<Id, QueueKey>,
    /// Queues held back because their outcome could not be recorded: re-sending at once
    /// would repeat the message every poll.
    cooling: HashMap<QueueKey, Instant>,
}

impl Worker {
    /// Starts a delivery for every due item whose queue is idle.
    async fn dispatch_due(&mut self) {
        let max_in_flight = self.notifiers.config().max_in_flight.max(1);
        if self.tasks.len() >= max_in_flight {
            return;
        }
        let now = Instant::now();
        self.cooling.retain(|_, until| *until > now);
        let limit = self.notifiers.config().batch_size.max(1) + self.in_flight.len();
        let due = match self.store.due(Utc::now(), limit).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "outbox: cannot read due items");
                return;
            }
        };
        let mut busy: HashSet<QueueKey> = self.in_flight.values().cloned().collect();
        busy.extend(self.cooling.keys().cloned());
        for item in due {
            if self.tasks.len() >= max_in_flight {
                break;
            }
            let key = (item.message.incident_id.clone(), item.target.key());
            if !busy.insert(key.clone()) {
                continue;
            }
            let handle = self.tasks.spawn(deliver(
                Arc::clone(&self.store),
                Arc::clone(&self.notifiers),
                Arc::clone(&self.observer),
                item,
            ));
            self.in_flight.insert(handle.id(), key);
        }
    }

    /// Frees the queue of a finished delivery (or cools it down).
    fn finished(&mut self, done: Result<(Id, Option<Instant>), JoinError>) {
        let (id, rest_until) = match done {
            Ok((id, rest_until)) => (id, rest_until),
            Err(e) => {
                tracing::error!(error = %e, "outbox: delivery task failed");
                let cooldown = self.notifiers.config().retry.max_delay;
                (e.id(), Some(Instant::now() + cooldown))
            }
        };
        if let Some(key) = self.in_flight.remove(&id)
            && let Some(until) = rest_until
        {
            self.cooling.insert(key, until);
        }
    }

    /// Waits for every delivery in flight.
    async fn drain(&mut self) {
        while let Some(done) = self.tasks.join_next_with_id().await {
            self.finished(done);
        }
    }
}

/// One attempt at one item, recorded in the store and reported to the observer. Answers
/// until when the queue must rest if the store failed.
async fn deliver(
    store: Arc<dyn OutboxStore>,
    notifiers: Arc<Notifiers>,
    observer: Arc<dyn DeliveryObserver>,
    item: OutboxItem,
) -> Option<Instant> {
    let config = notifiers.config();
    let rest = || Some(Instant::now() + config.retry.max_delay);
    let (incident, key) = (&item.message.incident_id, item.target.key());
    let thread = match store.thread(incident, &key).await {
        Ok(thread) => thread,
        Err(e) => {
            tracing::warn!(id = item.id, error = %e, "outbox: cannot read thread");
            return rest();
        }
    };
    let started = Instant::now();
    let looks_up = Notifiers::looks_up(&item.target);
    let earlier = match (looks_up, item.in_doubt_since) {
        (true, Some(since)) => already_delivered(&notifiers, &item, thread.clone(), since).await,
        _ => None,
    };
    let result = match earlier {
        Some(thread) => Ok(thread),
        None => {
            // recorded before the message leaves: if this process dies before the outcome is
            // recorded, the next attempt asks the target first
            if looks_up
                && item.in_doubt_since.is_none()
                && let Err(e) = store.mark_attempt(item.id, Utc::now()).await
            {
                tracing::warn!(id = item.id, error = %e, "outbox: cannot record the attempt; not sent yet");
                return rest();
            }
            notifiers.send(&item, thread).await
        }
    };
    let elapsed = started.elapsed();
    let retry = config.retry;
    let kind = item.target.kind();
    // its own task: a store call that panics is an `error` outcome, not a lost delivery
    let (outcome, recorded) =
        match tokio::spawn(async move { record(store.as_ref(), retry, &item, result).await }).await
        {
            Ok(done) => done,
            Err(e) => ("error", Err(NotifyError::Store(e.to_string()))),
        };
    observer.delivered(kind, outcome, elapsed);
    match recorded {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(outcome, error = %e, "outbox: cannot record delivery");
            rest()
        }
    }
}

/// Whether the target already has an item whose earlier attempt (started at `since`) has
/// an unknown outcome: `Some(thread)` when it does. When the target cannot be asked, the
/// item is sent again (a repeat is better than a message nobody gets).
async fn already_delivered(
    notifiers: &Notifiers,
    item: &OutboxItem,
    thread: Option<ThreadRef>,
    since: DateTime<Utc>,
) -> Option<Option<ThreadRef>> {
    match notifiers.find(item, thread, since).await {
        Ok(Some(thread)) => {
            tracing::info!(id = item.id, target = %item.target.key(), "outbox: an earlier attempt was delivered; not sent again");
            Some(thread)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(id = item.id, target = %item.target.key(), error = %e, "outbox: cannot ask the target whether an earlier attempt arrived; sending again");
            None
        }
    }
}

/// Records the result of a send; answers the outcome (`sent`, `retry` or `failed`).
async fn record(
    store: &dyn OutboxStore,
    retry: RetryConfig,
    item: &OutboxItem,
    result: Result<Option<ThreadRef>, NotifyError>,
) -> (&'static str, Result<(), NotifyError>) {
    let attempts = item.attempts.saturating_add(1);
    match result {
        Ok(new_thread) => (
            "sent",
            store
                .mark_sent(item.id, Utc::now(), new_thread.as_ref())
                .await,
        ),
        Err(e) if e.is_transient() && attempts < retry.max_attempts => {
            let wait = retry.delay(attempts, e.retry_after());
            let at = TimeDelta::from_std(wait)
                .ok()
                .and_then(|wait| Utc::now().checked_add_signed(wait))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            tracing::info!(id = item.id, attempts, error = %e, next = %at, "outbox: will retry");
            (
                "retry",
                store
                    .mark_retry(item.id, attempts, at, &e.to_string(), e.may_have_arrived())
                    .await,
            )
        }
        Err(e) => {
            tracing::warn!(id = item.id, attempts, error = %e, kind = e.metric_label(), "outbox: giving up");
            (
                "failed",
                store.mark_failed(item.id, attempts, &e.to_string()).await,
            )
        }
    }
}
