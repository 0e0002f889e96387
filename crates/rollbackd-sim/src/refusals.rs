//! Requests the simulator is told to refuse, by verb and resource, with `503
//! ServiceUnavailable` as an overloaded or restarting API server answers: how tests show
//! what a client does when, say, its watches cannot be opened.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::status::ApiError;

/// The (verb, resource plural) pairs refused now.
#[derive(Debug, Default)]
pub struct Refusals {
    refused: Mutex<BTreeSet<(String, String)>>,
}

impl Refusals {
    /// Refuses every request of `verb` on `resource` from now on.
    pub fn refuse(&self, verb: &str, resource: &str) {
        self.lock().insert((verb.to_string(), resource.to_string()));
    }

    /// Refuses nothing any more.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// `Err(503)` when requests of `verb` on `resource` are refused.
    pub fn check(&self, verb: &str, resource: &str) -> Result<(), ApiError> {
        if self
            .lock()
            .contains(&(verb.to_string(), resource.to_string()))
        {
            return Err(ApiError::ServiceUnavailable(format!(
                "the server is currently unable to handle the request ({verb} {resource})"
            )));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(String, String)>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_verb_answers_503_until_cleared() {
        let r = Refusals::default();
        assert!(r.check("WATCH", "pods").is_ok());
        r.refuse("WATCH", "pods");
        let e = r.check("WATCH", "pods").expect_err("refused");
        assert_eq!((e.code(), e.reason()), (503, "ServiceUnavailable"));
        assert!(r.check("LIST", "pods").is_ok(), "only that verb");
        r.clear();
        assert!(r.check("WATCH", "pods").is_ok());
    }
}
