//! rollbackd: executes operators' rollback runbooks unattended.
pub mod sim;
