//! The command line: `rollbackd check` and `rollbackd evaluate`.

mod bench;
mod check;
mod demo;
mod evaluate;
pub mod run;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// rollbackd: executes rollback runbooks unattended.
#[derive(Debug, Parser)]
#[command(name = "rollbackd", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate policy files (a directory stands for its *.toml files), like `promtool check rules`.
    Check {
        /// Files or directories; default `policies/` (or the config's `policies.paths`).
        paths: Vec<PathBuf>,
        /// Also validate this daemon configuration file (and `ROLLBACKD_*` variables).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the daemon.
    Run {
        /// The configuration file (see deploy/rollbackd.toml); ROLLBACKD_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Use the built-in Kubernetes simulator seeded with the policies' workloads.
        #[arg(long)]
        sim: bool,
    },
    /// Run the Kubernetes API simulator on its own (point kubectl at it).
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: std::net::SocketAddr,
        /// Seed it with the workloads these policies name.
        #[arg(long)]
        policies: Option<PathBuf>,
        /// Write a kubeconfig for it here.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// How long a new pod takes to become ready, e.g. `2s` or `300ms`.
        #[arg(long, default_value = "2s", value_parser = pod_ready_after)]
        pod_ready_after: std::time::Duration,
    },
    /// The main job: simulator, synthetic agents and rollbackd in one process, playing the
    /// runbooks' scenarios and printing the timeline (no cluster, no Prometheus needed).
    Demo {
        /// Leave GL-008's Severity 2 incident awaiting approval, print the web console's URL
        /// and tokens, and keep the console, the API and the simulator up until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        /// Only replay the scenarios' traces through the decision engine.
        #[arg(long)]
        replay: bool,
    },
    /// Measure this machine: webhook → rollback PATCH, evaluation cycles of 100 to 10,000
    /// workloads, webhook ingestion; compare with Flagger and Argo Rollouts defaults.
    Bench {
        /// Write the figures to `<OUT>.json` and `<OUT>.md`.
        #[arg(long, default_value = "target/bench/figures")]
        out: PathBuf,
        /// A small run of every measurement (seconds, not minutes).
        #[arg(long)]
        quick: bool,
        /// Alerts (and workloads) for webhook → PATCH (default 1,000; 20 with --quick).
        #[arg(long)]
        alerts: Option<usize>,
        /// Run only these measurements (repeatable; default all).
        #[arg(long, value_enum)]
        only: Vec<crate::bench::Measurement>,
    },
    /// One size of the benchmark's evaluation cycle, in its own process (used by `bench`).
    #[command(hide = true)]
    BenchCycle {
        /// Size of the generated fleet.
        #[arg(long)]
        workloads: usize,
        /// Base URL of the stand-in Prometheus that answers the fleet's queries.
        #[arg(long)]
        prometheus: String,
        /// The Kubernetes API (a simulator) holding the fleet's Deployments.
        #[arg(long)]
        kube: String,
        /// How many evaluation cycles to run and time.
        #[arg(long, default_value_t = 6)]
        cycles: usize,
    },
    /// Replay a trace (JSON lines of samples and events) through a policy and print every change of decision.
    Evaluate {
        /// The policy file.
        #[arg(long)]
        policy: PathBuf,
        /// The trace file.
        #[arg(long)]
        trace: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Output formats of `evaluate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable blocks.
    Text,
    /// One JSON object per line.
    Json,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs a parsed command line, writing to stdout/stderr.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { paths, config } => Ok(check::run(&paths, config.as_deref())),
        Command::Evaluate {
            policy,
            trace,
            format,
        } => evaluate::run(&policy, &trace, format),
        Command::Demo { replay: true, .. } => demo::run().map(|()| ExitCode::SUCCESS),
        Command::Demo { keep_running, .. } => runtime()?
            .block_on(crate::demo::run(keep_running))
            .map(|()| ExitCode::SUCCESS),
        Command::Run { config, sim } => runtime()?
            .block_on(run::run(config.as_deref(), sim))
            .map(|()| ExitCode::SUCCESS),
        Command::Bench {
            out,
            quick,
            alerts,
            only,
        } => runtime()?
            .block_on(bench::bench(&out, quick, alerts, only))
            .map(|()| ExitCode::SUCCESS),
        Command::BenchCycle {
            workloads,
            prometheus,
            kube,
            cycles,
        } => runtime()?
            .block_on(bench::bench_cycle(workloads, &prometheus, &kube, cycles))
            .map(|()| ExitCode::SUCCESS),
        Command::Sim {
            listen,
            policies,
            kubeconfig,
            pod_ready_after,
        } => runtime()?
            .block_on(sim::run(listen, policies, kubeconfig, pod_ready_after))
            .map(|()| ExitCode::SUCCESS),
    }
}

/// Parses `--pod-ready-after` with the policies' duration syntax (`300ms`, `2s`).
fn pod_ready_after(text: &str) -> Result<std::time::Duration, String> {
    rollbackd_core::policy::duration::parse_duration(text)?
        .to_std()
        .map_err(|_| format!("{text:?} is negative"))
}
