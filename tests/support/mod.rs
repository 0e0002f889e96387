//! Test harness: real Prometheus and Alertmanager processes from the Debian
//! packages `prometheus` and `prometheus-alertmanager`, on 127.0.0.1 and free
//! ports, killed on Drop.
#![allow(dead_code)]

pub mod alertmanager;
pub mod process;
pub mod prometheus;
pub mod world;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// `deploy/crds/rollbackincidents.yaml` as JSON, as the binary embeds it, for
/// `SimHandle::create`.
pub fn incident_crd() -> serde_json::Value {
    rollbackd::store::kubernetes::crd::definition().unwrap()
}

/// A child process that is killed and reaped when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Kills the process now (idempotent).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// The path of `binary` on PATH, or a panic explaining how to get it.
pub fn require_binary(binary: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{binary}` is not on PATH. These tests run a real Prometheus and Alertmanager \
         from the Debian packages `prometheus` and `prometheus-alertmanager` (binaries \
         `prometheus`, `promtool`, `prometheus-alertmanager`, `amtool`). Run the project's \
         test command, which installs them, or `apt-get install -y prometheus \
         prometheus-alertmanager`."
    )
}

/// The last lines of a log file, for failure messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Polls `url` until it answers 200; panics with the log tail if the process
/// exits or `limit` passes. Returns how long it took.
pub async fn wait_ready(
    url: &str,
    child: &mut ChildGuard,
    log: &Path,
    limit: Duration,
) -> Duration {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("http client");
    let started = Instant::now();
    loop {
        if let Ok(resp) = http.get(url).send().await
            && resp.status().is_success()
        {
            return started.elapsed();
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "process exited with {status} before {url} was ready:\n{}",
                log_tail(log)
            );
        }
        if started.elapsed() > limit {
            panic!("{url} not ready after {limit:?}:\n{}", log_tail(log));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
