//! The ReplicaSet controller (creates and deletes pods) and the kubelet stand-in that moves
//! pods through their lifecycle, honouring injected faults.

use std::time::Instant;

use serde_json::{Value, json};

use super::controller::{Ctx, int, owner_ref};
use super::discovery::{PODS, REPLICASETS};
use super::faults::{Fault, Stage, container_status};
use super::ids;
use super::store::{name_of, namespace_of, uid_of};

/// Whether a pod's `Ready` condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Creates a pod from a template, owned by `owner`; returns it as stored.
pub fn create_pod(ctx: &Ctx<'_>, owner: &Value, template: &Value) -> Option<Value> {
    let ns = namespace_of(owner).to_string();
    let mut meta = template
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or(json!({}));
    meta["generateName"] = json!(format!("{}-", name_of(owner)));
    meta["ownerReferences"] = json!([owner_ref(owner)]);
    if let Some(m) = meta.as_object_mut() {
        m.remove("name");
        m.remove("creationTimestamp");
    }
    let mut spec = template.get("spec").filter(|s| s.is_object()).cloned()?;
    spec["nodeName"] = json!("sim-node");
    let pod = json!({"metadata": meta, "spec": spec});
    match ctx.store.create(&PODS, &ns, pod, false) {
        Ok(created) => Some(created),
        Err(e) => {
            tracing::debug!(error = %e, "sim could not create pod");
            None
        }
    }
}

/// Reconciles the queued ReplicaSets: pod count and status.
pub fn reconcile(ctx: &mut Ctx<'_>) {
    for rs in ctx.next(&REPLICASETS) {
        let ns = namespace_of(&rs).to_string();
        let mut pods = ctx.controlled(&PODS, &rs);
        let desired = int(&rs, "/spec/replicas").max(0) as usize;
        let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let mut changed = false;
        for _ in pods.len()..desired {
            pods.extend(create_pod(ctx, &rs, &template));
            changed = true;
        }
        if pods.len() > desired {
            // Delete unready pods first, then the newest.
            pods.sort_by_key(|p| {
                let rv = p
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                (pod_ready(p), std::cmp::Reverse(rv))
            });
            for p in pods.iter().take(pods.len() - desired) {
                let _ = ctx.store.delete(&PODS, &ns, name_of(p), false, false);
            }
            changed = true;
        }
        // after creating or deleting, read this ReplicaSet's pods back as stored
        let pods = if changed {
            ctx.controlled(&PODS, &rs)
        } else {
            pods
        };
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let mut status = json!({
            "replicas": pods.len(),
            "fullyLabeledReplicas": pods.len(),
            "observedGeneration": int(&rs, "/metadata/generation"),
        });
        if ready > 0 {
            status["readyReplicas"] = json!(ready);
            status["availableReplicas"] = json!(ready);
        }
        if rs.get("status") != Some(&status) {
            let mut updated = rs.clone();
            updated["status"] = status;
            ctx.save(&REPLICASETS, updated);
        }
    }
}

fn stage_for(
    fault: Option<Fault>,
    age: std::time::Duration,
    ready_after: std::time::Duration,
) -> Stage {
    match fault {
        Some(Fault::ImagePullBackOff) if age >= ready_after / 2 => {
            Stage::Faulty(Fault::ImagePullBackOff)
        }
        _ if age < ready_after => Stage::Creating,
        Some(f) => Stage::Faulty(f),
        None => Stage::Healthy,
    }
}

fn condition(kind: &str, ok: bool, since: &str, old: &Value) -> Value {
    let status = if ok { "True" } else { "False" };
    let prev = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == kind && c["status"] == status)
        })
        .and_then(|c| c["lastTransitionTime"].as_str().map(String::from));
    json!({"type": kind, "status": status, "lastProbeTime": null,
           "lastTransitionTime": prev.unwrap_or_else(|| since.to_string())})
}

/// Emits the Warning event a kubelet would for a fault (once per pod).
fn warn_about(ctx: &Ctx<'_>, pod: &Value, fault: Fault) {
    let container = pod
        .pointer("/spec/containers/0/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let image = pod
        .pointer("/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = name_of(pod);
    let (reason, message) = match fault {
        Fault::CrashLoop | Fault::OomKilled => (
            "BackOff",
            format!("Back-off restarting failed container {container} in pod {name}"),
        ),
        Fault::NeverReady => (
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string(),
        ),
        Fault::ImagePullBackOff => (
            "Failed",
            format!("Failed to pull image \"{image}\": not found"),
        ),
    };
    ctx.event_of_type(pod, "Warning", reason, &message);
}

/// Moves the queued non-terminal pods along their lifecycle.
pub fn update_pods(ctx: &mut Ctx<'_>) {
    let now = Instant::now();
    for pod in ctx.next(&PODS) {
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending");
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let born = *ctx
            .state
            .pod_born
            .entry(uid_of(&pod).to_string())
            .or_insert(now);
        let age = now.saturating_duration_since(born);
        let fault = pod.get("spec").and_then(|s| ctx.faults.for_pod_spec(s));
        let completes = pod
            .pointer("/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Always")
            != "Always";
        let stage = stage_for(fault, age, ctx.config.pod_ready_after);
        if stage == Stage::Healthy && !completes && phase == "Running" && pod_ready(&pod) {
            continue; // steady state: nothing changes until the pod is deleted
        }
        // Anything else may change with time alone (readiness, restarts, completion).
        if !matches!(
            stage,
            Stage::Faulty(Fault::NeverReady | Fault::ImagePullBackOff)
        ) {
            ctx.again(&pod);
        }
        let spec = pod.get("spec").cloned().unwrap_or(json!({}));
        if let Stage::Faulty(f) = stage
            && ctx.state.warned.insert(uid_of(&pod).to_string())
        {
            warn_about(ctx, &pod, f);
        }
        let started = pod
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let containers = spec["containers"].as_array().cloned().unwrap_or_default();
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| {
                container_status(
                    c,
                    stage,
                    age,
                    ctx.config.pod_ready_after,
                    &started,
                    completes,
                )
            })
            .collect();
        let phase = match stage {
            Stage::Creating | Stage::Faulty(Fault::ImagePullBackOff) => "Pending",
            Stage::Healthy if completes => "Succeeded",
            Stage::Faulty(_) if completes => "Failed",
            _ => "Running",
        };
        let ready = phase == "Running" && statuses.iter().all(|s| s["ready"] == true);
        let now_ts = ids::now();
        let n = uid_of(&pod)
            .bytes()
            .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
        let status = json!({
            "phase": phase,
            "conditions": [
                condition("PodReadyToStartContainers", stage != Stage::Creating, &now_ts, &pod),
                condition("Initialized", true, &now_ts, &pod),
                condition("Ready", ready, &now_ts, &pod),
                condition("ContainersReady", ready, &now_ts, &pod),
                condition("PodScheduled", true, &now_ts, &pod),
            ],
            "hostIP": "10.0.0.1",
            "podIP": format!("10.244.{}.{}", (n >> 8) % 250 + 1, n % 250 + 2),
            "startTime": started,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        });
        if pod.get("status") != Some(&status) {
            let mut updated = pod.clone();
            updated["status"] = status;
            ctx.save(&PODS, updated);
        }
    }
}
