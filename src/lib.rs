//! rollbackd: executes operators' rollback runbooks unattended.

/// Metric signal sources (Prometheus API, direct scrape).
pub mod signals;

/// A synthetic workload exposing Prometheus metrics, for tests and the demo.
pub mod synthetic_agent;
