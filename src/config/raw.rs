//! The configuration as written, with defaults; every key can also be set as
//! `ROLLBACKD_<SECTION>__<KEY>`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::Synchronous;

/// The whole file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[server]`: the HTTP API's address and body limit.
    pub server: Server,
    /// `[auth]`: API tokens.
    pub auth: Auth,
    /// `[webhook]`: how the Alertmanager webhook authenticates.
    pub webhook: Webhook,
    /// `[store]`: which backend keeps the state (the SQLite file, or the Kubernetes API).
    pub store: StoreSection,
    /// `[kubernetes]`: where the Kubernetes API is.
    pub kubernetes: Kubernetes,
    /// `[prometheus]`: the metric source.
    pub prometheus: Prometheus,
    /// `[alertmanager]`: where to read the firing alerts on taking over.
    pub alertmanager: Alertmanager,
    /// `[evaluation]`: the evaluation cycle.
    pub evaluation: Evaluation,
    /// `[safety]`: dry run and rate limits.
    pub safety: Safety,
    /// `[notify]`: notifier credentials and endpoints.
    pub notify: Notify,
    /// `[policies]`: where the policy files are.
    pub policies: Policies,
    /// `[logging]`: log format and level.
    pub logging: Logging,
    /// `[leader]`: leader election.
    pub leader: Leader,
}

/// `[leader]`: leader election among replicas on a coordination.k8s.io Lease.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Leader {
    pub enabled: bool,
    pub namespace: String,
    pub lease_name: String,
    /// This replica's name; empty = the `POD_NAME` environment variable, else the hostname.
    pub identity: String,
    pub lease_duration: String,
    pub renew_every: String,
}
impl Default for Leader {
    fn default() -> Self {
        Self {
            enabled: false,
            namespace: "rollbackd".into(),
            lease_name: "rollbackd-leader".into(),
            identity: String::new(),
            lease_duration: "15s".into(),
            renew_every: "2s".into(),
        }
    }
}

/// `[server]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address of the HTTP API.
    pub listen: String,
    /// Request bodies above this are answered 413.
    pub max_body_bytes: usize,
    /// This replica's API as the other replicas reach it (written on the Lease while it
    /// leads); unset = `http://$POD_IP:<listen port>` when `POD_IP` is set, else none.
    pub advertise_url: Option<String>,
    /// The URL people reach this API at (through an ingress), for links in notifications.
    pub external_url: Option<String>,
}
impl Default for Server {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1 << 20,
            advertise_url: None,
            external_url: None,
        }
    }
}

/// `[auth]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub tokens: Vec<Token>,
}

/// `[[auth.tokens]]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: String,
    /// `viewer` or `operator`.
    pub role: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// `[webhook]`: the Alertmanager receiver.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhook {
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_username: Option<String>,
    pub basic_password: Option<String>,
    pub basic_password_file: Option<PathBuf>,
    /// Accept alerts from anyone when no credentials are set (else the daemon refuses to
    /// start): an explicit choice, warned about at start and shown on `/metrics`.
    pub allow_unauthenticated: bool,
    pub agent_label: String,
}
impl Default for Webhook {
    fn default() -> Self {
        Self {
            bearer_token: None,
            bearer_token_file: None,
            basic_username: None,
            basic_password: None,
            basic_password_file: None,
            allow_unauthenticated: false,
            agent_label: "agent".into(),
        }
    }
}

/// `[store]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite` or `kubernetes`.
    pub backend: String,
    pub path: PathBuf,
    pub synchronous: Synchronous,
    /// The namespace of the Kubernetes backend's objects.
    pub namespace: String,
    /// Finished incidents, alerts and audit entries older than this are deleted.
    pub retention: String,
}
impl Default for StoreSection {
    fn default() -> Self {
        Self {
            backend: "sqlite".into(),
            path: PathBuf::from("rollbackd.db"),
            synchronous: Synchronous::Normal,
            namespace: "rollbackd".into(),
            retention: "30d".into(),
        }
    }
}

/// `[kubernetes]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Kubernetes {
    /// `infer` (in-cluster, else ~/.kube/config), `kubeconfig` or `sim`.
    pub mode: String,
    pub kubeconfig: Option<PathBuf>,
    /// Record decisions, steps and outcomes as Kubernetes Events on the workloads.
    pub events: bool,
}
impl Default for Kubernetes {
    fn default() -> Self {
        Self {
            mode: "infer".into(),
            kubeconfig: None,
            events: true,
        }
    }
}

/// `[prometheus]`: empty `url` means direct scrape of each agent's `/metrics`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prometheus {
    pub url: Option<String>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub headers: BTreeMap<String, String>,
    pub timeout: String,
}
impl Default for Prometheus {
    fn default() -> Self {
        Self {
            url: None,
            bearer_token: None,
            bearer_token_file: None,
            headers: BTreeMap::new(),
            timeout: "5s".into(),
        }
    }
}

/// `[alertmanager]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alertmanager {
    /// Base URL of Alertmanager's API (e.g. `http://alertmanager:9093`); none: no catch-up.
    pub url: Option<String>,
    /// Only alerts routed to receivers matching this regular expression.
    pub receiver: Option<String>,
    pub timeout: String,
}
impl Default for Alertmanager {
    fn default() -> Self {
        Self {
            url: None,
            receiver: None,
            timeout: "5s".into(),
        }
    }
}

/// `[evaluation]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Evaluation {
    pub interval: String,
    pub jitter: String,
}
impl Default for Evaluation {
    fn default() -> Self {
        Self {
            interval: "15s".into(),
            jitter: "2s".into(),
        }
    }
}

/// `[safety]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Safety {
    /// Decide and notify, never mutate.
    pub dry_run: bool,
    pub max_rollbacks_per_agent_per_window: usize,
    pub max_rollbacks_per_hour: usize,
}
impl Default for Safety {
    fn default() -> Self {
        Self {
            dry_run: false,
            max_rollbacks_per_agent_per_window: 1,
            max_rollbacks_per_hour: 3,
        }
    }
}

/// `[notify]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    pub slack_token: Option<String>,
    pub slack_token_file: Option<PathBuf>,
    pub slack_api_url: String,
    pub slack_webhook_url: Option<String>,
    /// The Slack app's signing secret: turns on the incident messages' buttons.
    pub slack_signing_secret: Option<String>,
    pub slack_signing_secret_file: Option<PathBuf>,
    pub statuspage_api_key: Option<String>,
    pub statuspage_api_key_file: Option<PathBuf>,
    pub statuspage_api_url: String,
    pub webhook_url: Option<String>,
    /// The routing key of the PagerDuty service named `default`.
    pub pagerduty_routing_key: Option<String>,
    pub pagerduty_routing_key_file: Option<PathBuf>,
    /// More PagerDuty services, by the name policies give in `pagerduty.service`.
    pub pagerduty_services: BTreeMap<String, PagerDutyService>,
    pub pagerduty_api_url: String,
}

/// `[notify.pagerduty_services.NAME]`
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyService {
    pub routing_key: Option<String>,
    pub routing_key_file: Option<PathBuf>,
}

impl Default for Notify {
    fn default() -> Self {
        Self {
            slack_token: None,
            slack_token_file: None,
            slack_api_url: "https://slack.com/api".into(),
            slack_webhook_url: None,
            slack_signing_secret: None,
            slack_signing_secret_file: None,
            statuspage_api_key: None,
            statuspage_api_key_file: None,
            statuspage_api_url: "https://api.statuspage.io/v1".into(),
            webhook_url: None,
            pagerduty_routing_key: None,
            pagerduty_routing_key_file: None,
            pagerduty_services: BTreeMap::new(),
            pagerduty_api_url: "https://events.pagerduty.com/v2/enqueue".into(),
        }
    }
}

/// `[policies]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policies {
    pub paths: Vec<PathBuf>,
}
impl Default for Policies {
    fn default() -> Self {
        Self {
            paths: vec![PathBuf::from("policies")],
        }
    }
}

/// `[logging]`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `rollbackd=debug`.
    pub level: String,
}
impl Default for Logging {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}
