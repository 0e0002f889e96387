//! rollbackd: executes operators' rollback runbooks unattended.
