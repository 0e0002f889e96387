//! rollbackd's pure core: what the runbooks say and what they decide, with no I/O and no
//! clock (time is always passed in).
//!
//! - [`policy`]: the policy language (one TOML file per agent) and its validation.
//! - [`engine`]: the decision engine: `(policy, observations, now) → Decision` with evidence.
//! - [`replay`]: trace files (JSON lines of samples and events) replayed through the engine.
//! - [`incident`]: the incident lifecycle (a state machine) and the incident record.

pub mod engine;
pub mod incident;
pub mod policy;
pub mod replay;
