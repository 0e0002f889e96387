//! WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside the
//! commit that crosses the threshold and, with `synchronous = NORMAL`, that commit pays for
//! the fsync of the database file: a webhook answer now and then would wait tens of
//! milliseconds. Instead a thread with its own connection checkpoints every second
//! (`PASSIVE`: it never blocks the writer), and the store's connection never does.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is copied back into the database file.
pub const EVERY: Duration = Duration::from_secs(1);

/// Stops the checkpointer when dropped (with the store).
#[derive(Debug)]
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (whose connections must have
    /// `wal_autocheckpoint = 0`).
    pub fn start(path: &Path) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("rollbackd-checkpoint".into())
            .spawn(move || {
                let conn = match Connection::open(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, path = %path.display(), "WAL checkpointer cannot open the store: the WAL will grow until restart");
                        return;
                    }
                };
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "WAL checkpoint failed (retried in 1 s)");
                    }
                }
                // last one on the way out, so a clean stop leaves a small WAL
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })?;
        Ok(Self { _stop: stop })
    }
}
