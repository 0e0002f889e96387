//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several rollbackd
//! replicas exactly one evaluates and rolls back.
//!
//! Every `renew_every`, each replica reads the Lease and [`decide`]s:
//!
//! - no Lease: create it holding it ([`Action::Create`]; `409 AlreadyExists` means another
//!   replica created it first);
//! - held by me: renew (`renewTime = now`);
//! - free (no holder, e.g. released on shutdown) or expired (`renewTime +
//!   leaseDurationSeconds` has passed): take it over, `leaseTransitions + 1`;
//! - held by someone else and not expired: wait.
//!
//! Writes are `PUT`s carrying the `resourceVersion` read, so of two replicas racing for an
//! expired Lease one gets `409 Conflict` and stays a standby. Leadership is reported on a
//! `tokio::sync::watch::Sender<bool>`: `true` after a successful create, take-over or renewal,
//! `false` at once when the Lease is seen held by another identity, a write conflicts, or
//! renewals have failed for longer than the renew deadline (`lease_duration - renew_every`,
//! so a partitioned leader stops before a standby may take over). On cancellation a leader
//! reports `false` first, then releases the Lease (clears the holder) so a standby takes over
//! on its next poll instead of waiting for expiry.
//!
//! # Wiring into the daemon
//!
//! `daemon::start` spawns `LeaderElector::run` (identity `$POD_NAME`, namespace
//! `$POD_NAMESPACE`, Lease `rollbackd-leader`, e.g. 15 s duration, 2 s renewals) with a
//! `watch::channel(false)` and gates on the receiver (`tests/leader_daemons.rs` runs two
//! daemons against the simulator):
//!
//! - the evaluation loop runs its cycles and `on_alerts`, and hands incidents to the runner,
//!   only while `*rx.borrow()` is true; a standby keeps its watcher caches and its deploy
//!   windows (`on_deploy`) current and its API up, but decides nothing;
//! - on a `false → true` change it resumes `store.in_flight()` incidents (as at start) and
//!   evaluates at once; on `true → false` it starts no new evaluation or incident, and
//!   every incident task already running stops at its next step boundary (the step in
//!   flight reaches the journal; nothing is announced), for the new leader to resume;
//! - every write to the cluster is fenced (`cluster::fence`): the elector publishes the
//!   term it leads in (`leaseTransitions`, [`LeaderElector::with_term`]) and the cluster
//!   reads the Lease before each patch or create, refusing when another replica holds it,
//!   the term changed or it expired, before this elector has noticed;
//! - the leader writes the URL of its API ([`LeaderElector::with_advertise_url`],
//!   `server.advertise_url` or `http://$POD_IP:<port>`) on the Lease as the annotation
//!   `rollbackd.io/api-url` each time it creates, takes over or renews it (the same `PUT`),
//!   and removes a previous holder's; every replica publishes the holder it read with that
//!   URL ([`LeaderElector::with_leader_addr`]), so that the API's mutating routes (trigger,
//!   approve, cancel, pause, resume) and the webhook, reaching a standby, are forwarded to
//!   the leader (`api::forward`); with no live leader, no URL or the leader out of reach
//!   they answer 503 with `Retry-After` (Alertmanager retries 5xx).
//!
//! Expiry is judged with the local clock against the holder's `renewTime`: clocks of the
//! replicas must agree to well within `lease_duration` (NTP does this).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::LeaderAddr;
use crate::api::forward::LEASE_ANNOTATION;

/// Why one election round failed (the round is retried after `renew_every`).
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Another replica wrote the Lease first (HTTP 409 Conflict or AlreadyExists).
    #[error("lease {0} was written by another replica first")]
    Conflict(String),
    /// Any other API error.
    #[error("lease {name}: {source}")]
    Api {
        /// The Lease.
        name: String,
        /// The client error.
        source: kube::Error,
    },
    /// The API did not answer within the call timeout.
    #[error("lease {0}: the API did not answer in time")]
    Timeout(String),
    /// A time could not be represented.
    #[error("lease time out of range: {0}")]
    Time(String),
}

impl LeaderError {
    /// Label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            LeaderError::Conflict(_) => "conflict",
            LeaderError::Api { .. } => "api",
            LeaderError::Timeout(_) => "timeout",
            LeaderError::Time(_) => "time",
        }
    }
}

/// What to do with the Lease as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// There is no Lease: create it, holding it.
    Create,
    /// I hold it: renew it.
    Renew,
    /// It is free or expired: take it over; `transitions` is the new `leaseTransitions`.
    Acquire {
        /// The previous holder (`None` when free).
        previous: Option<String>,
        /// `leaseTransitions` after the take-over.
        transitions: i32,
    },
    /// Someone else holds it until `expires`.
    Wait {
        /// The current holder.
        holder: String,
        /// When the holder's lease runs out unless renewed.
        expires: DateTime<Utc>,
    },
}

/// Converts a Lease time to chrono.
pub fn from_micro_time(t: &MicroTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.0.as_microsecond())
}

/// Converts a chrono time to a Lease time.
pub fn to_micro_time(t: DateTime<Utc>) -> Result<MicroTime, LeaderError> {
    Timestamp::from_microsecond(t.timestamp_micros())
        .map(MicroTime)
        .map_err(|e| LeaderError::Time(e.to_string()))
}

/// The pure election rule (see the module documentation). A Lease held by someone else with
/// no `renewTime` (nor `acquireTime`) or no `leaseDurationSeconds` counts as expired: it
/// cannot prove it is alive.
pub fn decide(lease: Option<&Lease>, me: &str, now: DateTime<Utc>) -> Action {
    let Some(lease) = lease else {
        return Action::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    let holder = spec.holder_identity.filter(|h| !h.is_empty());
    match holder {
        Some(h) if h == me => Action::Renew,
        None => Action::Acquire {
            previous: None,
            transitions: transitions.saturating_add(1),
        },
        Some(h) => {
            let renewed = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .and_then(from_micro_time);
            let duration = spec
                .lease_duration_seconds
                .filter(|d| *d > 0)
                .map(|d| TimeDelta::seconds(i64::from(d)));
            match (renewed, duration) {
                (Some(r), Some(d)) if now < r + d => Action::Wait {
                    holder: h,
                    expires: r + d,
                },
                _ => Action::Acquire {
                    previous: Some(h),
                    transitions: transitions.saturating_add(1),
                },
            }
        }
    }
}

/// Elects one leader among the replicas sharing a Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    lease_name: String,
    identity: String,
    lease_duration: Duration,
    renew_every: Duration,
    call_timeout: Duration,
    /// Where the `leaseTransitions` of the term this replica holds is published (`None`
    /// while it holds none), for the write fence.
    term: Option<watch::Sender<Option<i32>>>,
    /// The API URL written on the Lease while this replica holds it.
    advertise_url: Option<String>,
    /// Where the holder read each round is published, for forwarding writes.
    leader_addr: Option<watch::Sender<Option<LeaderAddr>>>,
}

/// The API URL a Lease advertises ([`LEASE_ANNOTATION`]), if it is an http(s) URL.
pub fn advertised_url(lease: &Lease) -> Option<String> {
    let url = lease.metadata.annotations.as_ref()?.get(LEASE_ANNOTATION)?;
    (url.starts_with("http://") || url.starts_with("https://"))
        .then(|| url.trim_end_matches('/').to_string())
}

impl LeaderElector {
    /// An elector for Lease `namespace/lease_name`, as `identity` (the pod name).
    ///
    /// `lease_duration` is written as whole seconds (at least 1). `renew_every` is how often
    /// the Lease is read and renewed (or polled by a standby); it is capped at a third of
    /// the lease duration so that a leader renews at least twice before it could expire.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        lease_duration: Duration,
        renew_every: Duration,
    ) -> Self {
        let lease_duration =
            Duration::from_secs(lease_duration.as_secs_f64().ceil().max(1.0) as u64);
        let renew_every = renew_every
            .min(lease_duration / 3)
            .max(Duration::from_millis(10));
        LeaderElector {
            api: Api::namespaced(client, namespace),
            lease_name: lease_name.to_string(),
            identity: identity.to_string(),
            lease_duration,
            renew_every,
            call_timeout: renew_every.max(Duration::from_millis(500)),
            term: None,
            advertise_url: None,
            leader_addr: None,
        }
    }

    /// Writes `url` (this replica's API) on the Lease as [`LEASE_ANNOTATION`] whenever it
    /// creates, takes over or renews it; `None` removes a previous holder's.
    pub fn with_advertise_url(mut self, url: Option<String>) -> Self {
        self.advertise_url = url;
        self
    }

    /// Publishes the Lease holder read each round on `tx`, with the URL it advertises and
    /// when its Lease runs out: `None` while the Lease is free, expired or being taken.
    pub fn with_leader_addr(mut self, tx: watch::Sender<Option<LeaderAddr>>) -> Self {
        self.leader_addr = Some(tx);
        self
    }

    fn publish_leader(&self, addr: Option<LeaderAddr>) {
        if let Some(tx) = &self.leader_addr {
            tx.send_if_modified(|a| {
                let changed = *a != addr;
                *a = addr;
                changed
            });
        }
    }

    /// This replica as the holder, until `now + lease_duration`.
    fn me_as_leader(&self, now: DateTime<Utc>) -> LeaderAddr {
        LeaderAddr {
            identity: self.identity.clone(),
            url: self.advertise_url.clone(),
            expires: TimeDelta::from_std(self.lease_duration)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(now),
        }
    }

    /// Sets (or removes) the annotation advertising this replica's API.
    fn advertise(&self, meta: &mut ObjectMeta) {
        match &self.advertise_url {
            Some(url) => {
                meta.annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(LEASE_ANNOTATION.to_string(), url.clone());
            }
            None => {
                if let Some(a) = meta.annotations.as_mut() {
                    a.remove(LEASE_ANNOTATION);
                }
            }
        }
    }

    /// Publishes the term (`leaseTransitions`) this replica leads in on `term`, for
    /// [`crate::cluster::fence::Fence`]: `None` whenever it does not lead.
    pub fn with_term(mut self, term: watch::Sender<Option<i32>>) -> Self {
        self.term = Some(term);
        self
    }

    fn publish_term(&self, term: Option<i32>) {
        if let Some(tx) = &self.term {
            tx.send_if_modified(|t| {
                let changed = *t != term;
                *t = term;
                changed
            });
        }
    }

    /// The identity this elector writes as `holderIdentity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The lease duration as written to the Lease.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// How often the Lease is renewed or polled.
    pub fn renew_every(&self) -> Duration {
        self.renew_every
    }

    /// Longest time a leader keeps leading without a successful renewal.
    fn renew_deadline(&self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_every)
    }

    /// Runs the election until `cancel`, reporting leadership on `tx` (only changes are
    /// sent). On cancellation a leader sends `false`, then releases the Lease.
    pub async fn run(self, cancel: CancellationToken, tx: watch::Sender<bool>) {
        use tokio::time::{Instant, sleep_until, timeout_at};
        // When the last successful write started: the Lease's renewTime is at most that
        // old, so leading until `+ renew_deadline` stops `renew_every` before any standby
        // may take over (at renewTime + lease_duration).
        let mut last_renewed: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let deadline = last_renewed.map(|t| t + self.renew_deadline());
            let round = self.round(Utc::now());
            let result = match deadline {
                // A leader's round may not outlive its deadline (a hung API).
                Some(d) => timeout_at(d, round)
                    .await
                    .unwrap_or_else(|_| Err(LeaderError::Timeout(self.lease_name.clone()))),
                None => round.await,
            };
            let leading = match result {
                Ok(Some(term)) => {
                    last_renewed = Some(started);
                    self.publish_term(Some(term));
                    true
                }
                Ok(None) => {
                    last_renewed = None;
                    false
                }
                Err(LeaderError::Conflict(_)) => {
                    tracing::info!(lease = %self.lease_name, identity = %self.identity, "lease written by another replica first");
                    last_renewed = None;
                    false
                }
                Err(e) => {
                    tracing::warn!(lease = %self.lease_name, error = %e, kind = e.metric_label(), "leader election round failed");
                    // Keep leading only while no standby can have taken over.
                    match deadline {
                        Some(d) if Instant::now() < d => true,
                        _ => {
                            last_renewed = None;
                            false
                        }
                    }
                }
            };
            if !leading {
                self.publish_term(None);
            }
            report(&tx, leading, &self.identity);
            let mut wake = started + self.renew_every;
            if let Some(t) = last_renewed {
                wake = wake.min(t + self.renew_deadline());
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = sleep_until(wake) => {}
            }
        }
        let was_leading = *tx.borrow();
        self.publish_term(None);
        self.publish_leader(None);
        report(&tx, false, &self.identity);
        if was_leading && let Err(e) = self.release().await {
            tracing::warn!(lease = %self.lease_name, error = %e, "could not release the lease; a standby takes over when it expires");
        }
    }

    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, LeaderError> {
        match tokio::time::timeout(self.call_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
                Err(LeaderError::Conflict(self.lease_name.clone()))
            }
            Ok(Err(source)) => Err(LeaderError::Api {
                name: self.lease_name.clone(),
                source,
            }),
            Err(_) => Err(LeaderError::Timeout(self.lease_name.clone())),
        }
    }

    /// One read-decide-write round; `Ok(Some(term))` when this replica holds the Lease after
    /// it, `term` being the Lease's `leaseTransitions`.
    async fn round(&self, now: DateTime<Utc>) -> Result<Option<i32>, LeaderError> {
        let current = self.call(self.api.get_opt(&self.lease_name)).await?;
        let action = decide(current.as_ref(), &self.identity, now);
        let duration_secs = i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let now_mt = to_micro_time(now)?;
        match (action, current) {
            (Action::Wait { holder, expires }, current) => {
                self.publish_leader(Some(LeaderAddr {
                    identity: holder,
                    url: current.as_ref().and_then(advertised_url),
                    expires,
                }));
                Ok(None)
            }
            (Action::Create, _) | (_, None) => {
                self.publish_leader(None);
                let mut metadata = ObjectMeta {
                    name: Some(self.lease_name.clone()),
                    ..ObjectMeta::default()
                };
                self.advertise(&mut metadata);
                let lease = Lease {
                    metadata,
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(now_mt.clone()),
                        renew_time: Some(now_mt),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.call(self.api.create(&PostParams::default(), &lease))
                    .await?;
                self.publish_leader(Some(self.me_as_leader(now)));
                tracing::info!(lease = %self.lease_name, identity = %self.identity, "created the lease: leading");
                Ok(Some(0))
            }
            (Action::Renew, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = Some(now_mt);
                spec.lease_duration_seconds = Some(duration_secs);
                let term = spec.lease_transitions.unwrap_or(0);
                self.advertise(&mut lease.metadata);
                self.replace(&lease).await?;
                self.publish_leader(Some(self.me_as_leader(now)));
                Ok(Some(term))
            }
            (
                Action::Acquire {
                    previous,
                    transitions,
                },
                Some(mut lease),
            ) => {
                // the previous holder is gone: nothing is forwarded to it any more
                self.publish_leader(None);
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(self.identity.clone());
                spec.acquire_time = Some(now_mt.clone());
                spec.renew_time = Some(now_mt);
                spec.lease_duration_seconds = Some(duration_secs);
                spec.lease_transitions = Some(transitions);
                self.advertise(&mut lease.metadata);
                self.replace(&lease).await?;
                self.publish_leader(Some(self.me_as_leader(now)));
                tracing::info!(lease = %self.lease_name, identity = %self.identity, previous = previous.as_deref().unwrap_or(""), transitions, "acquired the lease: leading");
                Ok(Some(transitions))
            }
        }
    }

    /// `PUT` with the `resourceVersion` that was read (a 409 if it changed since).
    async fn replace(&self, lease: &Lease) -> Result<Lease, LeaderError> {
        self.call(
            self.api
                .replace(&self.lease_name, &PostParams::default(), lease),
        )
        .await
    }

    /// Clears the holder if this replica still holds the Lease.
    async fn release(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self.call(self.api.get_opt(&self.lease_name)).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(to_micro_time(Utc::now())?);
        if let Some(a) = lease.metadata.annotations.as_mut() {
            a.remove(LEASE_ANNOTATION);
        }
        self.replace(&lease).await?;
        tracing::info!(lease = %self.lease_name, identity = %self.identity, "released the lease");
        Ok(())
    }
}

fn report(tx: &watch::Sender<bool>, leading: bool, identity: &str) {
    let changed = tx.send_if_modified(|v| {
        if *v == leading {
            false
        } else {
            *v = leading;
            true
        }
    });
    if changed {
        tracing::info!(identity, leading, "leadership changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn lease(
        holder: Option<&str>,
        renew: Option<&str>,
        acquire: Option<&str>,
        duration: Option<i32>,
        transitions: Option<i32>,
    ) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: renew.map(|r| to_micro_time(t(r)).unwrap()),
                acquire_time: acquire.map(|r| to_micro_time(t(r)).unwrap()),
                lease_duration_seconds: duration,
                lease_transitions: transitions,
                ..LeaseSpec::default()
            }),
        }
    }

    const NOW: &str = "2026-01-01T00:00:10Z";

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(decide(None, "a", t(NOW)), Action::Create);
    }

    #[test]
    fn my_lease_is_renewed_even_when_expired() {
        for renew in [
            Some("2026-01-01T00:00:09Z"),
            Some("2020-01-01T00:00:00Z"),
            None,
        ] {
            let l = lease(Some("a"), renew, None, Some(15), Some(3));
            assert_eq!(decide(Some(&l), "a", t(NOW)), Action::Renew);
        }
    }

    #[test]
    fn free_lease_is_acquired_with_a_transition() {
        for holder in [None, Some("")] {
            let l = lease(
                holder,
                Some("2026-01-01T00:00:09Z"),
                None,
                Some(15),
                Some(3),
            );
            assert_eq!(
                decide(Some(&l), "a", t(NOW)),
                Action::Acquire {
                    previous: None,
                    transitions: 4
                }
            );
        }
        let spec_less = Lease::default();
        assert_eq!(
            decide(Some(&spec_less), "a", t(NOW)),
            Action::Acquire {
                previous: None,
                transitions: 1
            }
        );
    }

    #[test]
    fn live_lease_of_another_is_waited_for() {
        let l = lease(
            Some("b"),
            Some("2026-01-01T00:00:00Z"),
            None,
            Some(15),
            Some(2),
        );
        assert_eq!(
            decide(Some(&l), "a", t(NOW)),
            Action::Wait {
                holder: "b".into(),
                expires: t("2026-01-01T00:00:15Z")
            }
        );
        // One microsecond before expiry: still held.
        let just_before = t("2026-01-01T00:00:15Z") - TimeDelta::microseconds(1);
        assert!(matches!(
            decide(Some(&l), "a", just_before),
            Action::Wait { .. }
        ));
    }

    #[test]
    fn expired_lease_of_another_is_taken_over() {
        let l = lease(
            Some("b"),
            Some("2026-01-01T00:00:00Z"),
            None,
            Some(10),
            Some(2),
        );
        // renewTime + duration == now: expired.
        assert_eq!(
            decide(Some(&l), "a", t(NOW)),
            Action::Acquire {
                previous: Some("b".into()),
                transitions: 3
            }
        );
    }

    #[test]
    fn acquire_time_stands_in_for_a_missing_renew_time() {
        let l = lease(
            Some("b"),
            None,
            Some("2026-01-01T00:00:05Z"),
            Some(10),
            None,
        );
        assert!(matches!(decide(Some(&l), "a", t(NOW)), Action::Wait { .. }));
        let l = lease(
            Some("b"),
            None,
            Some("2026-01-01T00:00:00Z"),
            Some(10),
            None,
        );
        assert_eq!(
            decide(Some(&l), "a", t(NOW)),
            Action::Acquire {
                previous: Some("b".into()),
                transitions: 1
            }
        );
    }

    #[test]
    fn a_lease_that_cannot_prove_it_is_alive_is_taken_over() {
        for l in [
            lease(Some("b"), None, None, Some(10), Some(1)),
            lease(Some("b"), Some("2026-01-01T00:00:09Z"), None, None, Some(1)),
            lease(
                Some("b"),
                Some("2026-01-01T00:00:09Z"),
                None,
                Some(0),
                Some(1),
            ),
            lease(
                Some("b"),
                Some("2026-01-01T00:00:09Z"),
                None,
                Some(-5),
                Some(1),
            ),
        ] {
            assert_eq!(
                decide(Some(&l), "a", t(NOW)),
                Action::Acquire {
                    previous: Some("b".into()),
                    transitions: 2
                }
            );
        }
    }

    #[test]
    fn transitions_saturate() {
        let l = lease(None, None, None, Some(10), Some(i32::MAX));
        assert_eq!(
            decide(Some(&l), "a", t(NOW)),
            Action::Acquire {
                previous: None,
                transitions: i32::MAX
            }
        );
    }

    #[test]
    fn renewal_in_the_future_is_respected() {
        // A holder whose clock runs ahead: still held.
        let l = lease(
            Some("b"),
            Some("2026-01-01T00:00:20Z"),
            None,
            Some(10),
            Some(0),
        );
        assert!(matches!(decide(Some(&l), "a", t(NOW)), Action::Wait { .. }));
    }

    #[test]
    fn micro_time_round_trips() {
        let now = t("2026-01-01T00:00:10.123456Z");
        assert_eq!(from_micro_time(&to_micro_time(now).unwrap()), Some(now));
    }

    #[test]
    fn error_labels() {
        assert_eq!(LeaderError::Conflict("x".into()).metric_label(), "conflict");
        assert_eq!(LeaderError::Timeout("x".into()).metric_label(), "timeout");
        assert_eq!(LeaderError::Time("x".into()).metric_label(), "time");
    }
}
