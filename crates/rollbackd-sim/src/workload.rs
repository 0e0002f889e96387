//! The part shared by the Deployment and Rollout controllers: find or create the ReplicaSet
//! for the current pod template, number revisions, and roll pods from old to new.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::controller::{Ctx, int, owner_ref};
use super::discovery::REPLICASETS;
use super::ids;
use super::store::{name_of, namespace_of, uid_of};

/// The label that ties a ReplicaSet and its pods to one pod template.
pub const HASH_LABEL: &str = "pod-template-hash";

/// Annotations never copied from a workload to its ReplicaSets (as kubectl's rollback skips them).
const SKIP_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
    "rollout.argoproj.io/revision",
];

/// The outcome of one sync, used to write the workload's status.
#[derive(Debug, Clone, Default)]
pub struct Rollup {
    /// Name of the ReplicaSet for the current template (if it exists).
    pub new_rs: Option<String>,
    /// The pod-template-hash of the new ReplicaSet.
    pub new_hash: Option<String>,
    /// The revision of the new ReplicaSet.
    pub revision: i64,
    /// `spec.replicas` of the workload.
    pub desired: i64,
    /// Pods of all ReplicaSets.
    pub replicas: i64,
    /// Pods of the new ReplicaSet.
    pub updated: i64,
    /// Ready pods of all ReplicaSets.
    pub ready: i64,
    /// Ready pods of the new ReplicaSet.
    pub updated_ready: i64,
    /// maxUnavailable resolved against `desired`.
    pub max_unavailable: i64,
    /// Whether every desired pod runs the new template and is available.
    pub complete: bool,
    /// Whether the progress deadline passed without progress.
    pub deadline_exceeded: bool,
}

/// The pod template of a ReplicaSet without its pod-template-hash label.
pub fn template_without_hash(rs: &Value) -> Value {
    let mut t = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty()
            && let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("labels");
        }
    }
    t
}

/// A template in semantic form: nulls, empty objects and empty arrays removed (Go's
/// semantic equality treats them as absent).
pub fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether a ReplicaSet runs exactly `template` (ignoring the pod-template-hash label).
pub fn runs_template(rs: &Value, template: &Value) -> bool {
    normalized(&template_without_hash(rs)) == normalized(template)
}

/// The revision annotation of an object (0 if absent).
pub fn revision_of(obj: &Value, key: &str) -> i64 {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Resolves an int-or-percent against `total`.
pub fn int_or_percent(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            let x = total.saturating_mul(pct.clamp(0, 100));
            if round_up { (x + 99) / 100 } else { x / 100 }
        }
        _ => default,
    }
}

fn set_annotation(obj: &mut Value, key: &str, value: String) {
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"][key] = json!(value);
}

fn set_replicas(
    ctx: &Ctx<'_>,
    owner: &Value,
    rs: &mut Value,
    replicas: i64,
    desired: i64,
    max: i64,
) {
    if int(rs, "/spec/replicas") == replicas {
        return;
    }
    let before = int(rs, "/spec/replicas");
    rs["spec"]["replicas"] = json!(replicas);
    set_annotation(
        rs,
        "deployment.kubernetes.io/desired-replicas",
        desired.to_string(),
    );
    set_annotation(rs, "deployment.kubernetes.io/max-replicas", max.to_string());
    if let Some(saved) = ctx.save(&REPLICASETS, rs.clone()) {
        *rs = saved;
        let verb = if replicas > before { "up" } else { "down" };
        ctx.event(
            owner,
            "ScalingReplicaSet",
            &format!(
                "Scaled {verb} replica set {} from {before} to {replicas}",
                name_of(rs)
            ),
        );
    }
}

fn create_rs(
    ctx: &Ctx<'_>,
    owner: &Value,
    template: &Value,
    revision: i64,
    rev_key: &str,
) -> Option<Value> {
    let ns = namespace_of(owner);
    let hash = ids::template_hash(&normalized(template));
    let mut t = template.clone();
    if !t["metadata"].is_object() {
        t["metadata"] = json!({});
    }
    if !t["metadata"]["labels"].is_object() {
        t["metadata"]["labels"] = json!({});
    }
    t["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut selector = owner
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or(json!({}));
    if !selector["matchLabels"].is_object() {
        selector["matchLabels"] = json!({});
    }
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let mut annotations = serde_json::Map::new();
    if let Some(a) = owner
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in a {
            if !SKIP_ANNOTATIONS.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    annotations.insert(rev_key.into(), json!(revision.to_string()));
    let desired = int(owner, "/spec/replicas");
    annotations.insert(
        "deployment.kubernetes.io/desired-replicas".into(),
        json!(desired.to_string()),
    );
    annotations.insert(
        "deployment.kubernetes.io/max-replicas".into(),
        json!((desired + 1).to_string()),
    );
    let mut labels = t["metadata"]["labels"].clone();
    labels[HASH_LABEL] = json!(hash);
    let rs = json!({
        "metadata": {
            "name": format!("{}-{hash}", name_of(owner)),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_ref(owner)],
        },
        "spec": {"replicas": 0, "minReadySeconds": owner["spec"]["minReadySeconds"].as_i64().unwrap_or(0), "selector": selector, "template": t},
    });
    // A name clash means another object already uses this hash: give up rather than
    // inventing names (the real controller bumps collisionCount).
    match ctx.store.create(&REPLICASETS, ns, rs, false) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(error = %e, "sim could not create ReplicaSet");
            None
        }
    }
}

/// Syncs the ReplicaSets of one workload (Deployment or Rollout) and reports where it stands.
/// `rev_key` is the revision annotation (`deployment.kubernetes.io/revision` or
/// `rollout.argoproj.io/revision`).
///
/// `sets` are the ReplicaSets `owner` controls.
pub fn sync(
    ctx: &mut Ctx<'_>,
    owner: &Value,
    mut sets: Vec<Value>,
    rev_key: &str,
) -> Option<Rollup> {
    let uid = uid_of(owner).to_string();
    let template = owner.pointer("/spec/template")?.clone();
    let paused = owner.pointer("/spec/paused") == Some(&json!(true));
    let desired = owner
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let max_rev = sets
        .iter()
        .map(|rs| revision_of(rs, rev_key))
        .max()
        .unwrap_or(0);
    let mut new_idx = sets.iter().position(|rs| runs_template(rs, &template));
    if !paused {
        match new_idx {
            None => {
                if let Some(rs) = create_rs(ctx, owner, &template, max_rev + 1, rev_key) {
                    sets.push(rs);
                    new_idx = Some(sets.len() - 1);
                }
            }
            Some(i) => {
                let rev = revision_of(&sets[i], rev_key);
                let others_max = sets
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, rs)| revision_of(rs, rev_key))
                    .max()
                    .unwrap_or(0);
                if rev <= others_max {
                    let mut rs = sets[i].clone();
                    let history = rs
                        .pointer("/metadata/annotations/deployment.kubernetes.io~1revision-history")
                        .and_then(Value::as_str)
                        .map(|h| format!("{h},{rev}"))
                        .unwrap_or_else(|| rev.to_string());
                    set_annotation(&mut rs, rev_key, (others_max + 1).to_string());
                    set_annotation(
                        &mut rs,
                        "deployment.kubernetes.io/revision-history",
                        history,
                    );
                    if let Some(saved) = ctx.save(&REPLICASETS, rs) {
                        sets[i] = saved;
                    }
                }
            }
        }
    }
    let strategy = owner
        .pointer("/spec/strategy")
        .cloned()
        .unwrap_or(json!({}));
    let rolling = strategy.get("rollingUpdate");
    let surge = int_or_percent(rolling.and_then(|r| r.get("maxSurge")), desired, true, 1);
    let mut unavailable = int_or_percent(
        rolling.and_then(|r| r.get("maxUnavailable")),
        desired,
        false,
        0,
    );
    // Bounded like the real controller (maxUnavailable never exceeds the desired count).
    let surge = surge.clamp(0, desired);
    unavailable = unavailable.clamp(0, desired);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    if !paused && let Some(ni) = new_idx {
        let plan = Plan {
            desired,
            surge,
            unavailable,
            recreate: strategy["type"] == "Recreate",
        };
        scale(ctx, owner, &mut sets, ni, &plan);
        cleanup_history(ctx, owner, &sets, ni, rev_key);
    }
    let ready = |rs: &Value| int(rs, "/status/readyReplicas");
    let mut r = Rollup {
        desired,
        max_unavailable: unavailable,
        replicas: sets.iter().map(|rs| int(rs, "/status/replicas")).sum(),
        ready: sets.iter().map(ready).sum(),
        ..Rollup::default()
    };
    if let Some(ni) = new_idx {
        let rs = &sets[ni];
        r.new_rs = Some(name_of(rs).to_string());
        r.new_hash = rs
            .pointer("/metadata/labels/pod-template-hash")
            .and_then(Value::as_str)
            .map(String::from);
        r.revision = revision_of(rs, rev_key);
        r.updated = int(rs, "/status/replicas");
        r.updated_ready = ready(rs);
    }
    r.complete = r.updated == desired && r.replicas == desired && r.ready >= desired;
    let signature = format!(
        "{:?}/{}/{}/{}/{}/{paused}",
        r.new_rs, r.updated, r.ready, r.replicas, desired
    );
    let now = Instant::now();
    let entry = ctx
        .state
        .progress
        .entry(uid)
        .or_insert_with(|| (signature.clone(), now));
    if entry.0 != signature {
        *entry = (signature, now);
    }
    let deadline = owner
        .pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(600);
    r.deadline_exceeded = !r.complete
        && !paused
        && now.saturating_duration_since(entry.1) > Duration::from_secs(deadline);
    if !r.complete && !paused && !r.deadline_exceeded {
        ctx.again(owner); // the progress deadline can pass with time alone
    }
    Some(r)
}

/// The rollout parameters resolved against the desired replica count.
struct Plan {
    desired: i64,
    surge: i64,
    unavailable: i64,
    recreate: bool,
}

fn scale(ctx: &Ctx<'_>, owner: &Value, sets: &mut [Value], ni: usize, plan: &Plan) {
    let Plan {
        desired,
        surge,
        unavailable,
        recreate,
    } = *plan;
    let max = desired + surge;
    let olds: Vec<usize> = (0..sets.len()).filter(|i| *i != ni).collect();
    let old_active = olds
        .iter()
        .any(|i| int(&sets[*i], "/spec/replicas") > 0 || int(&sets[*i], "/status/replicas") > 0);
    if !old_active {
        set_replicas(ctx, owner, &mut sets[ni], desired, desired, max);
        return;
    }
    if recreate {
        for i in &olds {
            set_replicas(ctx, owner, &mut sets[*i], 0, desired, max);
        }
        return;
    }
    // Scale up the new ReplicaSet within the surge budget.
    let total: i64 = sets.iter().map(|rs| int(rs, "/spec/replicas")).sum();
    let new_r = int(&sets[ni], "/spec/replicas");
    if new_r > desired {
        set_replicas(ctx, owner, &mut sets[ni], desired, desired, max);
    } else if new_r < desired && total < max {
        set_replicas(
            ctx,
            owner,
            &mut sets[ni],
            desired.min(new_r + max - total),
            desired,
            max,
        );
    }
    // Scale down old ReplicaSets: unhealthy pods first, then within maxUnavailable.
    let min_available = desired - unavailable;
    let all_pods: i64 = sets.iter().map(|rs| int(rs, "/spec/replicas")).sum();
    let new_unavailable =
        int(&sets[ni], "/spec/replicas") - int(&sets[ni], "/status/readyReplicas");
    let mut budget = all_pods - min_available - new_unavailable;
    let mut order = olds.clone();
    order.sort_by_key(|i| {
        sets[*i]["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    for i in &order {
        if budget <= 0 {
            break;
        }
        let spec = int(&sets[*i], "/spec/replicas");
        let unhealthy = (spec - int(&sets[*i], "/status/readyReplicas"))
            .max(0)
            .min(budget);
        if unhealthy > 0 {
            set_replicas(ctx, owner, &mut sets[*i], spec - unhealthy, desired, max);
            budget -= unhealthy;
        }
    }
    let available: i64 = sets
        .iter()
        .map(|rs| int(rs, "/status/readyReplicas").min(int(rs, "/spec/replicas")))
        .sum();
    let mut down = available - min_available;
    for i in &order {
        if down <= 0 {
            break;
        }
        let spec = int(&sets[*i], "/spec/replicas");
        let d = spec.min(down);
        if d > 0 {
            set_replicas(ctx, owner, &mut sets[*i], spec - d, desired, max);
            down -= d;
        }
    }
}

fn cleanup_history(ctx: &Ctx<'_>, owner: &Value, sets: &[Value], ni: usize, rev_key: &str) {
    let limit = owner
        .pointer("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10)
        .max(0) as usize;
    let mut idle: Vec<&Value> = sets
        .iter()
        .enumerate()
        .filter(|(i, rs)| {
            *i != ni && int(rs, "/spec/replicas") == 0 && int(rs, "/status/replicas") == 0
        })
        .map(|(_, rs)| rs)
        .collect();
    if idle.len() <= limit {
        return;
    }
    idle.sort_by_key(|rs| revision_of(rs, rev_key));
    for rs in idle.iter().take(idle.len() - limit) {
        let _ = ctx
            .store
            .delete(&REPLICASETS, namespace_of(rs), name_of(rs), false, false);
    }
}
