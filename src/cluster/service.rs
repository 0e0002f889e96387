//! `switch_service`: blue-green switch by patching a Service's selector.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::annotate::{ActionMeta, ActionOutcome, LastAction};
use super::{Cluster, ClusterError, Kind, resource_version, retry};

/// Plans or performs a selector switch: `selector` keys are set and `remove` keys deleted
/// in ONE merge patch (keys set to `null`), so the Service never has a half-switched selector.
/// The patch carries the resourceVersion it read; a 409 Conflict re-reads and re-plans.
pub async fn switch_service(
    cluster: &Cluster,
    namespace: &str,
    service: &str,
    selector: &BTreeMap<String, String>,
    remove: &[String],
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    retry::on_conflict(cluster.retry_policy(), || {
        switch_once(cluster, namespace, service, selector, remove, meta)
    })
    .await
}

/// One read-plan-write cycle of a selector switch.
async fn switch_once(
    cluster: &Cluster,
    namespace: &str,
    service: &str,
    selector: &BTreeMap<String, String>,
    remove: &[String],
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let svc = cluster.get(Kind::Service, namespace, service).await?;
    let before = svc.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    let mut sel = Map::new();
    for (k, v) in selector {
        sel.insert(k.clone(), json!(v));
    }
    for k in remove {
        if !selector.contains_key(k) {
            sel.insert(k.clone(), Value::Null);
        }
    }
    let mut after = before.as_object().cloned().unwrap_or_default();
    for (k, v) in &sel {
        if v.is_null() {
            after.remove(k);
        } else {
            after.insert(k.clone(), v.clone());
        }
    }
    let detail = json!({"service": service, "from_selector": before, "selector": after});
    if Value::Object(after.clone()) == before {
        return Ok(ActionOutcome::Skipped {
            reason: format!("service {service} already selects {}", Value::Object(after)),
            detail,
        });
    }
    let record = LastAction::new(meta, "switch_service");
    let body = json!({
        "metadata": {"resourceVersion": resource_version(&svc), "annotations": record.annotations(&svc)},
        "spec": {"selector": sel}
    });
    if meta.dry_run {
        return Ok(ActionOutcome::Planned {
            plan: json!({"request": format!("PATCH Service {namespace}/{service}"),
                         "content_type": "application/merge-patch+json", "patch": body}),
        });
    }
    cluster
        .patch(
            Kind::Service,
            namespace,
            service,
            &kube::api::Patch::Merge(body),
            false,
        )
        .await?;
    Ok(ActionOutcome::Done { detail })
}
