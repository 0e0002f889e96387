//! rollbackd: executes operators' rollback runbooks unattended.

/// Metric signal sources (Prometheus API, direct scrape).
pub mod signals;
