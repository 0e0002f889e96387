//! Requests counted by verb and resource, as the API server counts them in
//! `apiserver_request_total{verb, resource}` and serves them on `/metrics` (Prometheus
//! text). Verbs are the API server's: `LIST`, `WATCH`, `GET`, `POST`, `PUT`, `PATCH`,
//! `DELETE`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The path the counts are served on.
pub const PATH: &str = "/metrics";

/// Request counts by (verb, resource plural).
#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

impl RequestCounts {
    /// Counts one request.
    pub fn count(&self, verb: &str, resource: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts
            .entry((verb.to_string(), resource.to_string()))
            .or_default() += 1;
    }

    /// Requests of `verb` on `resource` so far.
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The counts in the Prometheus text format.
    pub fn render(&self) -> String {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP apiserver_request_total Counter of apiserver requests broken out by verb and resource.\n# TYPE apiserver_request_total counter\n",
        );
        for ((verb, resource), n) in counts.iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{resource=\"{resource}\",verb=\"{verb}\"}} {n}"
            );
        }
        out
    }
}

/// The verb of a request on a resource: `GET` of a collection is `LIST` (or `WATCH` with
/// `watch=true`), of one object `GET` (or `WATCH`); `DELETE` of a collection is
/// `DELETECOLLECTION`.
pub fn verb(method: &str, collection: bool, watch: bool) -> String {
    match (method, collection, watch) {
        ("GET", _, true) => "WATCH".into(),
        ("GET", true, false) => "LIST".into(),
        ("DELETE", true, _) => "DELETECOLLECTION".into(),
        (m, _, _) => m.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_verb_and_resource_and_rendered() {
        let c = RequestCounts::default();
        c.count(&verb("GET", true, false), "pods");
        c.count(&verb("GET", true, false), "pods");
        c.count(&verb("GET", true, true), "pods");
        c.count(&verb("GET", false, false), "leases");
        assert_eq!(c.get("LIST", "pods"), 2);
        assert_eq!(c.get("WATCH", "pods"), 1);
        assert_eq!(c.get("GET", "leases"), 1);
        assert_eq!(c.get("PUT", "leases"), 0);
        let text = c.render();
        assert!(
            text.contains("apiserver_request_total{resource=\"pods\",verb=\"LIST\"} 2\n"),
            "{text}"
        );
    }
}
