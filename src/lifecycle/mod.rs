//! What the daemon's incident runner, its evaluation loop and the HTTP API all do to an
//! incident besides running its method: announce a stage (the outbox rows for every
//! notifier) and end it without a rollback (transition, announcement and audit in one
//! transaction). Below both the daemon and the API, so neither reaches into the other.

pub mod announce;
pub mod ending;
