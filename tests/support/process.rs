//! `rollbackd` as real processes: spawned with their output in a log file, killed (SIGKILL)
//! and reaped on drop; kubectl against a simulator; a policy cut to a verification the
//! tests can pass without agents.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ChildGuard;

/// Starts this package's `rollbackd` with `args`, stdout and stderr appended to `log`.
pub fn spawn(args: &[&str], log: &Path) -> ChildGuard {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_rollbackd"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    )
}

/// The real kubectl against `kubeconfig` (30 s at most): its stdout and stderr.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .arg("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Polls `f` every `every` until it answers, panicking after `timeout`.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// A shipped policy's text with its `[verification]` replaced by `verification` (the
/// lines that follow the section header), up to its notifications.
pub fn with_verification(policy: &str, verification: &str) -> String {
    let cut = policy.find("[verification]").unwrap();
    let notify = policy
        .find("# ---------------------------------------------------------------- notifications")
        .unwrap();
    format!(
        "{}[verification]\n{verification}\n{}",
        &policy[..cut],
        &policy[notify..]
    )
}

/// `rollbackd sim` on a free port, seeded with the policies in `policies`, its kubeconfig
/// written to `dir/kubeconfig` (waited for), its log in `dir/sim.log`; `extra` are more
/// arguments. Answers the process, the kubeconfig and the API's URL.
pub fn start_sim(
    dir: &Path,
    policies: &Path,
    extra: &[&str],
) -> (ChildGuard, std::path::PathBuf, String) {
    let listen = format!("127.0.0.1:{}", super::free_port());
    let kubeconfig = dir.join("kubeconfig");
    let mut args = vec![
        "sim",
        "--listen",
        &listen,
        "--policies",
        policies.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let sim = spawn(&args, &dir.join("sim.log"));
    let start = Instant::now();
    while !kubeconfig.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for the simulator"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (sim, kubeconfig, format!("http://{listen}"))
}
