//! The harness the simulator's kubectl tests share: a simulator on 127.0.0.1:0, a kubeconfig
//! and a kubectl cache in a temp dir, and the real `kubectl` run under `timeout 30` (a hang
//! fails the test instead of freezing CI).
#![allow(dead_code)]

use std::path::PathBuf;

use rollbackd_sim::{SimConfig, SimHandle, Simulator};
use tempfile::TempDir;

/// A running simulator plus the files kubectl needs.
pub struct Cluster {
    /// The simulator.
    pub sim: SimHandle,
    /// Holds the kubeconfig, kubectl's cache and any files a test writes.
    pub dir: TempDir,
    /// The kubeconfig pointing at `sim`.
    pub kubeconfig: PathBuf,
}

/// What one kubectl run produced.
pub struct Run {
    /// It exited 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// Both outputs, for failure messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A fresh simulator with its kubeconfig.
pub async fn cluster() -> Cluster {
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = sim.kubeconfig(dir.path()).unwrap();
    Cluster {
        sim,
        dir,
        kubeconfig,
    }
}

impl Cluster {
    /// Runs kubectl with `args` against the simulator.
    pub async fn kubectl(&self, args: &[&str]) -> Run {
        let out = tokio::process::Command::new("timeout")
            .arg("30")
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .output()
            .await
            .expect("run kubectl");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and fails the test unless it succeeds; its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let run = self.kubectl(args).await;
        assert!(run.ok, "kubectl {args:?} failed:\n{}", run.text());
        run.stdout
    }

    /// Runs kubectl and fails the test if it succeeds; its stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let run = self.kubectl(args).await;
        assert!(
            !run.ok,
            "kubectl {args:?} should have failed:\n{}",
            run.text()
        );
        run.stderr
    }
}
