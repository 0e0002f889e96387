//! A real Prometheus server for tests.

use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{ChildGuard, free_port, require_binary, wait_ready};

/// One scrape target with extra target labels (e.g. `deployment="a"`).
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    /// `host:port` serving `/metrics`.
    pub addr: SocketAddr,
    /// Labels attached to every series scraped from it.
    pub labels: Vec<(String, String)>,
}

impl ScrapeTarget {
    /// A target without extra labels.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            labels: Vec::new(),
        }
    }

    /// Adds a target label.
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running Prometheus (scrape and evaluation every 1 s); killed on Drop.
pub struct PrometheusProcess {
    child: ChildGuard,
    port: u16,
    /// How long `/-/ready` took to answer 200 after spawning.
    pub ready_after: Duration,
    _dir: TempDir,
}

fn quote(s: &str) -> String {
    // JSON strings are valid YAML scalars.
    serde_json::to_string(s).expect("string to JSON")
}

impl PrometheusProcess {
    /// Starts Prometheus scraping `targets`, with one rule file per entry of `rule_files_yaml`.
    pub async fn start(targets: &[ScrapeTarget], rule_files_yaml: &[&str]) -> Self {
        Self::start_with_alertmanager(targets, rule_files_yaml, None).await
    }

    /// As [`start`](Self::start), also sending alerts to the Alertmanager at `alertmanager` (`host:port`).
    pub async fn start_with_alertmanager(
        targets: &[ScrapeTarget],
        rule_files_yaml: &[&str],
        alertmanager: Option<&str>,
    ) -> Self {
        let binary = require_binary("prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
        );
        if !rule_files_yaml.is_empty() {
            config.push_str("rule_files:\n");
            for (i, rules) in rule_files_yaml.iter().enumerate() {
                let path = dir.path().join(format!("rules-{i}.yml"));
                std::fs::write(&path, rules).expect("write rules");
                writeln!(config, "  - {}", quote(&path.to_string_lossy())).expect("fmt");
            }
        }
        if let Some(am) = alertmanager {
            writeln!(
                config,
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{}]",
                quote(am)
            )
            .expect("fmt");
        }
        config.push_str("scrape_configs:\n  - job_name: synthetic\n    static_configs:\n");
        for t in targets {
            writeln!(config, "      - targets: [{}]", quote(&t.addr.to_string())).expect("fmt");
            if !t.labels.is_empty() {
                config.push_str("        labels:\n");
                for (k, v) in &t.labels {
                    writeln!(config, "          {k}: {}", quote(v)).expect("fmt");
                }
            }
        }
        if targets.is_empty() {
            config.push_str("      - targets: []\n");
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, &config).expect("write config");
        let log_path = dir.path().join("prometheus.log");
        let log = File::create(&log_path).expect("log file");
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log clone"))
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut child = ChildGuard(child);
        let ready_url = format!("http://127.0.0.1:{port}/-/ready");
        let ready_after =
            wait_ready(&ready_url, &mut child, &log_path, Duration::from_secs(30)).await;
        Self {
            child,
            port,
            ready_after,
            _dir: dir,
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server now (Drop would do it anyway).
    pub fn kill(&mut self) {
        self.child.kill();
    }
}
