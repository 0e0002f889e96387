//! A Kubernetes API server simulator that real `kubectl` (1.33 build) and the `kube` crate
//! accept as a real API server. Used by tests and the demo because no real API server runs here.
//!
//! It serves discovery (legacy and aggregated v2/v2beta1), a minimal OpenAPI v3 (so
//! `kubectl apply` validates server-side), an in-memory object store with resourceVersions,
//! optimistic concurrency, chunked LISTs (`limit`/`continue`), the three patch flavours, an approximate server-side apply, dry
//! runs, garbage collection and watches; and controllers for Deployments, ReplicaSets, Pods,
//! Jobs and Argo Rollouts with per-image fault injection.
//!
//! It also serves `apiextensions.k8s.io/v1` CustomResourceDefinitions ([`crds`]): creating
//! one makes its resource appear at once in discovery and OpenAPI, with the generic verbs,
//! the status subresource when declared, and tables built from its printer columns
//! ([`jsonpath`]); deleting it deletes its objects. Events are one set of objects served
//! through `v1` and `events.k8s.io/v1` ([`events`], [`conversion`]), validated and selected as
//! the real server does.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollbackd_sim::SimError> {
//! use rollbackd_sim::{Fault, SimConfig, Simulator};
//! let sim = Simulator::start("127.0.0.1:0".parse().expect("addr"), SimConfig::default()).await?;
//! sim.inject_fault("bad", Fault::CrashLoop); // pods of images containing "bad" crash-loop
//! let kubeconfig = sim.kubeconfig(std::path::Path::new("/tmp"))?;
//! // … run kubectl --kubeconfig <kubeconfig>, or kube::Config::new(sim.url().parse()?) …
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Tests can make someone else's write land between a client's read and its write with
//! [`SimHandle::race_next_write`], and refuse writes as a validating admission webhook would
//! with [`SimHandle::admit`] ([`admission`]).
//!
//! To serve on a listener of your own until a future completes, use [`serve`]; faults can be
//! preset in [`SimConfig::faults`] or changed at runtime through `POST/DELETE/GET /sim/faults`
//! (see [`faults::CONTROL_PATH`]). `rollbackd sim --listen ADDR` runs one in its own process.
//!
//! The crate's README lists what it serves and its differences from a real API server; the main
//! ones: no authentication/authorization, no managedFields, server-side apply is a strategic
//! merge without field ownership, pods are deleted instantly (no Terminating phase),
//! `minReadySeconds` is ignored, Rollout canary steps are ignored, protobuf request
//! bodies are decoded only for the kinds kubectl creates that way (Deployment, Pod, Job,
//! Service, ConfigMap, Namespace), custom resources are not validated, pruned or defaulted
//! against their CRD's schema, and CRD conversion webhooks are never called.

pub mod admission;
pub mod controller;
pub mod conversion;
pub mod crds;
pub mod defaults;
pub mod deployments;
pub mod discovery;
pub mod events;
pub mod faults;
pub mod ids;
pub mod jobs;
pub mod jsonpath;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod patch;
pub mod protobuf;
pub mod race;
pub mod refusals;
pub mod replicasets;
pub mod representation;
pub mod rollouts;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod subresources;
pub mod table;
pub mod validate;
pub mod watch;
pub mod workload;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::serve::ListenerExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::Fault;

use faults::Faults;
use race::Races;
use server::AppState;
use store::Store;

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How long a new pod takes to become Ready.
    pub pod_ready_after: Duration,
    /// Controller tick.
    pub tick: Duration,
    /// Faults active from the start, as `(image substring, fault)` (for `rollbackd sim`).
    pub faults: Vec<(String, Fault)>,
}

impl Default for SimConfig {
    /// Fast settings for tests: pods ready after 200 ms, controllers tick every 50 ms.
    fn default() -> Self {
        SimConfig {
            pod_ready_after: Duration::from_millis(200),
            tick: Duration::from_millis(50),
            faults: Vec::new(),
        }
    }
}

/// Errors of the simulator's own API (not of the HTTP API it serves).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or serving failed.
    #[error("simulator I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The object could not be created (the Kubernetes Status message is included).
    #[error("simulated API rejected the object: {0}")]
    Api(#[from] status::ApiError),
    /// The object's apiVersion/kind is not served.
    #[error("unsupported apiVersion/kind: {0}/{1}")]
    UnsupportedKind(String, String),
}

/// One mutating request the simulator received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method (`POST`, `PUT`, `PATCH`, `DELETE`).
    pub method: String,
    /// URL path.
    pub path: String,
    /// `Content-Type` header (empty if absent).
    pub content_type: String,
    /// Raw query string.
    pub query: String,
    /// Request body as text.
    pub body: String,
    /// When it arrived.
    pub at: SystemTime,
}

/// Entry point to start a simulator.
pub struct Simulator;

/// Shared pieces of one running simulator.
#[derive(Clone)]
struct Shared {
    store: Arc<Store>,
    faults: Arc<Faults>,
    races: Arc<Races>,
    requests: Arc<Mutex<VecDeque<RecordedRequest>>>,
    recorded: tokio::sync::broadcast::Sender<RecordedRequest>,
    counts: Arc<metrics::RequestCounts>,
    refusals: Arc<refusals::Refusals>,
}

impl Shared {
    fn new(config: &SimConfig) -> Self {
        let faults = Faults::default();
        for (image, fault) in &config.faults {
            faults.inject(image, *fault);
        }
        Shared {
            store: Arc::new(Store::new()),
            faults: Arc::new(faults),
            races: Arc::new(Races::default()),
            requests: Arc::new(Mutex::new(VecDeque::new())),
            recorded: tokio::sync::broadcast::channel(4096).0,
            counts: Arc::new(metrics::RequestCounts::default()),
            refusals: Arc::new(refusals::Refusals::default()),
        }
    }
}

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Shared,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves until the handle is shut down or dropped.
    pub async fn start(addr: SocketAddr, config: SimConfig) -> Result<SimHandle, SimError> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Shared::new(&config);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(listener, config, shared.clone(), stop_rx));
        Ok(SimHandle {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }
}

/// Serves the simulator on `listener` until `shutdown` completes (for `rollbackd sim`).
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SimError> {
    let shared = Shared::new(&config);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run(listener, config, shared, stop_rx));
    shutdown.await;
    let _ = stop.send(true);
    let _ = task.await;
    Ok(())
}

async fn run(
    listener: TcpListener,
    config: SimConfig,
    shared: Shared,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let controllers = tokio::spawn(controller::run(
        shared.store.clone(),
        shared.faults.clone(),
        config,
        stop.clone(),
    ));
    let state = AppState {
        store: shared.store.clone(),
        faults: shared.faults.clone(),
        races: shared.races.clone(),
        requests: shared.requests.clone(),
        recorded: shared.recorded.clone(),
        counts: shared.counts.clone(),
        refusals: shared.refusals.clone(),
        shutdown: stop.clone(),
    };
    let app = server::router(state);
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "sim could not set TCP_NODELAY");
        }
    });
    let mut stop_signal = stop.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            while !*stop_signal.borrow() {
                if stop_signal.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "sim server stopped with an error");
    }
    let _ = controllers.await;
}

impl SimHandle {
    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Seeds an object as if created through the API (POST semantics).
    pub fn create(&self, obj: Value) -> Result<Value, SimError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let r = self
            .shared
            .store
            .catalog()
            .find_kind(&api_version, &kind)
            .ok_or(SimError::UnsupportedKind(api_version, kind))?;
        let ns = store::namespace_of(&obj).to_string();
        Ok(self.shared.store.create(r, &ns, obj, false)?)
    }

    /// One object, if it exists.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let r = self.shared.store.catalog().find_kind(api_version, kind)?;
        self.shared.store.get(r, namespace, name)
    }

    /// The store's current resourceVersion: it moves with every write, so a value that
    /// stays put means the simulator (its controllers included) is quiet.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    /// Pods of any image whose reference contains `image_substring` get this fault.
    pub fn inject_fault(&self, image_substring: &str, fault: Fault) {
        self.shared.faults.inject(image_substring, fault);
    }

    /// Makes a competing change land just before the next PATCH or PUT of one object: the
    /// strategic merge patch `change` is applied first (a new resourceVersion, a new
    /// generation when the spec changes), then the request is handled against the result,
    /// as if someone else's write had landed between the client's read and its write.
    pub fn race_next_write(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        change: Value,
    ) -> Result<(), SimError> {
        let r = self
            .shared
            .store
            .catalog()
            .find_kind(api_version, kind)
            .ok_or_else(|| SimError::UnsupportedKind(api_version.to_string(), kind.to_string()))?;
        self.shared.races.add(r, namespace, name, change);
        Ok(())
    }

    /// Installs a validating admission hook (see [`admission`]) named `name`, replacing any
    /// other: every create, update and delete from now on is shown to it first, and an
    /// `Err(why)` refuses it with a 400 as the API server refuses a webhook's denial. The
    /// hook runs while the store is locked: it must not call the simulator.
    pub fn admit(
        &self,
        name: &str,
        hook: impl Fn(&admission::AdmissionRequest<'_>) -> Result<(), String> + Send + Sync + 'static,
    ) {
        self.shared.store.admission.set(name, Arc::new(hook));
    }

    /// Removes the admission hook: every write is admitted again.
    pub fn clear_admission(&self) {
        self.shared.store.admission.clear();
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Every mutating request seen so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Requests of `verb` (`LIST`, `WATCH`, `GET`, `POST`, `PUT`, `PATCH`, `DELETE`) on
    /// `resource` (its plural) so far, as `apiserver_request_total` on `/metrics` counts them.
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        self.shared.counts.get(verb, resource)
    }

    /// Answers every request of `verb` on `resource` (as [`Self::request_count`] names
    /// them) with `503 ServiceUnavailable` from now on; open watches stay open.
    pub fn refuse(&self, verb: &str, resource: &str) {
        self.shared.refusals.refuse(verb, resource);
    }

    /// Refuses no request any more (see [`Self::refuse`]).
    pub fn stop_refusing(&self) {
        self.shared.refusals.clear();
    }

    /// Every mutating request from now on, as it arrives (a receiver that falls more than
    /// 4096 requests behind loses the oldest; see `broadcast::error::RecvError::Lagged`).
    pub fn subscribe_requests(&self) -> tokio::sync::broadcast::Receiver<RecordedRequest> {
        self.shared.recorded.subscribe()
    }

    /// Writes a kubeconfig pointing at the simulator into `dir` and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {}\ncontexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim\n    namespace: default\ncurrent-context: sim\nusers:\n- name: sim\n  user: {{}}\n",
            self.url()
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Stops the server, ends open watches and waits for the tasks to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
        {
            tracing::warn!("sim did not stop within 5s");
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The README's example, compiled as a doc test so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
