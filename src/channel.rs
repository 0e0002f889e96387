//! Bounded internal channels. A full channel either waits (back-pressure, where the sender
//! can wait) or drops the message and counts it in `rollbackd_channel_dropped_total{channel}`
//! with an ERROR line: memory never grows without bound when a consumer stalls.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::metrics::Metrics;

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// The channel was full: the message was dropped and counted.
    #[error("channel {0} is full: message dropped")]
    Full(&'static str),
    /// The receiver is gone (shutting down).
    #[error("channel {0} is closed")]
    Closed(&'static str),
}

/// The sending side of a bounded, named channel.
#[derive(Debug)]
pub struct BoundedTx<T> {
    tx: mpsc::Sender<T>,
    name: &'static str,
    metrics: Arc<Metrics>,
}

impl<T> Clone for BoundedTx<T> {
    fn clone(&self) -> Self {
        BoundedTx {
            tx: self.tx.clone(),
            name: self.name,
            metrics: self.metrics.clone(),
        }
    }
}

/// A channel named `name` holding at most `capacity` messages; drops count in `metrics`.
pub fn bounded<T>(
    name: &'static str,
    capacity: usize,
    metrics: Arc<Metrics>,
) -> (BoundedTx<T>, mpsc::Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (BoundedTx { tx, name, metrics }, rx)
}

impl<T> BoundedTx<T> {
    /// Sends without waiting; a full channel drops the message, logs and counts it.
    pub fn send(&self, message: T) -> Result<(), Dropped> {
        match self.tx.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(_)) => Err(Dropped::Closed(self.name)),
            Err(TrySendError::Full(_)) => {
                tracing::error!(
                    channel = self.name,
                    "internal channel full: message dropped"
                );
                self.metrics
                    .inc("rollbackd_channel_dropped_total", &[self.name]);
                Err(Dropped::Full(self.name))
            }
        }
    }

    /// Waits for room (back-pressure).
    pub async fn send_waiting(&self, message: T) -> Result<(), Dropped> {
        self.tx
            .send(message)
            .await
            .map_err(|_| Dropped::Closed(self.name))
    }

    /// A sender not connected to anything (tests, tools that drop what they would send).
    pub fn detached(name: &'static str) -> Self {
        bounded(name, 1, Arc::new(Metrics::new())).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_growing() {
        let metrics = Arc::new(Metrics::new());
        let (tx, mut rx) = bounded::<u32>("runner", 2, metrics.clone());
        assert_eq!(tx.send(1), Ok(()));
        assert_eq!(tx.send(2), Ok(()));
        assert_eq!(tx.send(3), Err(Dropped::Full("runner")));
        assert_eq!(
            metrics.counter("rollbackd_channel_dropped_total", &["runner"]),
            1.0
        );
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(tx.send(4), Ok(()));
        drop(rx);
        assert_eq!(tx.send(5), Err(Dropped::Closed("runner")));
        assert_eq!(
            metrics.counter("rollbackd_channel_dropped_total", &["runner"]),
            1.0,
            "a closed channel is shutdown, not a drop"
        );
    }

    #[tokio::test]
    async fn a_waiting_sender_waits_for_room() {
        let (tx, mut rx) = bounded::<u32>("wake", 1, Arc::new(Metrics::new()));
        tx.send(1).unwrap();
        let sender = tokio::spawn(async move { tx.send_waiting(2).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!sender.is_finished(), "waits while the channel is full");
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(sender.await.unwrap(), Ok(()));
        assert_eq!(rx.recv().await, Some(2));
    }
}
