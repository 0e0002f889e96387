//! Metric signal sources: a Prometheus HTTP API client, a direct `/metrics`
//! scraper with a small selector language, histogram quantile maths, and the latest reading
//! of every signal.

pub mod alertmanager;
pub mod histogram;
pub mod latest;
pub mod prometheus;
pub mod scrape;
pub mod selector;
