//! Liveness of the daemon's long-running tasks. A critical task (the evaluation loop, an
//! incident driver, a watch, the outbox worker) that stops before shutdown is recorded
//! here, logged at ERROR and counted (`rollbackd_task_exits_total{task}`), and `/healthz`
//! fails naming it, so Kubernetes restarts the pod instead of leaving a daemon that
//! answers but no longer acts.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The tasks that stopped, each with why. Shared by the supervisors, `/healthz` and the
/// binary (which shuts down when one stops).
#[derive(Debug)]
pub struct TaskHealth {
    stopped: Mutex<BTreeMap<String, String>>,
    /// How many failures were recorded, for [`TaskHealth::failed`].
    count: watch::Sender<usize>,
}

impl Default for TaskHealth {
    fn default() -> Self {
        TaskHealth {
            stopped: Mutex::default(),
            count: watch::channel(0).0,
        }
    }
}

impl TaskHealth {
    /// No task has stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `task` stopped, and why (the latest reason per task is kept).
    pub fn stopped(&self, task: &str, why: &str) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        stopped.insert(task.to_string(), why.to_string());
        self.count.send_modify(|n| *n += 1);
    }

    /// Resolves once a task has stopped (at once if one already has), with the first
    /// stopped task and why.
    pub async fn failed(&self) -> (String, String) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n > 0).await;
        self.failures()
            .into_iter()
            .next()
            .unwrap_or_else(|| ("unknown".into(), "stopped".into()))
    }

    /// Every stopped task with why, by task name.
    pub fn failures(&self) -> Vec<(String, String)> {
        let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        stopped
            .iter()
            .map(|(t, w)| (t.clone(), w.clone()))
            .collect()
    }

    /// Whether every critical task still runs.
    pub fn is_healthy(&self) -> bool {
        self.failures().is_empty()
    }
}

/// Which ends of a task are failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The task runs until shutdown: returning or panicking before it is a failure.
    RunsUntilShutdown,
    /// The task may finish (an incident driver): only a panic is a failure.
    MayFinish,
}

/// Why a task's end is a failure, or `None` when it is not: an abort or any end after
/// shutdown began is expected, a panic never is.
pub fn failure(
    result: &Result<(), JoinError>,
    expect: Expect,
    shutting_down: bool,
) -> Option<String> {
    match result {
        Err(e) if e.is_panic() => Some(format!("panicked: {}", panic_message(e))),
        Err(_) => None,
        Ok(()) if shutting_down || expect == Expect::MayFinish => None,
        Ok(()) => Some("returned before shutdown".to_string()),
    }
}

fn panic_message(e: &JoinError) -> String {
    // a JoinError does not lend its payload; its Display names the task and the panic
    e.to_string()
}

/// What a supervisor needs: where to record, what to count, and when stopping is expected.
#[derive(Clone)]
pub struct Supervisor {
    /// Where stopped tasks are recorded (read by `/healthz`).
    pub health: Arc<TaskHealth>,
    /// Where `rollbackd_task_exits_total` (and, for the watcher, watch errors) are counted.
    pub metrics: Arc<Metrics>,
    /// Cancelled at shutdown: tasks ending after it are expected to.
    pub shutdown: CancellationToken,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            health: Arc::new(TaskHealth::new()),
            metrics: Arc::new(Metrics::new()),
            shutdown: CancellationToken::new(),
        }
    }
}

impl Supervisor {
    /// Spawns `future` as the critical task `task`; the returned handle ends when it does,
    /// after a failure has been recorded, logged and counted.
    pub fn spawn<F>(&self, task: &'static str, expect: Expect, future: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.watch(task, expect, tokio::spawn(future))
    }

    /// Watches an already spawned task (see [`Supervisor::spawn`]).
    pub fn watch(
        &self,
        task: &'static str,
        expect: Expect,
        handle: JoinHandle<()>,
    ) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let result = handle.await;
            if let Some(why) = failure(&result, expect, me.shutdown.is_cancelled()) {
                me.record(task, &why);
            }
        })
    }

    /// Records a failure of `task`: health, an ERROR line and the exit counter.
    pub fn record(&self, task: &str, why: &str) {
        tracing::error!(
            task,
            reason = why,
            "critical task stopped: /healthz now fails so the pod is restarted"
        );
        self.metrics.inc("rollbackd_task_exits_total", &[task]);
        self.health.stopped(task, why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_or_returns_early_is_recorded_and_counted() {
        let sup = Supervisor::default();
        sup.spawn("outbox", Expect::RunsUntilShutdown, async {
            panic!("boom");
        })
        .await
        .unwrap();
        sup.spawn("evaluation", Expect::RunsUntilShutdown, async {})
            .await
            .unwrap();
        // an incident driver may finish; only its panic counts
        sup.spawn("runner", Expect::MayFinish, async {})
            .await
            .unwrap();
        let failures = sup.health.failures();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert_eq!(failures[0].0, "evaluation");
        assert_eq!(failures[0].1, "returned before shutdown");
        assert_eq!(failures[1].0, "outbox");
        assert!(failures[1].1.contains("boom"), "{failures:?}");
        assert_eq!(
            sup.metrics
                .counter("rollbackd_task_exits_total", &["outbox"]),
            1.0
        );
        assert!(!sup.health.is_healthy());
    }

    #[tokio::test]
    async fn failed_resolves_once_a_task_stopped() {
        let health = Arc::new(TaskHealth::new());
        let waiting = tokio::spawn({
            let health = health.clone();
            async move { health.failed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        health.stopped("outbox", "returned before shutdown");
        let (task, why) = waiting.await.unwrap();
        assert_eq!(
            (task.as_str(), why.as_str()),
            ("outbox", "returned before shutdown")
        );
        // and at once when a task had already stopped
        assert_eq!(health.failed().await.0, "outbox");
    }

    #[tokio::test]
    async fn ends_after_shutdown_and_aborts_are_expected() {
        let sup = Supervisor::default();
        let forever = sup.spawn("watch", Expect::RunsUntilShutdown, std::future::pending());
        let inner = tokio::spawn(std::future::pending::<()>());
        inner.abort();
        sup.watch("runner", Expect::MayFinish, inner).await.unwrap();
        sup.shutdown.cancel();
        sup.spawn("evaluation", Expect::RunsUntilShutdown, async {})
            .await
            .unwrap();
        forever.abort();
        assert!(sup.health.is_healthy(), "{:?}", sup.health.failures());
    }
}
