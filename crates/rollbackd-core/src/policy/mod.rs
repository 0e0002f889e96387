//! The policy language: one TOML file per agent encoding its runbook (signals, decision
//! matrix, guards, methods, verification, notifications), parsed to raw types and
//! validated into [`Policy`] with every problem reported as `file:line:col: field: message`.

pub mod duration;
pub mod error;
mod load;
mod model;
mod raw;
mod share;
pub mod template;
pub(crate) mod validate;

pub use error::{PolicyError, PolicyErrors};
pub use load::{load_all, load_file, parse_policy, policy_files};
pub use model::*;

/// The repository's runbook policies, for tests wherever the crate's directory is.
#[cfg(test)]
pub(crate) fn seed_policy(file: &str) -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|dir| dir.join("policies").join(file))
        .find(|path| path.is_file())
        .unwrap_or_else(|| here.join("policies").join(file))
}
