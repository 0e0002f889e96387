//! A real Alertmanager for tests, with one webhook receiver.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{ChildGuard, free_port, require_binary, wait_ready};

/// A running Alertmanager (no clustering); killed on Drop.
pub struct AlertmanagerProcess {
    child: ChildGuard,
    port: u16,
    /// How long `/-/ready` took to answer 200 after spawning.
    pub ready_after: Duration,
    _dir: TempDir,
}

impl AlertmanagerProcess {
    /// Starts Alertmanager routing every alert to `webhook_url` at once
    /// (`group_wait: 0s`, `group_interval: 1s`, `send_resolved: true`).
    pub async fn start(webhook_url: &str) -> Self {
        Self::start_with_bearer(webhook_url, None).await
    }

    /// As [`AlertmanagerProcess::start`], sending `Authorization: Bearer <bearer>` to the
    /// webhook (its `http_config.authorization`) when given.
    pub async fn start_with_bearer(webhook_url: &str, bearer: Option<&str>) -> Self {
        let binary = require_binary("prometheus-alertmanager");
        let dir = tempfile::tempdir().expect("temp dir");
        let url = serde_json::to_string(webhook_url).expect("json");
        let auth = bearer.map_or_else(String::new, |t| {
            let t = serde_json::to_string(t).expect("json");
            format!(
                "        http_config:\n          authorization:\n            credentials: {t}\n"
            )
        });
        let config = format!(
            "route:\n  receiver: webhook\n  group_by: ['alertname']\n  group_wait: 0s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: webhook\n    \
             webhook_configs:\n      - url: {url}\n        send_resolved: true\n{auth}"
        );
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log_path = dir.path().join("alertmanager.log");
        let log = File::create(&log_path).expect("log file");
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log clone"))
            .stderr(log)
            .spawn()
            .expect("spawn alertmanager");
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

    /// `127.0.0.1:PORT`, for Prometheus' `alertmanagers` static config.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
