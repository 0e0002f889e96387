//! Metric signal sources: a Prometheus HTTP API client, a direct `/metrics`
//! scraper with a small selector language, and histogram quantile maths.

pub mod histogram;
pub mod prometheus;
pub mod scrape;
pub mod selector;
