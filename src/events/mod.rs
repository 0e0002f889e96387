//! Kubernetes Events (`events.k8s.io/v1`) for what rollbackd decides and does, so that
//! `kubectl describe deployment X` tells the story next to the controller's own events:
//! "RollbackStarted … by row p0-error-rate: error_rate=0.6 > 0.5".
//!
//! [`correlator`] aggregates and rate-limits as client-go's recorders do (pure);
//! [`recorder`] is the handle callers record through and the task that writes; [`steps`]
//! turns a method's step into an event (stages are turned into events by the outbox's
//! `kube_event` target, so they go out only once their transition is committed).

pub mod correlator;
pub mod recorder;
pub mod steps;
