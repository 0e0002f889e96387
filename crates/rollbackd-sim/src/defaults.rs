//! Defaulting applied on create and update, as the real API server's defaulters do.

use serde_json::{Value, json};

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(key.to_string()).or_insert(value);
    }
}

/// Fills in the pod spec fields the API server defaults.
pub fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    if let Some(cs) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for c in cs {
            let image = c["image"].as_str().unwrap_or_default().to_string();
            let tag = image.rsplit('/').next().unwrap_or_default();
            let policy = if !tag.contains(':') || tag.ends_with(":latest") {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(c, "imagePullPolicy", json!(policy));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
        }
    }
}

/// Applies kind-specific defaults to a whole object.
pub fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "Deployment" => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            if let Some(s) = spec.get_mut("strategy")
                && s.is_object()
                && s.get("type").is_none_or(|t| t == "RollingUpdate")
            {
                s["type"] = json!("RollingUpdate");
                set_default(
                    s,
                    "rollingUpdate",
                    json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
                );
            }
            if let Some(ps) = spec.pointer_mut("/template/spec") {
                pod_spec(ps);
            }
        }
        "ReplicaSet" | "Rollout" => {
            if let Some(spec) = obj.get_mut("spec") {
                set_default(spec, "replicas", json!(1));
                if let Some(ps) = spec.pointer_mut("/template/spec") {
                    pod_spec(ps);
                }
            }
        }
        "Job" => {
            if let Some(spec) = obj.get_mut("spec") {
                set_default(spec, "backoffLimit", json!(6));
                set_default(spec, "completions", json!(1));
                set_default(spec, "parallelism", json!(1));
                if let Some(ps) = spec.pointer_mut("/template/spec") {
                    set_default(ps, "restartPolicy", json!("Never"));
                    pod_spec(ps);
                }
            }
        }
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
            }
            if obj.get("status").is_none_or(Value::is_null)
                && let Some(m) = obj.as_object_mut()
            {
                m.insert("status".into(), json!({"phase": "Pending"}));
            }
        }
        "CustomResourceDefinition" => super::crds::apply_defaults(obj),
        "Namespace" => {
            if let Some(m) = obj.as_object_mut() {
                m.entry("spec")
                    .or_insert(json!({"finalizers": ["kubernetes"]}));
                m.entry("status").or_insert(json!({"phase": "Active"}));
            }
        }
        _ => {}
    }
}
