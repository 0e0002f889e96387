//! rollbackd executes operators' rollback runbooks unattended. This crate is the daemon: the
//! I/O at the edges around a pure core.
//!
//! # Layout
//! Three crates, arrows one way:
//!
//! ```text
//!   rollbackd (this crate: daemon, binary) ──→ rollbackd-core (policy, engine, replay, incident)
//!        │                                      no I/O, no clock, no kube/axum/reqwest/rusqlite/tokio
//!        └──────────────────────────────────→ rollbackd-sim (a Kubernetes API server simulator)
//!                                               knows nothing of rollbackd
//! ```
//!
//! Inside the daemon, data flows from the edges to the core and back out; no two modules
//! import each other (`tests/module_layers.rs`):
//!
//! - In: [`signals`] (the Prometheus HTTP API, batched, and direct scrapes of an agent's
//!   `/metrics`), [`watcher`] (new revisions and kube signals from watches), [`api`] (the
//!   Alertmanager webhook, the manual override API, health, metrics, OpenAPI).
//! - Decide: [`daemon`] runs the evaluation loop, feeding observations to
//!   `rollbackd_core::engine` and turning decisions into incidents (`rollbackd_core::incident`);
//!   it composes everything else. [`lifecycle`] is what both it and the API do to an
//!   incident: announce a stage, end it without a rollback.
//! - Act: [`executor`] runs a method's steps (ordered, parallel, resumable); [`cluster`] is every
//!   step against the Kubernetes API (kubectl-exact undo, set image, restart, scale, Service
//!   switch, ConfigMaps, Argo, Jobs, HTTP), history, snapshots and backups; [`verify`] checks
//!   recovery (rollout status, pod hold, health, checks).
//! - Record and tell: [`store`] (one contract, `StateStore`, over SQLite or the Kubernetes
//!   API: incidents, steps, backups, outbox, audit, alerts, pauses), [`notify`] (Slack,
//!   Statuspage and webhooks fed from the outbox).
//! - Front: [`console`] (the web console the API's server serves at `/`), [`cli`] (`check`,
//!   `evaluate`, `demo`, `run`, `sim`, `bench`), [`demo`] (the one-command demo),
//!   [`bench`](mod@bench) (the benchmark), [`synthetic_agent`] (an agent stand-in serving
//!   `/metrics`).
//! - Plumbing: [`config`], [`metrics`] (rollbackd's own), [`health`] (critical tasks and
//!   `/healthz`), [`channel`] (bounded internal channels), [`text`] (cutting outside text on a
//!   character boundary), [`process`] (logging and the shutdown signal).

pub mod api;
pub mod bench;
pub mod channel;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod daemon;
pub mod demo;
pub mod events;
pub mod executor;
pub mod health;
pub mod lifecycle;
pub mod metrics;
pub mod notify;
pub mod process;
pub mod signals;
pub mod store;
pub mod synthetic_agent;
pub mod text;
pub mod verify;
pub mod watcher;
