//! Daemon configuration: a TOML file, then `ROLLBACKD_<SECTION>__<KEY>` environment
//! variables (figment), validated into [`Config`] with every problem named by its key.
//! Secrets may be given inline or as `*_file` paths (Kubernetes Secret mounts).

mod raw;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use crate::store::Synchronous;
pub use raw::RawConfig;
use rollbackd_core::policy::duration::parse_duration;

/// A configuration problem: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The key, dotted as in the file (e.g. `server.listen`).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every problem found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// A token's role.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read-only API access.
    Viewer,
    /// May trigger, approve, cancel, pause.
    Operator,
}

/// An API token.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who the token belongs to (`[[auth.tokens]] name`); audit entries name it.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// The token itself (`token`, or read from `token_file`); at least 16 characters.
    pub secret: String,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiToken({}, {:?}, ***)", self.name, self.role)
    }
}

/// How the Alertmanager webhook authenticates (its `http_config`). With neither a bearer
/// token nor basic credentials the webhook refuses every request, unless
/// `allow_unauthenticated` says anyone may post alerts.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct WebhookAuth {
    /// Bearer token Alertmanager sends (`webhook.bearer_token(_file)`).
    pub bearer_token: Option<String>,
    /// Basic auth username and password (`webhook.basic_username`,
    /// `webhook.basic_password(_file)`).
    pub basic: Option<(String, String)>,
    /// Accept alerts without credentials when none are configured (an explicit choice).
    pub allow_unauthenticated: bool,
}

impl WebhookAuth {
    /// Whether no credentials are configured.
    pub fn has_credentials(&self) -> bool {
        self.bearer_token.is_some() || self.basic.is_some()
    }

    /// Whether anyone may post alerts (no credentials, explicitly allowed).
    pub fn is_open(&self) -> bool {
        !self.has_credentials() && self.allow_unauthenticated
    }
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebhookAuth(bearer: {}, basic: {}, allow_unauthenticated: {})",
            self.bearer_token.is_some(),
            self.basic.is_some(),
            self.allow_unauthenticated
        )
    }
}

/// Where the Kubernetes API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeMode {
    /// The in-cluster service account, else `~/.kube/config` (kube's inference).
    Infer,
    /// A kubeconfig file.
    Kubeconfig(PathBuf),
    /// The built-in simulator, seeded with the policies' workloads.
    Sim,
}

/// The validated configuration. Its `Debug` leaves secrets out (tokens, keys, webhook
/// URLs, Prometheus headers' values).
#[derive(Clone)]
pub struct Config {
    /// Address of the HTTP API (`server.listen`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Request bodies above this many bytes get 413 (`server.max_body_bytes`, default 1 MiB).
    pub max_body_bytes: usize,
    /// This replica's API as the other replicas reach it, `scheme://host:port`
    /// (`server.advertise_url`; default `http://$POD_IP:<port of listen>` when `POD_IP` is
    /// set, else none): written on the Lease while it leads, for standbys to forward writes.
    pub advertise_url: Option<String>,
    /// The URL people reach the API at, for links in notifications (`server.external_url`,
    /// an `http(s)://` URL); `None` = no links.
    pub external_url: Option<String>,
    /// API tokens (`[[auth.tokens]]`); with none the API is read-only.
    pub tokens: Vec<ApiToken>,
    /// How the Alertmanager webhook authenticates (`[webhook]`).
    pub webhook_auth: WebhookAuth,
    /// Label naming the agent on alerts (falls back to `namespace` + `deployment`).
    pub agent_label: String,
    /// Which backend keeps the daemon's state (`store.backend`, default `sqlite`).
    pub store: StoreConfig,
    /// Finished incidents (with their steps, backups, notifications and audit), alerts and
    /// audit entries older than this are deleted hourly (`store.retention`, default 30d,
    /// at least 1h).
    pub retention: Duration,
    /// Where the Kubernetes API is (`kubernetes.mode`, default `infer`).
    pub kube: KubeMode,
    /// Alertmanager's API, asked for the firing alerts whenever this replica starts leading
    /// (`alertmanager.url`); `None`: only the webhook tells of alerts.
    pub alertmanager_url: Option<String>,
    /// Only alerts routed to receivers matching this (`alertmanager.receiver`).
    pub alertmanager_receiver: Option<String>,
    /// Timeout of that request (`alertmanager.timeout`, default 5s).
    pub alertmanager_timeout: Duration,
    /// Record each decision, step and outcome as an `events.k8s.io/v1` Event on the
    /// workload (`kubernetes.events`, default true).
    pub kube_events: bool,
    /// Prometheus-compatible API (`prometheus.url`); `None` = direct scrape of each agent's
    /// `/metrics`.
    pub prometheus_url: Option<String>,
    /// Bearer token sent to Prometheus (`prometheus.bearer_token(_file)`).
    pub prometheus_bearer: Option<String>,
    /// Extra headers sent to Prometheus, e.g. `X-Scope-OrgID` (`prometheus.headers`).
    pub prometheus_headers: BTreeMap<String, String>,
    /// Timeout of each Prometheus query or direct scrape (`prometheus.timeout`, default 5s).
    pub prometheus_timeout: Duration,
    /// Time between evaluation cycles (`evaluation.interval`, default 15s, at least 100ms).
    pub interval: Duration,
    /// Up to this much random delay added to each interval (`evaluation.jitter`, default 2s).
    pub jitter: Duration,
    /// Decide and notify, never mutate the cluster (`safety.dry_run`, default false).
    pub dry_run: bool,
    /// At most this many unattended rollbacks per agent per deploy window; more are blocked
    /// (`safety.max_rollbacks_per_agent_per_window`, default 1).
    pub max_rollbacks_per_agent_per_window: usize,
    /// At most this many unattended rollbacks per hour across all agents; more are blocked
    /// (`safety.max_rollbacks_per_hour`, default 3).
    pub max_rollbacks_per_hour: usize,
    /// Slack Web API bot token (`notify.slack_token(_file)`); `None` = no Web API.
    pub slack_token: Option<String>,
    /// Slack Web API base URL (`notify.slack_api_url`, default `https://slack.com/api`).
    pub slack_api_url: String,
    /// Slack incoming webhook URL, used when there is no token (`notify.slack_webhook_url`);
    /// a secret.
    pub slack_webhook_url: Option<String>,
    /// Slack signing secret (`notify.slack_signing_secret(_file)`): with it the incident
    /// messages carry buttons and `POST /api/v1/slack/interactions` verifies their presses;
    /// `None` = no buttons, and the endpoint refuses every request.
    pub slack_signing_secret: Option<String>,
    /// Statuspage API key (`notify.statuspage_api_key(_file)`); `None` = no Statuspage.
    pub statuspage_api_key: Option<String>,
    /// Statuspage API base URL (`notify.statuspage_api_url`, default
    /// `https://api.statuspage.io/v1`).
    pub statuspage_api_url: String,
    /// Generic JSON webhook URL for every notification (`notify.webhook_url`); a secret.
    pub webhook_url: Option<String>,
    /// PagerDuty routing keys by service name: `default` from
    /// `notify.pagerduty_routing_key(_file)`, the others from
    /// `[notify.pagerduty_services.NAME] routing_key(_file)`; secrets. Empty = no paging.
    pub pagerduty_routing_keys: BTreeMap<String, String>,
    /// PagerDuty Events API v2 endpoint (`notify.pagerduty_api_url`, default
    /// `https://events.pagerduty.com/v2/enqueue`).
    pub pagerduty_api_url: String,
    /// Policy files or directories of `*.toml` (`policies.paths`, default `["policies"]`).
    pub policy_paths: Vec<PathBuf>,
    /// Log line format (`logging.format`, default `text`).
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `rollbackd=debug` (`logging.level`, default `info`).
    pub log_level: String,
    /// Leader election, when enabled: (namespace, lease, identity, duration, renew every).
    pub leader: Option<LeaderConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("advertise_url", &self.advertise_url)
            .field("external_url", &self.external_url)
            .field("tokens", &self.tokens)
            .field("webhook_auth", &self.webhook_auth)
            .field("agent_label", &self.agent_label)
            .field("store", &self.store)
            .field("retention", &self.retention)
            .field("kube", &self.kube)
            .field("prometheus_url", &self.prometheus_url)
            .field("prometheus_bearer", &set(&self.prometheus_bearer))
            .field(
                "prometheus_headers",
                &self.prometheus_headers.keys().collect::<Vec<_>>(),
            )
            .field("prometheus_timeout", &self.prometheus_timeout)
            .field("interval", &self.interval)
            .field("jitter", &self.jitter)
            .field("dry_run", &self.dry_run)
            .field(
                "max_rollbacks_per_agent_per_window",
                &self.max_rollbacks_per_agent_per_window,
            )
            .field("max_rollbacks_per_hour", &self.max_rollbacks_per_hour)
            .field("slack_token", &set(&self.slack_token))
            .field("slack_api_url", &self.slack_api_url)
            .field("slack_webhook_url", &set(&self.slack_webhook_url))
            .field("slack_signing_secret", &set(&self.slack_signing_secret))
            .field("statuspage_api_key", &set(&self.statuspage_api_key))
            .field("statuspage_api_url", &self.statuspage_api_url)
            .field("webhook_url", &set(&self.webhook_url))
            .field(
                "pagerduty_routing_keys",
                &self.pagerduty_routing_keys.keys().collect::<Vec<_>>(),
            )
            .field("pagerduty_api_url", &self.pagerduty_api_url)
            .field("policy_paths", &self.policy_paths)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("leader", &self.leader)
            .finish()
    }
}

/// Where the daemon keeps its state (`[store]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `backend = "sqlite"` (the default): one SQLite file per replica.
    Sqlite {
        /// The file (`store.path`, default `rollbackd.db`).
        path: PathBuf,
        /// How hard SQLite syncs each commit (`store.synchronous`, default `normal`).
        synchronous: Synchronous,
    },
    /// `backend = "kubernetes"`: `RollbackIncident`s and ConfigMaps on the Kubernetes API
    /// (`crate::store::KubeStore`), shared by every replica.
    Kubernetes {
        /// The namespace of its objects (`store.namespace`, default `rollbackd`).
        namespace: String,
    },
}

/// Whether `s` is a namespace name (a DNS-1123 label).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Leader election settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    /// Namespace of the Lease (`leader.namespace`, default `rollbackd`).
    pub namespace: String,
    /// Name of the Lease (`leader.lease_name`, default `rollbackd-leader`).
    pub lease_name: String,
    /// This replica's name in the Lease: `leader.identity`, else `$POD_NAME`, `$HOSTNAME` or
    /// `rollbackd`.
    pub identity: String,
    /// How long a Lease holds without renewal (`leader.lease_duration`, default 15s).
    pub lease_duration: Duration,
    /// How often each replica reads and renews the Lease (`leader.renew_every`, default 2s).
    pub renew_every: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line.
    Json,
}

/// Loads `file` (if given) then the environment, and validates.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigErrors> {
    let mut figment = Figment::new();
    if let Some(f) = file {
        if !f.exists() {
            return Err(ConfigErrors(vec![ConfigError {
                key: "(file)".into(),
                message: format!("{} does not exist", f.display()),
            }]));
        }
        figment = figment.merge(Toml::file(f));
    }
    figment = figment.merge(Env::prefixed("ROLLBACKD_").split("__"));
    let raw: RawConfig = figment.extract().map_err(|e| {
        ConfigErrors(
            e.into_iter()
                .map(|err| ConfigError {
                    key: if err.path.is_empty() {
                        "(config)".into()
                    } else {
                        err.path.join(".")
                    },
                    message: err.kind.to_string(),
                })
                .collect(),
        )
    })?;
    raw.validate()
}

/// The shipped evaluation interval and jitter (`[evaluation]` defaults), for figures that
/// compare against them without a configuration file.
pub fn evaluation_defaults() -> (Duration, Duration) {
    let raw = raw::Evaluation::default();
    let mut errors = Vec::new();
    (
        duration("evaluation.interval", &raw.interval, &mut errors),
        duration("evaluation.jitter", &raw.jitter, &mut errors),
    )
}

/// Reads a secret given inline or as a file (trailing newline trimmed).
fn secret(
    key: &str,
    inline: &Option<String>,
    file: &Option<PathBuf>,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            errors.push(ConfigError {
                key: key.into(),
                message: format!("give {key} or {key}_file, not both"),
            });
            None
        }
        (Some(v), None) => Some(v.clone()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(v) => Some(v.trim_end_matches(['\n', '\r']).to_string()),
            Err(e) => {
                errors.push(ConfigError {
                    key: format!("{key}_file"),
                    message: format!("cannot read {}: {e}", path.display()),
                });
                None
            }
        },
        (None, None) => None,
    }
}

/// The URL this replica advertises on the Lease while it leads (`server.advertise_url`):
/// `given` (empty counts as unset), else `http://<pod_ip>:<port of listen>` when `pod_ip`
/// (the `POD_IP` environment variable) is set, an IPv6 address bracketed, else none. Only
/// `http(s)://host[:port]` is taken: no path (the API's paths are appended), query,
/// fragment or credentials (anyone who can read the Lease sees it). Returned without a
/// trailing `/`.
pub fn advertise_url(
    given: Option<&str>,
    pod_ip: Option<&str>,
    listen: SocketAddr,
) -> Result<Option<String>, ConfigError> {
    let error = |message: String| ConfigError {
        key: "server.advertise_url".into(),
        message,
    };
    let text = match (given.map(str::trim).filter(|s| !s.is_empty()), pod_ip) {
        (Some(url), _) => url.to_string(),
        (None, Some(ip)) if !ip.trim().is_empty() => {
            let ip: std::net::IpAddr = ip.trim().parse().map_err(|_| {
                error(format!(
                    "unset, and $POD_IP {ip:?} is not an IP address to default to: set server.advertise_url"
                ))
            })?;
            return Ok(Some(format!(
                "http://{}",
                SocketAddr::new(ip, listen.port())
            )));
        }
        (None, _) => return Ok(None),
    };
    let url =
        reqwest::Url::parse(&text).map_err(|e| error(format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(error(format!("expected an http(s) URL, got {text:?}")));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(error(format!("{text:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error(format!(
            "{:?} carries credentials: it is written on the Lease, give scheme://host:port only",
            text.split('@').next_back().unwrap_or_default()
        )));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(error(format!(
            "{text:?} has a path, query or fragment: give scheme://host:port only (the API's paths are appended)"
        )));
    }
    Ok(Some(url.as_str().trim_end_matches('/').to_string()))
}

/// Checks that a URL setting, if given, is an `http://` or `https://` URL.
fn http_url(key: &str, url: Option<&String>, errors: &mut Vec<ConfigError>) {
    if let Some(url) = url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        errors.push(ConfigError {
            key: key.into(),
            message: format!("{url:?} is not an http:// or https:// URL"),
        });
    }
}

impl raw::Notify {
    /// The PagerDuty routing keys by service name (`default` and
    /// `[notify.pagerduty_services.NAME]`), each a secret given inline or as a file.
    fn pagerduty_routing_keys(&self, errors: &mut Vec<ConfigError>) -> BTreeMap<String, String> {
        let mut keys = BTreeMap::new();
        let default = (
            "notify.pagerduty_routing_key".to_string(),
            "default".to_string(),
            &self.pagerduty_routing_key,
            &self.pagerduty_routing_key_file,
        );
        let named = self.pagerduty_services.iter().map(|(name, s)| {
            (
                format!("notify.pagerduty_services.{name}.routing_key"),
                name.clone(),
                &s.routing_key,
                &s.routing_key_file,
            )
        });
        for (key, name, inline, file) in std::iter::once(default).chain(named) {
            let plain = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !plain {
                errors.push(ConfigError {
                    key: format!("notify.pagerduty_services.{name}"),
                    message: "a service name is letters, digits, '-', '_' and '.' (at most 63)"
                        .into(),
                });
                continue;
            }
            let Some(routing_key) = secret(&key, inline, file, errors) else {
                if inline.is_none() && file.is_none() && name != "default" {
                    errors.push(ConfigError {
                        key: format!("notify.pagerduty_services.{name}"),
                        message: "give routing_key or routing_key_file".into(),
                    });
                }
                continue;
            };
            // never the key itself in a message: it is a secret
            if routing_key.is_empty() || routing_key.contains(char::is_whitespace) {
                errors.push(ConfigError {
                    key,
                    message: "must be a PagerDuty integration key: not empty, no spaces".into(),
                });
            } else if keys.insert(name, routing_key).is_some() {
                errors.push(ConfigError {
                    key: "notify.pagerduty_services.default".into(),
                    message: "the default service's key is notify.pagerduty_routing_key(_file): give it once".into(),
                });
            }
        }
        keys
    }
}

fn duration(key: &str, text: &str, errors: &mut Vec<ConfigError>) -> Duration {
    match parse_duration(text).map(|d| d.to_std()) {
        Ok(Ok(d)) => d,
        Ok(Err(_)) | Err(_) => {
            errors.push(ConfigError {
                key: key.into(),
                message: format!("invalid duration {text:?} (e.g. \"15s\", \"5m\")"),
            });
            Duration::ZERO
        }
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let listen = self.server.listen.parse().unwrap_or_else(|_| {
            errors.push(ConfigError {
                key: "server.listen".into(),
                message: format!("{:?} is not host:port", self.server.listen),
            });
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let pod_ip = std::env::var("POD_IP").ok();
        let advertise_url = advertise_url(
            self.server.advertise_url.as_deref(),
            pod_ip.as_deref(),
            listen,
        )
        .unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let mut tokens = Vec::new();
        for (i, t) in self.auth.tokens.iter().enumerate() {
            let key = format!("auth.tokens[{i}].token");
            let role = match t.role.as_str() {
                "viewer" => Role::Viewer,
                "operator" => Role::Operator,
                other => {
                    errors.push(ConfigError {
                        key: format!("auth.tokens[{i}].role"),
                        message: format!("unknown role {other:?} (viewer or operator)"),
                    });
                    Role::Viewer
                }
            };
            match secret(&key, &t.token, &t.token_file, &mut errors) {
                Some(s) if s.len() >= 16 => tokens.push(ApiToken {
                    name: t.name.clone(),
                    role,
                    secret: s,
                }),
                Some(_) => errors.push(ConfigError {
                    key,
                    message: "must be at least 16 characters".into(),
                }),
                None if t.token.is_none() && t.token_file.is_none() => errors.push(ConfigError {
                    key,
                    message: "give token or token_file".into(),
                }),
                None => {}
            }
        }
        let bearer_token = secret(
            "webhook.bearer_token",
            &self.webhook.bearer_token,
            &self.webhook.bearer_token_file,
            &mut errors,
        );
        let basic_password = secret(
            "webhook.basic_password",
            &self.webhook.basic_password,
            &self.webhook.basic_password_file,
            &mut errors,
        );
        let basic = match (&self.webhook.basic_username, basic_password) {
            (Some(u), Some(p)) => Some((u.clone(), p)),
            (None, None) => None,
            _ => {
                errors.push(ConfigError {
                    key: "webhook.basic_username".into(),
                    message: "basic auth needs both basic_username and basic_password".into(),
                });
                None
            }
        };
        let webhook_auth = WebhookAuth {
            bearer_token,
            basic,
            allow_unauthenticated: self.webhook.allow_unauthenticated,
        };
        let credentials_given = self.webhook.bearer_token.is_some()
            || self.webhook.bearer_token_file.is_some()
            || self.webhook.basic_username.is_some();
        if !credentials_given && !webhook_auth.allow_unauthenticated {
            errors.push(ConfigError {
                key: "webhook".into(),
                message: "[webhook] has no credentials, so anyone could post alerts: set \
                          bearer_token(_file) or basic_username + basic_password(_file), or \
                          allow_unauthenticated = true to accept that"
                    .into(),
            });
        }
        let kube = match self.kubernetes.mode.as_str() {
            "infer" => KubeMode::Infer,
            "sim" => KubeMode::Sim,
            "kubeconfig" => match &self.kubernetes.kubeconfig {
                Some(p) => KubeMode::Kubeconfig(p.clone()),
                None => {
                    errors.push(ConfigError {
                        key: "kubernetes.kubeconfig".into(),
                        message: "mode \"kubeconfig\" needs a kubeconfig path".into(),
                    });
                    KubeMode::Infer
                }
            },
            other => {
                errors.push(ConfigError {
                    key: "kubernetes.mode".into(),
                    message: format!("unknown mode {other:?} (infer, kubeconfig or sim)"),
                });
                KubeMode::Infer
            }
        };
        let prometheus_url = self.prometheus.url.clone().filter(|u| !u.is_empty());
        if let Some(u) = &prometheus_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            errors.push(ConfigError {
                key: "prometheus.url".into(),
                message: format!("expected an http(s) URL, got {u:?}"),
            });
        }
        let prometheus_bearer = secret(
            "prometheus.bearer_token",
            &self.prometheus.bearer_token,
            &self.prometheus.bearer_token_file,
            &mut errors,
        );
        let prometheus_timeout =
            duration("prometheus.timeout", &self.prometheus.timeout, &mut errors);
        let interval = duration(
            "evaluation.interval",
            &self.evaluation.interval,
            &mut errors,
        );
        if interval < Duration::from_millis(100) {
            errors.push(ConfigError {
                key: "evaluation.interval".into(),
                message: "must be at least 100ms".into(),
            });
        }
        let jitter = duration("evaluation.jitter", &self.evaluation.jitter, &mut errors);
        let retention = duration("store.retention", &self.store.retention, &mut errors);
        let store = match self.store.backend.as_str() {
            "sqlite" => StoreConfig::Sqlite {
                path: self.store.path.clone(),
                synchronous: self.store.synchronous,
            },
            "kubernetes" => {
                if !is_dns_label(&self.store.namespace) {
                    errors.push(ConfigError {
                        key: "store.namespace".into(),
                        message: format!(
                            "{:?} is not a namespace name (lower-case letters, digits and '-', at most 63)",
                            self.store.namespace
                        ),
                    });
                }
                StoreConfig::Kubernetes {
                    namespace: self.store.namespace.clone(),
                }
            }
            other => {
                errors.push(ConfigError {
                    key: "store.backend".into(),
                    message: format!("unknown backend {other:?} (sqlite or kubernetes)"),
                });
                StoreConfig::Sqlite {
                    path: self.store.path.clone(),
                    synchronous: self.store.synchronous,
                }
            }
        };
        let alertmanager_timeout = duration(
            "alertmanager.timeout",
            &self.alertmanager.timeout,
            &mut errors,
        );
        if let Some(u) = &self.alertmanager.url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            errors.push(ConfigError {
                key: "alertmanager.url".into(),
                message: format!("expected an http(s) URL, got {u:?}"),
            });
        }
        if retention < Duration::from_secs(3600) {
            errors.push(ConfigError {
                key: "store.retention".into(),
                message: format!(
                    "must be at least 1h (got {:?}): incidents must outlive their rollback",
                    self.store.retention
                ),
            });
        }
        let slack_token = secret(
            "notify.slack_token",
            &self.notify.slack_token,
            &self.notify.slack_token_file,
            &mut errors,
        );
        let slack_signing_secret = secret(
            "notify.slack_signing_secret",
            &self.notify.slack_signing_secret,
            &self.notify.slack_signing_secret_file,
            &mut errors,
        );
        let statuspage_api_key = secret(
            "notify.statuspage_api_key",
            &self.notify.statuspage_api_key,
            &self.notify.statuspage_api_key_file,
            &mut errors,
        );
        if slack_signing_secret.is_some() && slack_token.is_none() {
            errors.push(ConfigError {
                key: "notify.slack_signing_secret".into(),
                message: "needs notify.slack_token(_file): the buttons are drawn on Slack Web API messages, and a press is answered through the Web API".into(),
            });
        }
        if slack_signing_secret.as_deref().is_some_and(str::is_empty) {
            errors.push(ConfigError {
                key: "notify.slack_signing_secret".into(),
                message: "is empty: give the Slack app's signing secret (Basic Information → App Credentials)".into(),
            });
        }
        let pagerduty_routing_keys = self.notify.pagerduty_routing_keys(&mut errors);
        http_url(
            "notify.pagerduty_api_url",
            Some(&self.notify.pagerduty_api_url),
            &mut errors,
        );
        http_url(
            "server.external_url",
            self.server.external_url.as_ref(),
            &mut errors,
        );
        let log_format = match self.logging.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                errors.push(ConfigError {
                    key: "logging.format".into(),
                    message: format!("unknown format {other:?} (text or json)"),
                });
                LogFormat::Text
            }
        };
        let leader = self.leader.enabled.then(|| {
            let identity = if self.leader.identity.is_empty() {
                std::env::var("POD_NAME")
                    .or_else(|_| std::env::var("HOSTNAME"))
                    .unwrap_or_else(|_| "rollbackd".into())
            } else {
                self.leader.identity.clone()
            };
            let lease_duration = duration(
                "leader.lease_duration",
                &self.leader.lease_duration,
                &mut errors,
            );
            let renew_every = duration("leader.renew_every", &self.leader.renew_every, &mut errors);
            if renew_every >= lease_duration {
                errors.push(ConfigError {
                    key: "leader.renew_every".into(),
                    message: "must be shorter than leader.lease_duration".into(),
                });
            }
            LeaderConfig {
                namespace: self.leader.namespace.clone(),
                lease_name: self.leader.lease_name.clone(),
                identity,
                lease_duration,
                renew_every,
            }
        });
        if self.policies.paths.is_empty() {
            errors.push(ConfigError {
                key: "policies.paths".into(),
                message: "needs at least one file or directory".into(),
            });
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            listen,
            max_body_bytes: self.server.max_body_bytes,
            advertise_url,
            external_url: self.server.external_url,
            tokens,
            webhook_auth,
            agent_label: self.webhook.agent_label,
            store,
            retention,
            kube,
            kube_events: self.kubernetes.events,
            alertmanager_url: self.alertmanager.url,
            alertmanager_receiver: self.alertmanager.receiver,
            alertmanager_timeout,
            prometheus_url,
            prometheus_bearer,
            prometheus_headers: self.prometheus.headers,
            prometheus_timeout,
            interval,
            jitter,
            dry_run: self.safety.dry_run,
            max_rollbacks_per_agent_per_window: self.safety.max_rollbacks_per_agent_per_window,
            max_rollbacks_per_hour: self.safety.max_rollbacks_per_hour,
            slack_token,
            slack_api_url: self.notify.slack_api_url,
            slack_webhook_url: self.notify.slack_webhook_url,
            slack_signing_secret,
            statuspage_api_key,
            statuspage_api_url: self.notify.statuspage_api_url,
            webhook_url: self.notify.webhook_url,
            pagerduty_routing_keys,
            pagerduty_api_url: self.notify.pagerduty_api_url,
            policy_paths: self.policies.paths,
            log_format,
            log_level: self.logging.level,
            leader,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_without_credentials_is_refused_unless_explicitly_open() {
        let errors = RawConfig::default().validate().unwrap_err();
        let webhook: Vec<&ConfigError> = errors.0.iter().filter(|e| e.key == "webhook").collect();
        assert_eq!(webhook.len(), 1, "{errors}");
        assert!(webhook[0].message.contains("[webhook]"), "{errors}");
        assert!(
            webhook[0].message.contains("allow_unauthenticated"),
            "{errors}"
        );

        let mut open = RawConfig::default();
        open.webhook.allow_unauthenticated = true;
        let config = open.validate().unwrap();
        assert!(config.webhook_auth.allow_unauthenticated);
        assert!(config.webhook_auth.is_open());

        let mut bearer = RawConfig::default();
        bearer.webhook.bearer_token = Some("a-long-enough-token".into());
        let config = bearer.validate().unwrap();
        assert!(!config.webhook_auth.is_open());
    }

    #[test]
    fn retention_defaults_to_30_days_and_must_outlive_a_rollback() {
        let mut raw = RawConfig::default();
        raw.webhook.allow_unauthenticated = true;
        let config = raw.validate().unwrap();
        assert_eq!(config.retention, Duration::from_secs(30 * 24 * 3600));
        for (text, wrong) in [("10m", "at least 1h"), ("forever", "invalid duration")] {
            let mut raw = RawConfig::default();
            raw.webhook.allow_unauthenticated = true;
            raw.store.retention = text.into();
            let errors = raw.validate().unwrap_err();
            let e = errors.0.iter().find(|e| e.key == "store.retention");
            assert!(e.is_some_and(|e| e.message.contains(wrong)), "{errors}");
        }
    }

    #[test]
    fn the_store_is_sqlite_unless_kubernetes_is_asked_for_by_name() {
        let open = || {
            let mut raw = RawConfig::default();
            raw.webhook.allow_unauthenticated = true;
            raw
        };
        assert_eq!(
            open().validate().unwrap().store,
            StoreConfig::Sqlite {
                path: PathBuf::from("rollbackd.db"),
                synchronous: Synchronous::Normal
            }
        );
        let mut kube = open();
        kube.store.backend = "kubernetes".into();
        assert_eq!(
            kube.validate().unwrap().store,
            StoreConfig::Kubernetes {
                namespace: "rollbackd".into()
            }
        );
        let mut elsewhere = open();
        elsewhere.store.backend = "kubernetes".into();
        elsewhere.store.namespace = "ops-state".into();
        assert_eq!(
            elsewhere.validate().unwrap().store,
            StoreConfig::Kubernetes {
                namespace: "ops-state".into()
            }
        );
        for (backend, namespace, key, says) in [
            (
                "etcd",
                "rollbackd",
                "store.backend",
                "unknown backend \"etcd\" (sqlite or kubernetes)",
            ),
            (
                "kubernetes",
                "Rollback_D",
                "store.namespace",
                "is not a namespace name",
            ),
            (
                "kubernetes",
                "",
                "store.namespace",
                "is not a namespace name",
            ),
        ] {
            let mut raw = open();
            raw.store.backend = backend.into();
            raw.store.namespace = namespace.into();
            let errors = raw.validate().unwrap_err();
            assert_eq!(errors.0.len(), 1, "{errors}");
            assert_eq!(errors.0[0].key, key, "{errors}");
            assert!(errors.0[0].message.contains(says), "{errors}");
        }
    }

    #[test]
    fn the_advertised_url_is_given_or_made_of_the_pod_ip_and_checked() {
        let listen: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let ok = |given: Option<&str>, ip: Option<&str>| advertise_url(given, ip, listen).unwrap();
        assert_eq!(ok(None, None), None);
        assert_eq!(ok(Some(""), None), None);
        assert_eq!(ok(None, Some("")), None);
        assert_eq!(
            ok(None, Some("10.1.2.3")).as_deref(),
            Some("http://10.1.2.3:8080")
        );
        assert_eq!(
            ok(None, Some("fd00::1")).as_deref(),
            Some("http://[fd00::1]:8080")
        );
        // the given one wins over $POD_IP, and loses its trailing slash
        assert_eq!(
            ok(
                Some("https://rollbackd-0.rollbackd:8443/"),
                Some("10.1.2.3")
            )
            .as_deref(),
            Some("https://rollbackd-0.rollbackd:8443")
        );
        assert_eq!(
            ok(Some("http://[fd00::2]:9090"), None).as_deref(),
            Some("http://[fd00::2]:9090")
        );
        for (given, ip, says) in [
            (Some("localhost:8080"), None, "expected an http(s) URL"),
            (Some("10.0.0.1:8080"), None, "is not a URL"),
            (Some("ftp://h:21"), None, "expected an http(s) URL"),
            (Some("http://"), None, "is not a URL"),
            (Some("not a url"), None, "is not a URL"),
            (
                Some("http://h:8080/api"),
                None,
                "has a path, query or fragment",
            ),
            (
                Some("http://h:8080/?x=1"),
                None,
                "has a path, query or fragment",
            ),
            (Some("http://u:SECRET@h:8080"), None, "carries credentials"),
            (None, Some("pod-ip"), "is not an IP address"),
        ] {
            let e = advertise_url(given, ip, listen).unwrap_err();
            assert_eq!(e.key, "server.advertise_url");
            assert!(e.message.contains(says), "{given:?} {ip:?}: {e}");
            assert!(!e.message.contains("SECRET"), "{e}");
        }
        let mut raw = RawConfig::default();
        raw.webhook.allow_unauthenticated = true;
        raw.server.advertise_url = Some("http://10.0.0.9:8080/x".into());
        let errors = raw.validate().unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert!(
            errors.to_string().starts_with("server.advertise_url: "),
            "{errors}"
        );
    }

    #[test]
    fn evaluation_defaults_are_the_shipped_ones() {
        assert_eq!(
            evaluation_defaults(),
            (Duration::from_secs(15), Duration::from_secs(2))
        );
    }

    #[test]
    fn pagerduty_routing_keys_are_secrets_by_service_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pd-key");
        std::fs::write(&file, "SECRET-file-key\n").unwrap();
        let mut raw = RawConfig::default();
        raw.webhook.allow_unauthenticated = true;
        raw.notify.pagerduty_routing_key = Some("SECRET-default-key".into());
        raw.notify.pagerduty_services.insert(
            "plant-safety".into(),
            raw::PagerDutyService {
                routing_key: None,
                routing_key_file: Some(file),
            },
        );
        let config = raw.validate().unwrap();
        assert_eq!(
            config.pagerduty_routing_keys,
            BTreeMap::from([
                ("default".to_string(), "SECRET-default-key".to_string()),
                ("plant-safety".to_string(), "SECRET-file-key".to_string()),
            ])
        );
        assert_eq!(
            config.pagerduty_api_url,
            "https://events.pagerduty.com/v2/enqueue"
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("plant-safety"), "{shown}");

        let mut bad = RawConfig::default();
        bad.webhook.allow_unauthenticated = true;
        bad.notify.pagerduty_routing_key = Some("SECRET with spaces".into());
        bad.notify.pagerduty_routing_key_file = None;
        bad.notify
            .pagerduty_services
            .insert("ops".into(), raw::PagerDutyService::default());
        bad.notify
            .pagerduty_services
            .insert("a b".into(), raw::PagerDutyService::default());
        bad.notify.pagerduty_api_url = "events.pagerduty.com".into();
        bad.server.external_url = Some("rollbackd.example".into());
        let errors = bad.validate().unwrap_err();
        let text = errors.to_string();
        assert!(!text.contains("SECRET"), "{text}");
        for expected in [
            "notify.pagerduty_routing_key: must be a PagerDuty integration key",
            "notify.pagerduty_services.ops: give routing_key or routing_key_file",
            "notify.pagerduty_services.a b: a service name is",
            "notify.pagerduty_api_url: \"events.pagerduty.com\" is not an http:// or https:// URL",
            "server.external_url: \"rollbackd.example\" is not an http",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }

        let mut twice = RawConfig::default();
        twice.webhook.allow_unauthenticated = true;
        twice.notify.pagerduty_routing_key = Some("k1".into());
        twice.notify.pagerduty_services.insert(
            "default".into(),
            raw::PagerDutyService {
                routing_key: Some("k2".into()),
                routing_key_file: None,
            },
        );
        let text = twice.validate().unwrap_err().to_string();
        assert!(text.contains("give it once"), "{text}");
    }

    #[test]
    fn a_slack_signing_secret_needs_the_token_and_may_come_from_a_file() {
        let mut alone = RawConfig::default();
        alone.webhook.allow_unauthenticated = true;
        alone.notify.slack_signing_secret = Some("s3cret".into());
        let text = alone.validate().unwrap_err().to_string();
        assert!(
            text.contains("notify.slack_signing_secret")
                && text.contains("needs notify.slack_token"),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("signing-secret");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let mut both = RawConfig::default();
        both.webhook.allow_unauthenticated = true;
        both.notify.slack_token = Some("xoxb-1".into());
        both.notify.slack_signing_secret_file = Some(file);
        let config = both.validate().unwrap();
        assert_eq!(config.slack_signing_secret.as_deref(), Some("from-a-file"));
    }

    #[test]
    fn debug_output_leaves_secrets_out() {
        let mut secrets = RawConfig::default();
        secrets.webhook.bearer_token = Some("SECRET-bearer-0123456789".into());
        secrets.notify.slack_token = Some("SECRET-xoxb".into());
        secrets.notify.slack_signing_secret = Some("SECRET-signing".into());
        secrets.notify.slack_webhook_url = Some("https://hooks.slack.com/SECRET".into());
        secrets.notify.webhook_url = Some("https://hooks.example/SECRET".into());
        secrets.notify.statuspage_api_key = Some("SECRET-key".into());
        secrets.notify.pagerduty_routing_key = Some("SECRET-pd".into());
        secrets.prometheus.bearer_token = Some("SECRET-prom".into());
        secrets
            .prometheus
            .headers
            .insert("X-Scope-OrgID".into(), "SECRET-tenant".into());
        let shown = format!("{:?}", secrets.validate().unwrap());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("X-Scope-OrgID"), "{shown}");
    }
}
