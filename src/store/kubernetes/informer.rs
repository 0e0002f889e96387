//! Keeps the store's [`Cache`] current as client-go's informers keep theirs: one LIST, then
//! a WATCH from the LIST's resourceVersion. A watch that ends (the server's
//! `timeoutSeconds`) is opened again from the last resourceVersion seen, so nothing is
//! missed; `410 Gone` (that version is no longer kept) lists again. Bookmarks move the
//! resourceVersion on while nothing changes.
//!
//! The cache is said to be synced only while a watch is open: from a failed LIST or WATCH
//! until the next one opens, and when a watch has been silent for longer than the server
//! promised ([`WATCH_SECONDS`] + [`SILENCE_GRACE`], a connection that died without closing),
//! the store reads the API itself (`Kube::list` in `api.rs`), so a broken watch
//! costs speed, never correctness. Retries back off from 100 ms to 10 s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};

use super::cache::{Cache, ReadObject};
use super::names;
use crate::store::StoreError;

/// How long the server keeps one watch open (`timeoutSeconds`).
pub const WATCH_SECONDS: u32 = 60;

/// How long past [`WATCH_SECONDS`] a silent watch is trusted.
pub const SILENCE_GRACE: Duration = Duration::from_secs(15);

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// The running informer; dropping it stops the watch.
#[derive(Debug)]
pub struct Informer {
    task: tokio::task::AbortHandle,
}

impl Drop for Informer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Informer {
    /// Starts listing and watching `api` into `cache` on the current tokio runtime; `None`
    /// outside one (the store then reads the API).
    pub fn start(api: Api<DynamicObject>, cache: Arc<Mutex<Cache>>) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let task = runtime.spawn(run(api, cache)).abort_handle();
        Some(Self { task })
    }
}

/// Says the cache is no longer kept current when the task ends (aborted, or its runtime
/// shut down).
struct Unsync(Arc<Mutex<Cache>>);

impl Drop for Unsync {
    fn drop(&mut self) {
        with_cache(&self.0, |c| c.set_synced(false));
    }
}

/// An API object as the store reads it.
pub fn read(obj: DynamicObject) -> Result<ReadObject, StoreError> {
    Ok(ReadObject::new(serde_json::from_value(
        serde_json::to_value(obj)?,
    )?))
}

fn with_cache(cache: &Mutex<Cache>, f: impl FnOnce(&mut Cache)) {
    if let Ok(mut c) = cache.lock() {
        f(&mut c);
    }
}

/// Why a watch stopped.
enum Stopped {
    /// The server closed it: open it again from the last version seen.
    Closed,
    /// It broke, went silent or answered an error: open it again after a pause.
    Broke,
    /// The version is no longer kept: list again.
    Gone,
}

/// The pause before the next try: doubling from [`FIRST_RETRY`] to [`LAST_RETRY`].
struct Backoff(Duration);

impl Backoff {
    /// Says the cache is not kept current, logs why (if anything failed), and waits.
    async fn wait(&mut self, cache: &Mutex<Cache>, failed: Option<(&str, kube::Error)>) {
        with_cache(cache, |c| c.set_synced(false));
        if let Some((what, e)) = failed {
            tracing::warn!(error = %e, retry_in = ?self.0, "store informer: {what} {} failed", names::PLURAL);
        }
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(LAST_RETRY);
    }
}

async fn run(api: Api<DynamicObject>, cache: Arc<Mutex<Cache>>) {
    let _unsync = Unsync(Arc::clone(&cache));
    let mut retry = Backoff(FIRST_RETRY);
    loop {
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(e) => {
                retry.wait(&cache, Some(("listing", e))).await;
                continue;
            }
        };
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        let listed: Vec<ReadObject> = list.items.into_iter().filter_map(readable).collect();
        with_cache(&cache, |c| c.replace_all(listed, Some(&version)));
        loop {
            let params = WatchParams::default().timeout(WATCH_SECONDS);
            let stream = match api.watch(&params, &version).await {
                Ok(stream) => stream,
                Err(kube::Error::Api(s)) if s.code == 410 => break,
                Err(e) => {
                    retry.wait(&cache, Some(("watching", e))).await;
                    continue;
                }
            };
            with_cache(&cache, |c| c.set_synced(true));
            retry = Backoff(FIRST_RETRY);
            match follow(stream, &cache, &mut version).await {
                Stopped::Closed => {}
                Stopped::Broke => retry.wait(&cache, None).await,
                Stopped::Gone => break,
            }
        }
        with_cache(&cache, |c| c.set_synced(false));
    }
}

/// Applies the watch's events to `cache` until it stops, moving `version` on.
async fn follow(
    stream: impl futures::Stream<Item = kube::Result<WatchEvent<DynamicObject>>>,
    cache: &Mutex<Cache>,
    version: &mut String,
) -> Stopped {
    let mut stream = std::pin::pin!(stream);
    let silence = Duration::from_secs(u64::from(WATCH_SECONDS)) + SILENCE_GRACE;
    loop {
        let event = match tokio::time::timeout(silence, stream.next()).await {
            Err(_) => {
                tracing::warn!(silent_for = ?silence, "store informer: the watch went silent; reading the API until it is open again");
                with_cache(cache, |c| c.set_synced(false));
                return Stopped::Broke;
            }
            Ok(None) => return Stopped::Closed,
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "store informer: the watch broke; opening it again");
                with_cache(cache, |c| c.set_synced(false));
                return Stopped::Broke;
            }
            Ok(Some(Ok(event))) => event,
        };
        match event {
            WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                if let Some(rv) = obj.metadata.resource_version.clone() {
                    *version = rv;
                }
                let name = obj.metadata.name.clone().unwrap_or_default();
                match readable(obj) {
                    Some(obj) => with_cache(cache, |c| {
                        c.put_watched(obj);
                    }),
                    None => with_cache(cache, |c| c.forget(&name)),
                }
            }
            WatchEvent::Deleted(obj) => {
                let rv = obj.metadata.resource_version.clone();
                if let Some(rv) = &rv {
                    version.clone_from(rv);
                }
                let name = obj.metadata.name.unwrap_or_default();
                with_cache(cache, |c| {
                    c.delete(&name, rv.as_deref(), std::time::Instant::now());
                });
            }
            WatchEvent::Bookmark(b) => *version = b.metadata.resource_version,
            WatchEvent::Error(s) if s.code == 410 => return Stopped::Gone,
            WatchEvent::Error(s) => {
                tracing::warn!(code = s.code, message = %s.message, "store informer: the watch answered an error; opening it again");
                with_cache(cache, |c| c.set_synced(false));
                return Stopped::Broke;
            }
        }
    }
}

/// `obj` as the store reads it; `None` (with a warning) when it does not read as a
/// `RollbackIncident` of the store.
fn readable(obj: DynamicObject) -> Option<ReadObject> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    match read(obj) {
        Ok(obj) => Some(obj),
        Err(e) => {
            tracing::warn!(object = %name, error = %e, "store informer: skipping a RollbackIncident the store cannot read");
            None
        }
    }
}
