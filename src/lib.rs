//! rollbackd executes operators' rollback runbooks unattended.
//!
//! # Layout
//! Data flows one way, from the edges to a pure core and back out:
//!
//! - [`policy`]: the policy language (one TOML file per agent) and its validation.
//! - [`engine`]: the pure decision engine: `(policy, observations, now) → Decision`
//!   with evidence. No I/O, no clock.
//! - [`replay`]: trace files (JSON lines of samples and events) replayed through the
//!   engine, as `rollbackd evaluate` does.
//! - [`signals`]: where samples come from: the Prometheus HTTP API (batched queries) and
//!   direct scrapes of an agent's `/metrics` (rates, ratios, histogram quantiles).
//! - [`synthetic_agent`]: an agent stand-in serving `/metrics`, for tests and the demo.
//! - [`sim`]: a Kubernetes API server simulator (discovery, objects, watch, patches,
//!   deployment/ReplicaSet/Job/Rollout controllers, faults) that kubectl and kube-rs accept.
//! - [`cluster`]: the Kubernetes side through a `kube::Client`: revision history, kubectl's
//!   `rollout undo`, every other rollback step, ConfigMap snapshots, backups, `rollout status`.
//! - [`executor`]: runs a policy method's steps in order (parallel within a step), journaled so
//!   a restarted daemon resumes without repeating a step; dry runs report exact patches.
//! - [`verify`]: post-rollback verification (rollout, pod hold, health, signal checks) and the
//!   runbooks' one-shot recovery before escalating.
//! - [`watcher`]: kube-rs watchers over the policies' workloads: new revisions (with ConfigMap
//!   snapshots, flagged when rollbackd made them) and kube signals from the cache.
//! - [`cli`]: the command-line front end (`check`, `evaluate`, `demo`).

pub mod cli;
pub mod cluster;
pub mod engine;
pub mod executor;
pub mod policy;
pub mod replay;
pub mod signals;
pub mod sim;
pub mod synthetic_agent;
pub mod verify;
pub mod watcher;
