//! `rollbackd check`: every problem as `file:line:col: field: message`, exit 1; or a
//! summary per file, exit 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rollbackd_core::policy::{Action, load_all};

/// Checks the daemon configuration (when given) and the policies at the given paths
/// (default: the config's `policies.paths`, else `policies/`).
pub fn run(paths: &[PathBuf], config: Option<&Path>) -> ExitCode {
    let mut policy_paths = vec![PathBuf::from("policies")];
    if let Some(file) = config {
        match crate::config::load(Some(file)) {
            Ok(c) => {
                println!("{}: SUCCESS: configuration valid", file.display());
                policy_paths = c.policy_paths;
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("{}: {e}", file.display());
                }
                return ExitCode::FAILURE;
            }
        }
    }
    let paths = if paths.is_empty() {
        policy_paths
    } else {
        paths.to_vec()
    };
    match load_all(&paths) {
        Ok(policies) if policies.is_empty() => {
            eprintln!("no policy files found in {}", show(&paths));
            ExitCode::FAILURE
        }
        Ok(policies) => {
            for p in &policies {
                let unattended = p
                    .matrix
                    .iter()
                    .filter(|r| r.action == Action::Rollback)
                    .count();
                println!(
                    "{}: SUCCESS: agent {} ({}): {} rows ({} unattended rollback), {} guards, {} methods, {} signals",
                    p.source.display(),
                    p.agent.id,
                    p.agent.name,
                    p.matrix.len(),
                    unattended,
                    p.guards.len(),
                    p.methods.len(),
                    p.signals.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
