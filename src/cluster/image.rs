//! `set_image`: set one container's image (strategic merge patch on the named container).

use serde_json::{Value, json};

use super::annotate::{ActionMeta, ActionOutcome, LastAction, template_digest};
use super::guard::{RevisionGuard, mark_bad};
use super::history::{images_of, load};
use super::{Cluster, ClusterError, Kind, generation, resource_version, retry};
use rollbackd_core::policy::{ImageRef, RevisionRef, Workload};

/// The container a step acts on: the step's, else the workload's, else the first one.
pub fn container_name(template: &Value, step: Option<&str>, w: &Workload) -> Option<String> {
    step.or(w.container.as_deref())
        .map(str::to_string)
        .or_else(|| images_of(template).first().map(|(n, _)| n.clone()))
}

/// Plans or performs a `set_image` on a policy workload. The write carries the
/// resourceVersion it read; on a 409 Conflict it re-reads and, if someone deployed
/// meanwhile, fails with [`ClusterError::Superseded`].
pub async fn set_image(
    cluster: &Cluster,
    w: &Workload,
    container: Option<&str>,
    image: &ImageRef,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let guard = RevisionGuard::new(meta);
    retry::on_conflict(cluster.retry_policy(), || {
        set_image_once(cluster, w, container, image, meta, &guard)
    })
    .await
}

/// One read-check-write cycle of a `set_image`.
async fn set_image_once(
    cluster: &Cluster,
    w: &Workload,
    container: Option<&str>,
    image: &ImageRef,
    meta: &ActionMeta,
    guard: &RevisionGuard,
) -> Result<ActionOutcome, ClusterError> {
    let kind = Kind::of(w);
    let (owner, history) = load(cluster, w).await?;
    guard.check(&owner, &history)?;
    let template = owner
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let c = container_name(&template, container, w)
        .ok_or_else(|| ClusterError::InvalidStep(format!("{} has no containers", w.name)))?;
    let images = images_of(&template);
    let Some(index) = images.iter().position(|(n, _)| *n == c) else {
        return Err(ClusterError::InvalidStep(format!(
            "container {c:?} not found in {}/{}",
            w.namespace, w.name
        )));
    };
    let from_revision = history.current().map(|r| r.number);
    let (target, to_revision, skipped_bad) = match image {
        ImageRef::Literal(i) => (i.clone(), None, Vec::new()),
        ImageRef::Previous | ImageRef::LastKnownGood => {
            let r = if *image == ImageRef::Previous {
                RevisionRef::Previous
            } else {
                RevisionRef::LastKnownGood
            };
            let safe = match history.resolve_safe(r) {
                Ok(safe) => safe,
                Err(ClusterError::NoSafeTarget { reason, .. })
                    if meta.expected_revision.is_none()
                        && super::undo::already_restored(&owner, &history, r) =>
                {
                    // another workload of a coordinated method, already rolled back by
                    // rollbackd: leave it on the revision rollbackd restored
                    return Ok(ActionOutcome::Skipped {
                        reason: format!(
                            "already on revision {}, which rollbackd restored; nothing safer to go to ({reason})",
                            from_revision.unwrap_or_default()
                        ),
                        detail: json!({"container": c, "from_revision": from_revision}),
                    });
                }
                Err(e) => return Err(e),
            };
            let rev = &safe.revision;
            let img = rev.image(Some(&c)).ok_or_else(|| {
                ClusterError::InvalidStep(format!(
                    "revision {} of {} has no container {c:?}",
                    rev.number, w.name
                ))
            })?;
            (img.to_string(), Some(rev.number), safe.skipped_bad)
        }
    };
    let mut detail = json!({"container": c, "from_image": images[index].1, "image": target,
                        "from_revision": from_revision, "to_revision": to_revision});
    if !skipped_bad.is_empty() {
        detail["skipped_bad"] = json!(skipped_bad);
    }
    if images[index].1 == target {
        return Ok(ActionOutcome::Skipped {
            reason: format!("container {c} already runs {target}"),
            detail,
        });
    }
    let mut record = LastAction::new(meta, "set_image");
    record.from_revision = from_revision;
    record.to_revision = to_revision;
    let mut written = template.clone();
    if let Some(slot) = written.pointer_mut(&format!("/spec/containers/{index}/image")) {
        *slot = json!(target);
    }
    record.template_digest = Some(template_digest(&written));
    let rv = resource_version(&owner);
    let (patch, content_type) = if kind == Kind::Deployment {
        let body = json!({
            "metadata": {"resourceVersion": rv, "annotations": record.annotations(&owner)},
            "spec": {"template": {"spec": {"containers": [{"name": c, "image": target}]}}}
        });
        (
            kube::api::Patch::Strategic(body),
            "application/strategic-merge-patch+json",
        )
    } else {
        // Custom resources take no strategic merge patch: replace the image by index.
        let body = json!([
            {"op": "test", "path": format!("/spec/template/spec/containers/{index}/name"), "value": c},
            {"op": "replace", "path": format!("/spec/template/spec/containers/{index}/image"), "value": target},
            {"op": "add", "path": "/metadata/annotations", "value": merged_annotations(&owner, &record)},
            {"op": "test", "path": "/metadata/generation", "value": generation(&owner)},
        ]);
        (
            kube::api::Patch::Json(serde_json::from_value(body)?),
            "application/json-patch+json",
        )
    };
    if meta.dry_run {
        return Ok(ActionOutcome::Planned {
            plan: json!({"request": format!("PATCH {} {}/{}", kind.name(), w.namespace, w.name),
                         "content_type": content_type, "patch": patch_body(&patch), "set_image": detail}),
        });
    }
    if to_revision.is_some()
        && let Some(n) = mark_bad(cluster, &w.namespace, &owner, &history, meta).await
    {
        detail["marked_bad"] = json!(n);
    }
    cluster
        .patch(kind, &w.namespace, &w.name, &patch, false)
        .await
        .map_err(|e| {
            e.from_json_patch_test(&format!("{} {}/{}", kind.name(), w.namespace, w.name))
        })?;
    Ok(ActionOutcome::Done { detail })
}

/// The object's annotations with rollbackd's record added.
pub fn merged_annotations(owner: &Value, record: &LastAction) -> Value {
    let mut a = owner
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    a.extend(record.annotations(owner));
    Value::Object(a)
}

/// The JSON body of a patch, for plans and logs.
pub fn patch_body(p: &kube::api::Patch<Value>) -> Value {
    match p {
        kube::api::Patch::Strategic(v)
        | kube::api::Patch::Merge(v)
        | kube::api::Patch::Apply(v) => v.clone(),
        kube::api::Patch::Json(p) => serde_json::to_value(p).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
