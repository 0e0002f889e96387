//! Group commit for the webhook. Concurrent requests hand their alerts to one thread,
//! which records everything waiting in a single SQLite transaction, then wakes the
//! evaluation loop with the new alerts of known agents, in the order they were recorded,
//! and only then answers each request. An alert storm costs one commit per batch of
//! requests, and the async workers never wait on SQLite.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use super::{AgentAlert, ApiError, Wake};
use crate::channel::BoundedTx;
use crate::store::{AlertRecord, Store, StoreError};

/// Requests recorded in one transaction at most.
const MAX_REQUESTS_PER_COMMIT: usize = 512;

type Answer = Result<(Vec<AlertRecord>, Vec<bool>), StoreError>;

struct Job {
    records: Vec<AlertRecord>,
    reply: oneshot::Sender<Answer>,
}

/// The handle requests record through; the writer thread ends when every handle is gone.
#[derive(Clone)]
pub struct AlertIngest {
    jobs: mpsc::Sender<Job>,
}

/// Most requests waiting for the writer thread; more wait for room (back-pressure).
const MAX_QUEUED_REQUESTS: usize = 4096;

impl AlertIngest {
    /// Starts the writer thread over `store`; new alerts of known agents go to `wake`
    /// (waiting for room when it is full: alerts are never dropped).
    pub fn start(store: Arc<Store>, wake: BoundedTx<Wake>) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel(MAX_QUEUED_REQUESTS);
        std::thread::Builder::new()
            .name("rollbackd-alerts".into())
            .spawn(move || write_loop(&store, &wake, rx))?;
        Ok(Self { jobs })
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

fn write_loop(store: &Store, wake: &BoundedTx<Wake>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_REQUESTS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let at = Utc::now();
        let groups: Vec<&[AlertRecord]> = jobs.iter().map(|j| j.records.as_slice()).collect();
        let results: Vec<Result<Vec<bool>, StoreError>> = match store
            .record_alert_groups(&groups, at)
        {
            Ok(fresh) => fresh.into_iter().map(Ok).collect(),
            // the transaction rolled back: record each request on its own, so that one
            // request's failure is its own and the others still land
            Err(e) => {
                tracing::warn!(error = %e, requests = jobs.len(), "group commit of alerts failed: recording each request alone");
                jobs.iter()
                    .map(|j| store.record_alerts(&j.records, at))
                    .collect()
            }
        };
        let mut woken = Vec::new();
        for (job, fresh) in jobs.iter().zip(&results) {
            let Ok(fresh) = fresh else { continue };
            for (record, _) in job.records.iter().zip(fresh).filter(|(_, new)| **new) {
                if let Some(agent) = &record.agent {
                    woken.push(AgentAlert {
                        agent: agent.clone(),
                        transition: record.transition(at),
                    });
                }
            }
        }
        if !woken.is_empty() {
            let _ = wake.send_blocking(Wake::Alerts(woken));
        }
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send(result.map(|fresh| (job.records, fresh)));
        }
    }
}
