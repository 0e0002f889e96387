//! `rollbackd check`: every problem as `file:line:col: field: message`, exit 1; or a
//! summary per file, exit 0.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::policy::{Action, load_all};

/// Checks the given paths (default `policies/`).
pub fn run(paths: &[PathBuf]) -> ExitCode {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("policies")]
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
