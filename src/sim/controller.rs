//! The controller loop: runs every controller once per tick until shut down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::SimConfig;
use super::discovery::{EVENTS, Resource};
use super::faults::Faults;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Part, Store, name_of, namespace_of, uid_of};
use super::{deployments, ids, jobs, replicasets, rollouts};

/// Memory the controllers keep between ticks (never persisted in objects).
#[derive(Debug, Default)]
pub struct ControllerState {
    /// When each pod (by uid) was first seen.
    pub pod_born: HashMap<String, Instant>,
    /// Pods (by uid) that already got their fault's Warning event.
    pub warned: std::collections::HashSet<String>,
    /// Set by a pass when something can change with time alone (pods becoming ready,
    /// restarts, progress deadlines), so the next tick must run even if no object changed.
    pub busy: bool,
    /// The store's resourceVersion after the last pass.
    pub last_rv: u64,
    /// The fault rules' generation at the last pass.
    pub last_faults: u64,
    /// Per workload uid: the last progress signature and when it last changed.
    pub progress: HashMap<String, (String, Instant)>,
}

/// Everything a controller needs for one tick.
pub struct Ctx<'a> {
    /// The object store.
    pub store: &'a Store,
    /// Injected faults.
    pub faults: &'a Faults,
    /// Simulator settings.
    pub config: &'a SimConfig,
    /// Memory between ticks.
    pub state: &'a mut ControllerState,
}

impl Ctx<'_> {
    /// Every object of a resource in all namespaces.
    pub fn all(&self, r: &'static Resource) -> Vec<Value> {
        self.store
            .list(
                r,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .0
    }

    /// The objects of a resource in `ns` that `owner`'s `spec.selector` selects.
    pub fn selected(&self, r: &'static Resource, ns: &str, owner: &Value) -> Vec<Value> {
        let selector = owner
            .pointer("/spec/selector")
            .map(LabelSelector::from_label_selector)
            .unwrap_or_default();
        self.store
            .list(r, Some(ns), &selector, &FieldSelector::default())
            .0
    }

    /// Writes an object back (internal write: spec, metadata and status all kept).
    pub fn save(&self, r: &'static Resource, obj: Value) -> Option<Value> {
        let ns = namespace_of(&obj).to_string();
        let name = name_of(&obj).to_string();
        match self.store.update(r, &ns, &name, obj, Part::All, false) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(error = %e, "sim controller write skipped");
                None
            }
        }
    }

    /// Records a `Normal` core/v1 Event about an object.
    pub fn event(&self, about: &Value, reason: &str, message: &str) {
        self.event_of_type(about, "Normal", reason, message);
    }

    /// Records a core/v1 Event of the given type (`Normal` or `Warning`) about an object.
    pub fn event_of_type(&self, about: &Value, kind: &str, reason: &str, message: &str) {
        let ns = namespace_of(about).to_string();
        let now = ids::now();
        let ev = json!({
            "metadata": {"generateName": format!("{}.", name_of(about))},
            "involvedObject": {
                "apiVersion": about["apiVersion"], "kind": about["kind"],
                "name": name_of(about), "namespace": ns, "uid": uid_of(about),
                "resourceVersion": about["metadata"]["resourceVersion"],
            },
            "reason": reason, "message": message, "type": kind,
            "source": {"component": "sim-controller"},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": "sim-controller",
        });
        let _ = self.store.create(&EVENTS, &ns, ev, false);
    }
}

/// Runs one pass of every controller, unless nothing changed and nothing is time-dependent.
pub fn tick(store: &Store, faults: &Faults, config: &SimConfig, state: &mut ControllerState) {
    let rv = store.resource_version();
    let faults_gen = faults.generation();
    if rv == state.last_rv && faults_gen == state.last_faults && !state.busy {
        return;
    }
    state.busy = false;
    state.last_faults = faults_gen;
    let mut ctx = Ctx {
        store,
        faults,
        config,
        state,
    };
    deployments::reconcile(&mut ctx);
    rollouts::reconcile(&mut ctx);
    replicasets::reconcile(&mut ctx);
    jobs::reconcile(&mut ctx);
    replicasets::update_pods(&mut ctx);
    // Remember the version seen at the START of the pass: a client write that lands while
    // the controllers run must trigger another pass (level-triggered); the controllers' own
    // writes cause at most one more, writeless, pass.
    state.last_rv = rv;
}

/// Runs the controllers every `config.tick` until `stop` fires.
pub async fn run(
    store: Arc<Store>,
    faults: Arc<Faults>,
    config: SimConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut state = ControllerState::default();
    let mut interval = tokio::time::interval(config.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                // A pass is synchronous CPU work over every object: it runs on a blocking
                // thread so that it never stalls the runtime's workers (the API server's
                // handlers, and everything else sharing the runtime).
                let (st, f, c) = (store.clone(), faults.clone(), config.clone());
                let mut s = std::mem::take(&mut state);
                state = tokio::task::spawn_blocking(move || {
                    // A bug in one controller must not stop the simulator: log and carry on.
                    let pass = std::panic::AssertUnwindSafe(|| tick(&st, &f, &c, &mut s));
                    if std::panic::catch_unwind(pass).is_err() {
                        tracing::error!("sim controller pass panicked; continuing");
                        return ControllerState::default();
                    }
                    s
                })
                .await
                .unwrap_or_default();
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

/// An integer field, defaulting to 0.
pub fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// An ownerReference (controller) pointing at `owner`.
pub fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": name_of(owner), "uid": uid_of(owner),
        "controller": true, "blockOwnerDeletion": true,
    })
}
