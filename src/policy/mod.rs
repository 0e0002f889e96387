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
