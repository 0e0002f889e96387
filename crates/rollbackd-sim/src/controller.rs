//! The controller loop: runs every controller once per tick until shut down.
//!
//! Like the real controllers, a pass works from queues, not from every object: the store
//! reports each written object ([`Store::take_changes`]), which queues it and its
//! controller (a pod's ReplicaSet, a ReplicaSet's Deployment or Rollout, a pod's Job).
//! Objects that can change with time alone (pods on their way to Ready, crash-looping
//! pods, rollouts before their progress deadline) are queued again for the next tick.
//! The first pass, and the first after a fault rule changes, visits every object.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::SimConfig;
use super::discovery::{DEPLOYMENTS, EVENTS, JOBS, PODS, REPLICASETS, ROLLOUTS, Resource};
use super::faults::Faults;
use super::store::{Change, Part, Store, name_of, namespace_of, uid_of};
use super::{deployments, ids, jobs, replicasets, rollouts};

/// Objects, as (namespace, name), waiting for one controller.
pub type Queue = BTreeSet<(String, String)>;

/// One queue per reconciled resource, like the work queues of the real controllers: a pass
/// visits what changed (and what time alone can change), not every object.
#[derive(Debug, Default)]
pub struct Queues {
    /// Deployments to sync.
    pub deployments: Queue,
    /// Argo Rollouts to sync.
    pub rollouts: Queue,
    /// ReplicaSets to sync (pod count and status).
    pub replicasets: Queue,
    /// Jobs to sync.
    pub jobs: Queue,
    /// Pods to move along their lifecycle.
    pub pods: Queue,
}

impl Queues {
    /// The queue of objects of `kind` (None for kinds no controller reconciles).
    fn of_kind(&mut self, kind: &str) -> Option<&mut Queue> {
        match kind {
            "Deployment" => Some(&mut self.deployments),
            "Rollout" => Some(&mut self.rollouts),
            "ReplicaSet" => Some(&mut self.replicasets),
            "Job" => Some(&mut self.jobs),
            "Pod" => Some(&mut self.pods),
            _ => None,
        }
    }

    /// Queues an object of `kind`.
    fn add(&mut self, kind: &str, ns: &str, name: &str) {
        if let Some(q) = self.of_kind(kind) {
            q.insert((ns.to_string(), name.to_string()));
        }
    }

    /// Moves everything queued in `other` into `self`.
    fn append(&mut self, mut other: Queues) {
        self.deployments.append(&mut other.deployments);
        self.rollouts.append(&mut other.rollouts);
        self.replicasets.append(&mut other.replicasets);
        self.jobs.append(&mut other.jobs);
        self.pods.append(&mut other.pods);
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.deployments.is_empty()
            && self.rollouts.is_empty()
            && self.replicasets.is_empty()
            && self.jobs.is_empty()
            && self.pods.is_empty()
    }
}

/// Memory the controllers keep between ticks (never persisted in objects).
#[derive(Debug, Default)]
pub struct ControllerState {
    /// When each pod (by uid) was first seen.
    pub pod_born: HashMap<String, Instant>,
    /// Pods (by uid) that already got their fault's Warning event.
    pub warned: HashSet<String>,
    /// Objects to reconcile in this pass.
    pub queued: Queues,
    /// Objects that can change with time alone (pods becoming ready, restarts, progress
    /// deadlines): reconciled again on the next tick even if nothing was written.
    pub later: Queues,
    /// Whether the first pass (every object) has run.
    pub primed: bool,
    /// The fault rules' generation at the last pass (a new rule re-checks every object).
    pub last_faults: u64,
    /// Per workload uid: the last progress signature and when it last changed.
    pub progress: HashMap<String, (String, Instant)>,
    /// Objects reconciled by the last pass.
    pub reconciled: usize,
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
    /// The objects of `r` queued for this pass, as stored now (deleted ones are skipped).
    /// Writes made earlier in the pass are queued first, so a ReplicaSet the Deployment
    /// controller just created gets its pods in the same pass.
    pub fn next(&mut self, r: &'static Resource) -> Vec<Value> {
        absorb(self.store.take_changes(), self.state);
        let Some(queue) = self.state.queued.of_kind(r.kind) else {
            return Vec::new();
        };
        let keys = std::mem::take(queue);
        let objects: Vec<Value> = keys
            .iter()
            .filter_map(|(ns, name)| self.store.get(r, ns, name))
            .collect();
        self.state.reconciled += objects.len();
        objects
    }

    /// Reconciles `obj` again on the next tick (its state can change with time alone).
    pub fn again(&mut self, obj: &Value) {
        let kind = obj["kind"].as_str().unwrap_or_default();
        self.state.later.add(kind, namespace_of(obj), name_of(obj));
    }

    /// The objects of `r` that `owner` controls.
    pub fn controlled(&self, r: &'static Resource, owner: &Value) -> Vec<Value> {
        self.store.controlled(r, uid_of(owner))
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

/// Queues each changed object and its controller; forgets the memory of deleted objects.
fn absorb(changes: Vec<Change>, state: &mut ControllerState) {
    for c in changes {
        state.queued.add(c.resource.kind, &c.namespace, &c.name);
        for (kind, name) in &c.controllers {
            state.queued.add(kind, &c.namespace, name);
        }
        for uid in &c.gone {
            state.pod_born.remove(uid);
            state.warned.remove(uid);
            state.progress.remove(uid);
        }
    }
}

/// Runs one pass of the controllers over the objects that changed since the last pass and
/// those waiting on time (every object on the first pass and after a fault rule changes).
pub fn tick(store: &Store, faults: &Faults, config: &SimConfig, state: &mut ControllerState) {
    state.reconciled = 0;
    let faults_gen = faults.generation();
    if !state.primed || faults_gen != state.last_faults {
        for r in [&DEPLOYMENTS, &ROLLOUTS, &REPLICASETS, &JOBS, &PODS] {
            for (ns, name) in store.names(r) {
                state.queued.add(r.kind, &ns, &name);
            }
        }
        state.primed = true;
        state.last_faults = faults_gen;
    }
    let later = std::mem::take(&mut state.later);
    state.queued.append(later);
    absorb(store.take_changes(), state);
    if state.queued.is_empty() {
        return;
    }
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
    // Writes made by the later stages (pod status → its ReplicaSet, ReplicaSet status → its
    // Deployment) stay queued as changes for the next pass: level-triggered, one step a tick.
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::Part;

    fn deployment(i: usize, image: &str) -> Value {
        json!({
            "metadata": {"name": format!("d{i}"), "labels": {"app": format!("d{i}")}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": format!("d{i}")}},
                "template": {"metadata": {"labels": {"app": format!("d{i}")}},
                             "spec": {"containers": [{"name": "app", "image": image}]}},
            }
        })
    }

    struct Fixture {
        store: Store,
        faults: Faults,
        config: SimConfig,
        state: ControllerState,
    }

    impl Fixture {
        fn new(workloads: usize) -> Self {
            let store = Store::new();
            for i in 0..workloads {
                store
                    .create(&DEPLOYMENTS, "ns", deployment(i, "app:v1"), false)
                    .expect("create deployment");
            }
            Fixture {
                store,
                faults: Faults::default(),
                config: SimConfig {
                    pod_ready_after: Duration::ZERO,
                    ..SimConfig::default()
                },
                state: ControllerState::default(),
            }
        }

        /// Ticks until a pass reconciles nothing; returns the objects reconciled per pass.
        fn settle(&mut self) -> Vec<usize> {
            let mut passes = Vec::new();
            for _ in 0..50 {
                tick(&self.store, &self.faults, &self.config, &mut self.state);
                if self.state.reconciled == 0 {
                    return passes;
                }
                passes.push(self.state.reconciled);
            }
            panic!("the controllers never went quiet: {passes:?}");
        }

        fn available(&self, i: usize) -> i64 {
            let d = self
                .store
                .get(&DEPLOYMENTS, "ns", &format!("d{i}"))
                .expect("deployment");
            int(&d, "/status/availableReplicas")
        }

        fn pods(&self) -> Vec<Value> {
            self.store
                .list(
                    &PODS,
                    Some("ns"),
                    &crate::selector::LabelSelector::default(),
                    &crate::selector::FieldSelector::default(),
                )
                .0
        }
    }

    #[test]
    fn a_change_costs_a_pass_the_objects_it_touches_not_the_whole_store() {
        let mut f = Fixture::new(50);
        let first = f.settle();
        assert!(
            first[0] >= 50,
            "the first pass visits every object: {first:?}"
        );
        assert!((0..50).all(|i| f.available(i) == 1));

        // quiet: a tick reconciles nothing
        tick(&f.store, &f.faults, &f.config, &mut f.state);
        assert_eq!(f.state.reconciled, 0);

        // a new image in one Deployment: only that workload's objects are visited
        let mut d = f.store.get(&DEPLOYMENTS, "ns", "d7").expect("d7");
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:v2");
        f.store
            .update(&DEPLOYMENTS, "ns", "d7", d, Part::Main, false)
            .expect("update");
        let passes = f.settle();
        assert!(
            passes.iter().all(|n| *n <= 6),
            "each pass visits one workload's Deployment, ReplicaSets and pods: {passes:?}"
        );
        let d = f.store.get(&DEPLOYMENTS, "ns", "d7").expect("d7");
        assert_eq!(int(&d, "/status/updatedReplicas"), 1);
        assert_eq!(f.available(7), 1);
        let images: Vec<String> = f
            .pods()
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "d7")
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .into()
            })
            .collect();
        assert_eq!(images, vec!["app:v2".to_string()], "v1's pod is gone");
    }

    #[test]
    fn a_deleted_pod_is_replaced_by_its_replicaset() {
        let mut f = Fixture::new(3);
        f.settle();
        let pod = f
            .pods()
            .into_iter()
            .find(|p| p["metadata"]["labels"]["app"] == "d1")
            .expect("d1's pod");
        let uid = uid_of(&pod).to_string();
        assert!(f.state.pod_born.contains_key(&uid));
        f.store
            .delete(&PODS, "ns", name_of(&pod), false, false)
            .expect("delete");
        f.settle();
        let d1: Vec<Value> = f
            .pods()
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "d1")
            .collect();
        assert_eq!(d1.len(), 1);
        assert_ne!(uid_of(&d1[0]), uid, "a new pod");
        assert!(
            !f.state.pod_born.contains_key(&uid),
            "the deleted pod's memory is gone"
        );
        assert_eq!(f.available(1), 1);
    }

    #[test]
    fn pods_become_ready_with_time_alone() {
        let mut f = Fixture::new(2);
        f.config.pod_ready_after = Duration::from_millis(30);
        // ReplicaSets and pods are created, but nothing is Ready yet
        for _ in 0..3 {
            tick(&f.store, &f.faults, &f.config, &mut f.state);
        }
        assert_eq!(f.available(0), 0);
        assert!(!f.state.later.is_empty(), "creating pods wait on the clock");
        std::thread::sleep(Duration::from_millis(40));
        // no write happened in between: the waiting pods are visited again
        f.settle();
        assert_eq!((f.available(0), f.available(1)), (1, 1));
    }

    #[test]
    fn a_new_fault_rule_rechecks_running_pods() {
        let mut f = Fixture::new(2);
        f.settle();
        f.faults.inject("app:v1", crate::faults::Fault::NeverReady);
        for _ in 0..5 {
            tick(&f.store, &f.faults, &f.config, &mut f.state);
        }
        assert_eq!(f.available(0), 0, "the pod's readiness probe now fails");
    }
}
