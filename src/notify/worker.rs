//! The outbox delivery worker: sends due items concurrently, one at a time per
//! incident+target, and records each outcome in the store.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeDelta, Utc};
use tokio::task::{Id, JoinSet};

use super::error::NotifyError;
use super::message::OutboxItem;
use super::notifiers::Notifiers;
use super::outbox::{DeliveryObserver, OutboxStore};

/// An incident+target queue: `(incident_id, target key)`.
type QueueKey = (String, String);

/// Delivers due items until `shutdown` resolves, then flushes what is due once more
/// (within `shutdown_grace`) and returns.
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
    };
    let poll = worker.notifiers.config().poll_interval;
    let grace = worker.notifiers.config().shutdown_grace;
    tokio::pin!(shutdown);
    loop {
        worker.dispatch_due();
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = worker.tasks.join_next_with_id() => worker.finished(done),
            () = tokio::time::sleep(poll) => {}
        }
    }
    let flush = async {
        worker.drain().await;
        worker.dispatch_due();
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
    tasks: JoinSet<()>,
    in_flight: HashMap<Id, QueueKey>,
}

impl Worker {
    /// Starts a delivery for every due item whose queue is idle.
    fn dispatch_due(&mut self) {
        let config = self.notifiers.config();
        let room = config.max_in_flight.saturating_sub(self.tasks.len());
        if room == 0 {
            return;
        }
        let limit = config.batch_size.max(1) + self.in_flight.len();
        let due = match self.store.due(Utc::now(), limit) {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "outbox: cannot read due items");
                return;
            }
        };
        let mut busy: HashSet<QueueKey> = self.in_flight.values().cloned().collect();
        for item in due.into_iter() {
            if self.tasks.len() >= self.notifiers.config().max_in_flight {
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

    /// Frees the queue of a finished delivery.
    fn finished(&mut self, done: Result<(Id, ()), tokio::task::JoinError>) {
        let id = match done {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(error = %e, "outbox: delivery task failed");
                e.id()
            }
        };
        self.in_flight.remove(&id);
    }

    /// Waits for every delivery in flight.
    async fn drain(&mut self) {
        while let Some(done) = self.tasks.join_next_with_id().await {
            self.finished(done);
        }
    }
}

/// One attempt at one item, recorded in the store and reported to the observer.
async fn deliver(
    store: Arc<dyn OutboxStore>,
    notifiers: Arc<Notifiers>,
    observer: Arc<dyn DeliveryObserver>,
    item: OutboxItem,
) {
    let started = Instant::now();
    let outcome = match attempt(store.as_ref(), &notifiers, &item).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(id = item.id, error = %e, "outbox: cannot record delivery");
            "error"
        }
    };
    observer.delivered(item.target.kind(), outcome, started.elapsed());
}

/// Sends and records; the answer is the outcome (`sent`, `retry` or `failed`).
async fn attempt(
    store: &dyn OutboxStore,
    notifiers: &Notifiers,
    item: &OutboxItem,
) -> Result<&'static str, NotifyError> {
    let incident = &item.message.incident_id;
    let thread = store.thread(incident, &item.target.key())?;
    let attempts = item.attempts.saturating_add(1);
    match notifiers.send(item, thread).await {
        Ok(new_thread) => {
            if let Some(thread) = new_thread {
                store.save_thread(incident, &thread)?;
            }
            store.mark_sent(item.id, Utc::now())?;
            Ok("sent")
        }
        Err(e) => {
            let retry = notifiers.config().retry;
            let message = e.to_string();
            if e.is_transient() && attempts < retry.max_attempts {
                let wait = retry.delay(attempts, e.retry_after());
                let wait = TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
                let at = Utc::now()
                    .checked_add_signed(wait)
                    .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
                tracing::info!(id = item.id, attempts, error = %message, next = %at, "outbox: will retry");
                store.mark_retry(item.id, attempts, at, &message)?;
                Ok("retry")
            } else {
                tracing::warn!(id = item.id, attempts, error = %message, kind = e.metric_label(), "outbox: giving up");
                store.mark_failed(item.id, attempts, &message)?;
                Ok("failed")
            }
        }
    }
}
