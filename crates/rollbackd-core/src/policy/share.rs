//! Sharing identical sections between policies. A fleet of look-alike services (one policy
//! file per service, generated from one template) repeats the same signals, matrix, methods
//! and templates thousands of times; loaded once each, they would dominate the daemon's
//! memory. After loading, equal sections point at one `Arc`.

use std::collections::HashMap;
use std::fmt::{self, Debug, Write};
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;

use super::model::Policy;

/// Feeds formatted text into a hasher without building the string.
struct HashWriter(DefaultHasher);

impl Write for HashWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

/// A digest of a value's `Debug` form: equal values have equal digests.
fn digest<T: Debug>(value: &T) -> u64 {
    let mut w = HashWriter(DefaultHasher::new());
    let _ = write!(w, "{value:?}");
    w.0.finish()
}

/// One section's distinct values, bucketed by digest (equality decides within a bucket).
struct Interner<T> {
    buckets: HashMap<u64, Vec<Arc<T>>>,
}

impl<T: Debug + PartialEq> Interner<T> {
    fn new() -> Self {
        Self {
            buckets: HashMap::new(),
        }
    }

    /// Points `section` at an equal value seen before, or remembers it.
    fn share(&mut self, section: &mut Arc<T>) {
        let bucket = self.buckets.entry(digest(&**section)).or_default();
        match bucket.iter().find(|seen| ***seen == **section) {
            Some(seen) => *section = seen.clone(),
            None => bucket.push(section.clone()),
        }
    }
}

/// Makes equal sections of `policies` share one allocation.
pub fn share_sections(policies: &mut [Policy]) {
    let mut signals = Interner::new();
    let mut matrix = Interner::new();
    let mut guards = Interner::new();
    let mut methods = Interner::new();
    let mut verification = Interner::new();
    let mut templates = Interner::new();
    let mut public = Interner::new();
    for p in policies {
        signals.share(&mut p.signals);
        matrix.share(&mut p.matrix);
        guards.share(&mut p.guards);
        methods.share(&mut p.methods);
        verification.share(&mut p.verification);
        templates.share(&mut p.notify.templates);
        public.share(&mut p.notify.statuspage_templates);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::parse_policy;

    fn gl002(agent: &str, error_rate_window: &str) -> Policy {
        let text = std::fs::read_to_string(crate::policy::seed_policy("gl-002.toml"))
            .unwrap()
            .replace("id = \"GL-002\"", &format!("id = \"{agent}\""))
            .replace("[5m]", &format!("[{error_rate_window}]"));
        parse_policy(Path::new("gl-002.toml"), &text).unwrap()
    }

    #[test]
    fn equal_sections_share_one_allocation_and_different_ones_do_not() {
        let mut policies = vec![gl002("A", "5m"), gl002("B", "5m"), gl002("C", "1m")];
        share_sections(&mut policies);
        let [a, b, c] = &policies[..] else {
            panic!("three policies")
        };
        assert_eq!(a.agent.id, "A");
        assert_eq!(b.agent.id, "B");
        assert!(Arc::ptr_eq(&a.signals, &b.signals));
        assert!(Arc::ptr_eq(&a.matrix, &b.matrix));
        assert!(Arc::ptr_eq(&a.methods, &b.methods));
        assert!(Arc::ptr_eq(&a.verification, &b.verification));
        assert!(Arc::ptr_eq(&a.notify.templates, &b.notify.templates));
        assert!(Arc::ptr_eq(
            &a.notify.statuspage_templates,
            &b.notify.statuspage_templates
        ));
        // C's PromQL differs: its signals are its own, its untouched sections are shared
        assert!(!Arc::ptr_eq(&a.signals, &c.signals));
        assert_ne!(a.signals, c.signals);
        assert!(Arc::ptr_eq(&a.methods, &c.methods));
    }

    #[test]
    fn equal_values_have_equal_digests() {
        let (a, b) = (gl002("A", "5m"), gl002("B", "5m"));
        assert_eq!(digest(&*a.signals), digest(&*b.signals));
        assert_ne!(digest(&*a.signals), digest(&*gl002("C", "1m").signals));
    }
}
