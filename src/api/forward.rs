//! Writes that reach a standby are handed to the leader.
//!
//! Only the Lease holder records alerts and operators' changes and acts on them. A `POST`
//! (the Alertmanager webhook, trigger, approve, cancel, pause, resume: every write of this
//! API) that reaches a standby is checked for credentials as the leader would check them,
//! then forwarded to the API URL the leader writes on the Lease ([`LEASE_ANNOTATION`]):
//! same method, path and query, body, `Authorization` and `Content-Type` (and a Slack
//! press's `X-Slack-*` headers, the body byte for byte: the leader verifies the signature
//! itself; the standby checks it first, as it checks tokens), marked
//! `x-rollbackd-forwarded: <standby>` ([`FORWARDED`]). The standby answers with the leader's
//! status and body, adding `x-rollbackd-forwarded-to: <leader>` ([`FORWARDED_TO`]).
//!
//! A marked request that reaches a replica which does not lead is answered 503, never
//! forwarded again: no loops. When no live leader is known, the leader advertises no URL,
//! or it does not answer within [`TIMEOUT`], the standby answers 503 with `Retry-After`
//! and a body saying why; Alertmanager retries 5xx, and so should API clients. Requests go
//! only to the URL read from the Lease (no redirects followed, no proxy), and the
//! `Authorization` header is never logged.
//!
//! Forwarding is the same on both store backends: the leader is the one that acts, so a
//! write belongs in its store, the shared Kubernetes one or its own SQLite file.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{ApiError, ApiState};
use crate::config::Role;

/// The Lease annotation holding the leader's API URL (`scheme://host:port`).
pub const LEASE_ANNOTATION: &str = "rollbackd.io/api-url";
/// Request header naming the standby that forwarded the request.
pub const FORWARDED: &str = "x-rollbackd-forwarded";
/// Response header naming the leader that answered a forwarded request.
pub const FORWARDED_TO: &str = "x-rollbackd-forwarded-to";
/// Slack's headers on a button press, forwarded as received so the leader can verify the
/// signature of the (unchanged) body itself.
const SLACK_HEADERS: [&str; 4] = [
    super::slack::signature::SIGNATURE,
    super::slack::signature::TIMESTAMP,
    super::slack::RETRY_NUM,
    "x-slack-retry-reason",
];
/// How long a standby waits for the leader's answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The Lease holder as this replica last read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAddr {
    /// Its identity (`holderIdentity`).
    pub identity: String,
    /// The API URL it advertises ([`LEASE_ANNOTATION`]), if any.
    pub url: Option<String>,
    /// When its Lease runs out unless renewed: a standby forwards nothing to it after that.
    pub expires: DateTime<Utc>,
}

/// Why a standby could not hand a write to the leader (each answered 503 with
/// `Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The request was forwarded once already and reached a replica that does not lead.
    #[error(
        "this replica ({me}) is a standby, not the leader, and the request was already forwarded by {by}: it is not forwarded twice; retry"
    )]
    AlreadyForwarded {
        /// This replica.
        me: String,
        /// The replica that forwarded it.
        by: String,
    },
    /// No live holder of the Lease is known (free, expired, or not read yet).
    #[error(
        "this replica ({me}) is a standby, not the leader, and knows no live leader (the Lease is free, expired or not read yet): retry"
    )]
    NoLeader {
        /// This replica.
        me: String,
    },
    /// The Lease names this replica, but it does not lead (yet, or any more).
    #[error(
        "this replica ({me}) holds the Lease but is not leading (just elected, or its renewals are failing): retry"
    )]
    HeldHere {
        /// This replica.
        me: String,
    },
    /// The leader writes no API URL on the Lease.
    #[error(
        "this replica is a standby, not the leader, and the leader {leader} advertises no API URL (its server.advertise_url or $POD_IP): retry"
    )]
    NoUrl {
        /// The leader.
        leader: String,
    },
    /// The leader did not answer in time.
    #[error(
        "this replica is a standby, not the leader, and the leader {leader} ({url}) did not answer within {timeout:?}: retry"
    )]
    Timeout {
        /// The leader.
        leader: String,
        /// Its advertised URL.
        url: String,
        /// How long the standby waited.
        timeout: Duration,
    },
    /// The leader could not be reached.
    #[error(
        "this replica is a standby, not the leader, and the leader {leader} ({url}) could not be reached: {reason}; retry"
    )]
    Unreachable {
        /// The leader.
        leader: String,
        /// Its advertised URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The HTTP client could not be built (at start).
    #[error("the HTTP client for forwarding writes could not be built: {0}")]
    Client(String),
}

impl ForwardError {
    /// Label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ForwardError::AlreadyForwarded { .. } => "already_forwarded",
            ForwardError::NoLeader { .. } => "no_leader",
            ForwardError::HeldHere { .. } => "held_here",
            ForwardError::NoUrl { .. } => "no_url",
            ForwardError::Timeout { .. } => "timeout",
            ForwardError::Unreachable { .. } => "unreachable",
            ForwardError::Client(_) => "client",
        }
    }
}

impl From<ForwardError> for ApiError {
    fn from(e: ForwardError) -> Self {
        ApiError::Standby(e.to_string())
    }
}

/// Hands a standby's writes to the leader it reads on the Lease.
#[derive(Clone)]
pub struct Forwarder {
    identity: String,
    leader: watch::Receiver<Option<LeaderAddr>>,
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("identity", &self.identity)
            .field("leader", &*self.leader.borrow())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Forwarder {
    /// A forwarder for the replica `identity`, reading the Lease holder from `leader` (the
    /// elector publishes it each round) and waiting up to `timeout` for its answer.
    pub fn new(
        identity: &str,
        leader: watch::Receiver<Option<LeaderAddr>>,
        timeout: Duration,
    ) -> Result<Self, ForwardError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| ForwardError::Client(e.to_string()))?;
        Ok(Forwarder {
            identity: identity.to_string(),
            leader,
            http,
            timeout,
        })
    }

    /// The leader's identity and URL, if a request may be sent there now.
    fn target(&self, now: DateTime<Utc>) -> Result<(String, String), ForwardError> {
        let me = || self.identity.clone();
        let leader = self.leader.borrow().clone();
        match leader {
            Some(l) if l.identity == self.identity => Err(ForwardError::HeldHere { me: me() }),
            Some(l) if l.expires > now => match l.url {
                Some(url) => Ok((l.identity, url)),
                None => Err(ForwardError::NoUrl { leader: l.identity }),
            },
            _ => Err(ForwardError::NoLeader { me: me() }),
        }
    }

    /// Sends the request to the leader and returns its answer, marked with
    /// [`FORWARDED_TO`]; a request already marked [`FORWARDED`] is refused.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ForwardError> {
        if let Some(by) = headers.get(FORWARDED) {
            return Err(ForwardError::AlreadyForwarded {
                me: self.identity.clone(),
                by: String::from_utf8_lossy(by.as_bytes()).into_owned(),
            });
        }
        let (leader, url) = self.target(Utc::now())?;
        let mark = HeaderValue::from_str(&self.identity)
            .unwrap_or_else(|_| HeaderValue::from_static("standby"));
        let mut request = self
            .http
            .request(method, format!("{url}{path_and_query}"))
            .header(FORWARDED, mark)
            .body(body);
        for name in [AUTHORIZATION, CONTENT_TYPE] {
            if let Some(v) = headers.get(&name) {
                request = request.header(name, v.clone());
            }
        }
        // a Slack press: the leader verifies the same signature of the same bytes
        for name in SLACK_HEADERS {
            if let Some(v) = headers.get(name) {
                request = request.header(name, v.clone());
            }
        }
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                ForwardError::Timeout {
                    leader: leader.clone(),
                    url: url.clone(),
                    timeout: self.timeout,
                }
            } else {
                ForwardError::Unreachable {
                    leader: leader.clone(),
                    url: url.clone(),
                    reason: causes(&e),
                }
            }
        };
        let answer = request.send().await.map_err(failed)?;
        let status = answer.status();
        let mut kept = HeaderMap::new();
        for name in [CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE] {
            if let Some(v) = answer.headers().get(&name) {
                kept.insert(name, v.clone());
            }
        }
        let body = answer.bytes().await.map_err(failed)?;
        if let Ok(v) = HeaderValue::from_str(&leader) {
            kept.insert(FORWARDED_TO, v);
        }
        let mut response = (status, body).into_response();
        response.headers_mut().extend(kept);
        Ok(response)
    }
}

/// An error and its causes, one after the other (reqwest's own text leaves them out).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The route of Slack's button presses.
const SLACK_PATH: &str = "/api/v1/slack/interactions";

/// The API's route layer: a `POST` (every write) that reaches a replica which does not
/// lead is checked for credentials (the webhook's on `/api/v1/alerts`, an operator token
/// elsewhere) and forwarded to the leader; reads, and every request on the leader, go to
/// their handlers. Without a forwarder (no leader election) the handlers answer as usual.
pub async fn standby_writes(
    State((state, max_body_bytes)): State<(ApiState, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let leading = *state.leading.borrow();
    if request.method() != Method::POST || leading {
        return next.run(request).await;
    }
    let Some(forwarder) = state.forward.clone() else {
        return next.run(request).await;
    };
    let webhook = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str() == "/api/v1/alerts");
    // a webhook request is counted by the replica that answers it: here when refused here,
    // by the leader when forwarded
    let answered_here = |e: ApiError| {
        let response = e.into_response();
        if webhook {
            let code = response.status().as_u16().to_string();
            state
                .metrics
                .inc("rollbackd_webhook_requests_total", &[&code]);
        }
        response
    };
    let slack = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str() == SLACK_PATH);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, max_body_bytes).await else {
        return answered_here(ApiError::TooLarge);
    };
    let allowed = if webhook {
        state.auth.webhook(&parts.headers)
    } else if slack {
        // Slack's signature is the credential: checked here too, so a standby forwards only
        // what the leader will accept (and the leader checks it again)
        match &state.slack {
            Some(s) => s
                .verify(&parts.headers, &body)
                .map_err(|_| ApiError::Unauthorized),
            None => Err(ApiError::NotFound(
                "Slack interactivity is off: set [notify] slack_signing_secret".into(),
            )),
        }
    } else {
        state
            .auth
            .caller(&parts.headers, Role::Operator)
            .map(|_| ())
    };
    if let Err(e) = allowed {
        return answered_here(e);
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let outcome = forwarder
        .forward(parts.method, &path, &parts.headers, body)
        .await;
    let label = match &outcome {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) => e.metric_label().to_string(),
    };
    state
        .metrics
        .inc("rollbackd_forwarded_requests_total", &[&label]);
    match outcome {
        Ok(response) => {
            let to = response
                .headers()
                .get(FORWARDED_TO)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info!(path = %parts.uri.path(), leader = to, status = %response.status(), "forwarded a write to the leader");
            response
        }
        Err(e) => {
            tracing::warn!(path = %parts.uri.path(), error = %e, "could not forward a write to the leader");
            answered_here(ApiError::from(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn forwarder(leader: Option<LeaderAddr>) -> Forwarder {
        let (_tx, rx) = watch::channel(leader);
        Forwarder::new("pod-b", rx, Duration::from_secs(1)).unwrap()
    }

    fn addr(identity: &str, url: Option<&str>, expires_in_s: i64) -> LeaderAddr {
        LeaderAddr {
            identity: identity.into(),
            url: url.map(str::to_string),
            expires: Utc::now() + chrono::TimeDelta::seconds(expires_in_s),
        }
    }

    #[test]
    fn only_a_live_other_leader_with_a_url_is_a_target() {
        let now = Utc::now();
        assert_eq!(
            forwarder(Some(addr("pod-a", Some("http://10.0.0.1:8080"), 10))).target(now),
            Ok(("pod-a".into(), "http://10.0.0.1:8080".into()))
        );
        assert_eq!(
            forwarder(None).target(now),
            Err(ForwardError::NoLeader { me: "pod-b".into() })
        );
        assert_eq!(
            forwarder(Some(addr("pod-a", Some("http://10.0.0.1:8080"), -1))).target(now),
            Err(ForwardError::NoLeader { me: "pod-b".into() }),
            "an expired Lease names no leader"
        );
        assert_eq!(
            forwarder(Some(addr("pod-a", None, 10))).target(now),
            Err(ForwardError::NoUrl {
                leader: "pod-a".into()
            })
        );
        assert_eq!(
            forwarder(Some(addr("pod-b", Some("http://10.0.0.2:8080"), 10))).target(now),
            Err(ForwardError::HeldHere { me: "pod-b".into() }),
            "never to itself"
        );
    }

    #[tokio::test]
    async fn a_marked_request_is_not_forwarded_again() {
        let f = forwarder(Some(addr("pod-a", Some("http://127.0.0.1:9"), 10)));
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED, HeaderValue::from_static("pod-c"));
        let e = f
            .forward(Method::POST, "/api/v1/pause", &headers, Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(
            e,
            ForwardError::AlreadyForwarded {
                me: "pod-b".into(),
                by: "pod-c".into()
            }
        );
        let response = ApiError::from(e).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(RETRY_AFTER));
    }
}
