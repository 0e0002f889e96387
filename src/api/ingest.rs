//! Group commit for the webhook. Concurrent requests hand their alerts to one writer task,
//! which records everything waiting in a single store transaction, then wakes the
//! evaluation loop with the new alerts of known agents, in the order they were recorded,
//! and only then answers each request. An alert storm costs one commit per batch of
//! requests (requests arriving during a commit make the next batch), and the store's
//! backend keeps the commit itself off the async workers.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use super::{AgentAlert, ApiError, Wake};
use crate::channel::BoundedTx;
use crate::store::{AlertRecord, StateStore, StoreError};

/// Requests recorded in one transaction at most.
const MAX_REQUESTS_PER_COMMIT: usize = 512;

type Answer = Result<(Vec<AlertRecord>, Vec<bool>), StoreError>;

struct Job {
    records: Vec<AlertRecord>,
    reply: oneshot::Sender<Answer>,
}

/// The handle requests record through; the writer task ends when every handle is gone.
#[derive(Clone)]
pub struct AlertIngest {
    jobs: mpsc::Sender<Job>,
}

/// Most requests waiting for the writer task; more wait for room (back-pressure).
const MAX_QUEUED_REQUESTS: usize = 4096;

impl AlertIngest {
    /// Starts the writer task over `store`; new alerts of known agents go to `wake`
    /// (waiting for room when it is full: alerts are never dropped).
    pub fn start(store: Arc<dyn StateStore>, wake: BoundedTx<Wake>) -> Self {
        let (jobs, rx) = mpsc::channel(MAX_QUEUED_REQUESTS);
        tokio::spawn(write_loop(store, wake, rx));
        Self { jobs }
    }

    /// Records `records` durably; returns them with, per alert, whether it was new.
    pub async fn record(
        &self,
        records: Vec<AlertRecord>,
    ) -> Result<(Vec<AlertRecord>, Vec<bool>), ApiError> {
        let stopped = || ApiError::Unavailable("the alert writer stopped".into());
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { records, reply })
            .await
            .map_err(|_| stopped())?;
        Ok(answer.await.map_err(|_| stopped())??)
    }
}

async fn write_loop(
    store: Arc<dyn StateStore>,
    wake: BoundedTx<Wake>,
    mut rx: mpsc::Receiver<Job>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_REQUESTS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let at = Utc::now();
        let (groups, replies): (Vec<Vec<AlertRecord>>, Vec<_>) =
            jobs.into_iter().map(|j| (j.records, j.reply)).unzip();
        let results: Vec<Result<Vec<bool>, StoreError>> = match store
            .record_alert_groups(&groups, at)
            .await
        {
            Ok(fresh) => fresh.into_iter().map(Ok).collect(),
            // the transaction rolled back: record each request on its own, so that one
            // request's failure is its own and the others still land
            Err(e) => {
                tracing::warn!(error = %e, requests = groups.len(), "group commit of alerts failed: recording each request alone");
                let mut alone = Vec::with_capacity(groups.len());
                for records in &groups {
                    alone.push(store.record_alerts(records, at).await);
                }
                alone
            }
        };
        let mut woken = Vec::new();
        for (records, fresh) in groups.iter().zip(&results) {
            let Ok(fresh) = fresh else { continue };
            for (record, _) in records.iter().zip(fresh).filter(|(_, new)| **new) {
                if let Some(agent) = &record.agent {
                    woken.push(AgentAlert {
                        agent: agent.clone(),
                        transition: record.transition(at),
                    });
                }
            }
        }
        if !woken.is_empty() {
            let _ = wake.send_waiting(Wake::Alerts(woken)).await;
        }
        for ((records, reply), result) in groups.into_iter().zip(replies).zip(results) {
            let _ = reply.send(result.map(|fresh| (records, fresh)));
        }
    }
}
