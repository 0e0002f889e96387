//! The daemon: wiring of the API, the evaluation loop, the incident runner, the deploy
//! watcher and the notification outbox. This is the only module that sees them all.

pub mod announce;
pub mod collect;
pub mod evaluate;
pub mod gate;
