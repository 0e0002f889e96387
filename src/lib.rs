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
//! - [`incident`]: the incident lifecycle (a pure state machine); [`store`]: SQLite
//!   (incidents, steps, backups, outbox, audit, alerts, pauses).
//! - [`api`]: the HTTP API (Alertmanager webhook, manual override, health, metrics,
//!   OpenAPI); [`config`]: daemon configuration; [`metrics`]: rollbackd's own metrics.
//! - [`notify`]: Slack, Statuspage and webhook notifiers fed from the outbox.
//! - [`cluster`]: every rollback step against the Kubernetes API (kubectl-exact undo,
//!   set image, restart, scale, Service switch, ConfigMaps, Argo, Jobs, HTTP), history,
//!   snapshots and backups; [`executor`]: methods as ordered, parallel, resumable steps;
//!   [`verify`]: rollout status, pod hold, health, checks, recovery; [`watcher`]: new
//!   revisions and kube signals.
//! - [`cli`]: the command-line front end (`check`, `evaluate`, `demo`, `run`, `sim`,
//!   `bench`); [`demo`]: the one-command demo; [`bench`](mod@bench): the benchmark.
//! - [`channel`]: bounded internal channels (back-pressure or a counted drop).
//! - [`text`]: cutting outside text to a size on a character boundary; [`health`]: the
//!   daemon's critical tasks, and `/healthz` failing when one stops.

pub mod api;
pub mod bench;
pub mod channel;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod executor;
pub mod health;
pub mod metrics;
pub mod notify;
pub mod process;
pub mod signals;
pub mod store;
pub mod synthetic_agent;
pub mod text;
pub mod verify;
pub mod watcher;

pub use rollbackd_core::{engine, incident, policy, replay};
pub use rollbackd_sim as sim;
