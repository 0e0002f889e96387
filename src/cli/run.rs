//! `rollbackd run`: the daemon, against a cluster or the built-in simulator (`--sim`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::api::Auth;
use crate::config::{Config, KubeMode, StoreConfig};
use crate::daemon::collect::MetricSource;
use crate::daemon::evaluate::Limits;
use crate::daemon::{DaemonOptions, seed, start};
use crate::lifecycle::announce::Channels;
use crate::notify::NotifierConfig;
use crate::process::{init_tracing, shutdown_signal};
use crate::signals::alertmanager::AlertmanagerClient;
use crate::signals::prometheus::{PromClient, PromClientConfig};
use crate::signals::scrape::Scraper;
use crate::store::{KubeStore, SqliteStore, StateStore};
use rollbackd_core::policy::{Policy, load_all};
use rollbackd_sim::{SimConfig, Simulator};

/// The metric source the configuration asks for.
pub fn metric_source(config: &Config) -> anyhow::Result<MetricSource> {
    Ok(match &config.prometheus_url {
        Some(url) => {
            let mut c = PromClientConfig::new(url.clone());
            c.timeout = config.prometheus_timeout;
            c.bearer_token = config.prometheus_bearer.clone();
            c.headers = config
                .prometheus_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            MetricSource::Prometheus(PromClient::new(c).context("prometheus client")?)
        }
        None => MetricSource::scrape(Scraper::new(config.prometheus_timeout).context("scraper")?),
    })
}

/// The store the configuration asks for (`[store] backend`): SQLite, or the Kubernetes API
/// through `client` (the CRD must be installed: `deploy/crds/rollbackincidents.yaml`).
pub async fn open_store(
    store: &StoreConfig,
    client: &kube::Client,
) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(match store {
        StoreConfig::Sqlite { path, synchronous } => Arc::new(
            SqliteStore::open(path, *synchronous)
                .await
                .with_context(|| format!("store {}", path.display()))?,
        ),
        StoreConfig::Kubernetes { namespace } => Arc::new(
            KubeStore::open(client.clone(), namespace)
                .await
                .with_context(|| format!("store on the Kubernetes API, namespace {namespace}"))?,
        ),
    })
}

/// Checks that every policy's PagerDuty service has a routing key when paging is on (some
/// key is configured): a page that cannot be sent must stop the start, not go missing at
/// 3 a.m. With no key at all, paging is off and the policies' `pagerduty` is ignored.
pub fn check_pagerduty(
    policies: &[Arc<Policy>],
    keys: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let wanted = policies
        .iter()
        .filter_map(|p| Some((p, p.notify.pagerduty.as_ref()?)));
    if keys.is_empty() {
        let paging: Vec<&str> = wanted.map(|(p, _)| p.agent.id.as_str()).collect();
        if !paging.is_empty() {
            tracing::info!(
                agents = %paging.join(", "),
                "PagerDuty is off (no notify.pagerduty_routing_key): these policies' pagerduty is ignored"
            );
        }
        return Ok(());
    }
    let missing: Vec<String> = wanted
        .filter(|(_, pd)| !keys.contains_key(&pd.service))
        .map(|(p, pd)| {
            format!(
                "{}: notify.pagerduty.service {:?} has no routing key in the configuration (configured: {}): add [notify.pagerduty_services.{}] routing_key_file",
                p.source.display(),
                pd.service,
                keys.keys().cloned().collect::<Vec<_>>().join(", "),
                pd.service
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", missing.join("\n"))
    }
}

/// Runs until SIGINT/SIGTERM.
pub async fn run(config_file: Option<&Path>, force_sim: bool) -> anyhow::Result<()> {
    let mut config = crate::config::load(config_file)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    if force_sim {
        config.kube = KubeMode::Sim;
    }
    init_tracing(config.log_format, &config.log_level);
    let policies: Vec<_> = load_all(&config.policy_paths)
        .map_err(|e| anyhow::anyhow!("invalid policies:\n{e}"))?
        .into_iter()
        .map(Arc::new)
        .collect();
    check_pagerduty(&policies, &config.pagerduty_routing_keys)?;
    let mut sim_handle = None;
    let client = match &config.kube {
        KubeMode::Infer => kube::Client::try_default()
            .await
            .context("Kubernetes client (in-cluster or ~/.kube/config)")?,
        KubeMode::Kubeconfig(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("kubeconfig {}", path.display()))?;
            let c = kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?;
            kube::Client::try_from(c)?
        }
        KubeMode::Sim => {
            let sim = Simulator::start(
                "127.0.0.1:0".parse()?,
                SimConfig {
                    pod_ready_after: Duration::from_secs(2),
                    ..SimConfig::default()
                },
            )
            .await?;
            seed::seed(&sim, &policies, 3)?;
            // the Kubernetes store keeps its incidents in RollbackIncidents: the built-in
            // simulator serves the shipped CRD as `kubectl apply -f deploy/crds` would
            if matches!(config.store, StoreConfig::Kubernetes { .. }) {
                sim.create(crate::store::kubernetes::crd::definition()?)?;
            }
            tracing::info!(url = %sim.url(), "built-in Kubernetes simulator seeded with the policies' workloads (kubectl --server {})", sim.url());
            let client = kube::Client::try_from(kube::Config::new(sim.url().parse()?))?;
            sim_handle = Some(sim);
            client
        }
    };
    let store = open_store(&config.store, &client).await?;
    let channels = Channels {
        slack_api: config.slack_token.is_some(),
        slack_webhook_url: config.slack_webhook_url.clone(),
        statuspage: config.statuspage_api_key.is_some(),
        webhook_url: config.webhook_url.clone(),
        pagerduty_services: config.pagerduty_routing_keys.keys().cloned().collect(),
        kube_events: config.kube_events,
        ..Channels::default()
    };
    let notifier = NotifierConfig {
        slack_api_url: config.slack_api_url.clone(),
        slack_token: config.slack_token.clone(),
        slack_signing_secret: config.slack_signing_secret.clone(),
        statuspage_api_url: config.statuspage_api_url.clone(),
        statuspage_api_key: config.statuspage_api_key.clone(),
        pagerduty_api_url: config.pagerduty_api_url.clone(),
        pagerduty_routing_keys: config.pagerduty_routing_keys.clone(),
        rollbackd_url: config.external_url.clone(),
        ..NotifierConfig::default()
    };
    let alertmanager = config
        .alertmanager_url
        .as_deref()
        .map(|url| {
            AlertmanagerClient::new(
                url,
                config.alertmanager_receiver.as_deref(),
                config.alertmanager_timeout,
            )
        })
        .transpose()
        .context("alertmanager client")?;
    let handle = start(DaemonOptions {
        policies,
        store,
        client,
        source: metric_source(&config)?,
        listen: config.listen,
        max_body_bytes: config.max_body_bytes,
        auth: Auth {
            tokens: config.tokens.clone(),
            webhook: config.webhook_auth.clone(),
        },
        agent_label: config.agent_label.clone(),
        interval: config.interval,
        jitter: config.jitter,
        limits: Limits {
            dry_run: config.dry_run,
            max_per_agent_per_window: config.max_rollbacks_per_agent_per_window,
            max_per_hour: config.max_rollbacks_per_hour,
        },
        notifier,
        channels,
        watch_interval: config.interval,
        leader: config
            .leader
            .as_ref()
            .map(|l| crate::daemon::LeaderOptions {
                namespace: l.namespace.clone(),
                lease_name: l.lease_name.clone(),
                identity: l.identity.clone(),
                lease_duration: l.lease_duration,
                renew_every: l.renew_every,
                advertise_url: config.advertise_url.clone(),
            }),
        retention: Some(config.retention),
        alertmanager,
    })
    .await?;
    tracing::info!(api = %handle.api_addr, dry_run = config.dry_run, "rollbackd running");
    // a critical task that stops takes the process down (non-zero exit), so it is restarted
    let tasks = handle.tasks.clone();
    let failed = tokio::select! {
        _ = shutdown_signal() => None,
        f = tasks.failed() => Some(f),
    };
    tracing::info!("shutting down: finishing the step in flight and flushing the outbox");
    handle.shutdown().await;
    if let Some(sim) = sim_handle {
        sim.shutdown().await;
    }
    match failed {
        Some((task, why)) => anyhow::bail!("critical task {task} stopped: {why}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies() -> Vec<Arc<Policy>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        load_all(&[dir])
            .expect("the repository's policies")
            .into_iter()
            .map(Arc::new)
            .collect()
    }

    #[test]
    fn a_policy_paging_a_service_without_a_key_stops_the_start() {
        let policies = policies();
        assert!(
            policies.iter().any(|p| p.notify.pagerduty.is_some()),
            "GL-001 pages"
        );
        // paging off: nothing to check
        assert!(check_pagerduty(&policies, &BTreeMap::new()).is_ok());
        let default = BTreeMap::from([("default".to_string(), "k".to_string())]);
        assert!(check_pagerduty(&policies, &default).is_ok());
        let other = BTreeMap::from([("ops".to_string(), "k".to_string())]);
        let err = check_pagerduty(&policies, &other).unwrap_err().to_string();
        assert!(
            err.contains("gl-001.toml: notify.pagerduty.service \"default\" has no routing key"),
            "{err}"
        );
        assert!(err.contains("(configured: ops)"), "{err}");
        assert!(!err.contains(": k"), "{err}");
    }
}
