//! Revision history: the ReplicaSets controlled by a Deployment (or Rollout), by revision, and
//! the marks rollbackd leaves on them (verified, rolled back as bad) that choose a safe target.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Cluster, ClusterError, Kind, annotation, name_of, selector_string};
use rollbackd_core::policy::{RevisionRef, Workload};

/// The annotation marking a ReplicaSet whose revision passed verification.
pub const VERIFIED: &str = "rollbackd.io/verified";
/// The `pod-template-hash` of the ReplicaSet that was verified. The deployment controller
/// copies a Deployment's annotations onto new ReplicaSets, so a `verified` annotation that
/// reached a Deployment (e.g. by a human's `kubectl rollout undo`) would spread to unverified
/// revisions; only a mark whose hash matches the ReplicaSet's own label counts.
pub const VERIFIED_HASH: &str = "rollbackd.io/verified-template-hash";
/// The annotation marking a ReplicaSet whose revision rollbackd rolled back as bad (the
/// value is the incident's id). rollbackd never rolls back *to* such a revision.
pub const ROLLED_BACK_AS_BAD: &str = "rollbackd.io/rolled-back-as-bad";
/// The `pod-template-hash` of the ReplicaSet that was rolled back as bad: as with
/// [`VERIFIED_HASH`], a mark copied onto another ReplicaSet (through the Deployment's
/// annotations) does not count there.
pub const ROLLED_BACK_AS_BAD_HASH: &str = "rollbackd.io/rolled-back-as-bad-template-hash";

/// The label the controller adds to each ReplicaSet's pod template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The labels controllers add to a ReplicaSet's template: Deployments use
/// `pod-template-hash`, Argo Rollouts `rollouts-pod-template-hash`. Neither is copied back.
pub const HASH_LABELS: [&str; 2] = [POD_TEMPLATE_HASH, "rollouts-pod-template-hash"];

/// A pod template without the hash label and without empty values, for comparison
/// (Kubernetes' semantic equality treats nil and empty alike).
pub fn comparable_template(template: &Value) -> Value {
    prune(&without_hash(template))
}

/// A pod template without the controllers' hash labels.
pub fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for l in HASH_LABELS {
            labels.remove(l);
        }
    }
    t
}

fn prune(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), prune(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(prune).collect()),
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

/// One revision: a ReplicaSet and what it runs.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    /// The revision number.
    pub number: u64,
    /// The ReplicaSet's name.
    pub replicaset: String,
    /// The ReplicaSet's uid.
    pub uid: String,
    /// The ReplicaSet's creation time.
    pub created: Option<DateTime<Utc>>,
    /// Its `pod-template-hash` label.
    pub template_hash: Option<String>,
    /// The pod template (as stored, with the hash label).
    pub template: Value,
    /// `(container, image)` in template order.
    pub images: Vec<(String, String)>,
    /// Whether rollbackd verified this revision (its mark names this ReplicaSet's hash).
    pub verified: bool,
    /// The incident that rolled this revision back as bad (its mark names this
    /// ReplicaSet's hash); rollbackd never rolls back to it.
    pub rolled_back_as_bad: Option<String>,
    /// The ReplicaSet's annotations.
    pub annotations: Map<String, Value>,
}

impl Revision {
    /// Reads a revision from a ReplicaSet; `None` without a numeric revision annotation.
    pub fn from_replicaset(rs: &Value, revision_annotation: &str) -> Option<Revision> {
        let number = annotation(rs, revision_annotation)?.parse::<u64>().ok()?;
        let template = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
        let template_hash = hash_label(rs).map(str::to_string);
        let own_mark = |hash_key: &str| {
            template_hash
                .as_deref()
                .is_some_and(|h| annotation(rs, hash_key) == Some(h))
        };
        let verified = annotation(rs, VERIFIED) == Some("true") && own_mark(VERIFIED_HASH);
        let rolled_back_as_bad = annotation(rs, ROLLED_BACK_AS_BAD)
            .filter(|_| own_mark(ROLLED_BACK_AS_BAD_HASH))
            .map(str::to_string);
        Some(Revision {
            number,
            replicaset: name_of(rs).to_string(),
            uid: rs
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            created: rs
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc)),
            template_hash,
            images: images_of(&template),
            template,
            verified,
            rolled_back_as_bad,
            annotations: rs
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// The image of one container (the first one when `container` is `None`).
    pub fn image(&self, container: Option<&str>) -> Option<&str> {
        match container {
            Some(c) => self
                .images
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, i)| i.as_str()),
            None => self.images.first().map(|(_, i)| i.as_str()),
        }
    }
}

/// A ReplicaSet's template hash label (`pod-template-hash`, or Argo's
/// `rollouts-pod-template-hash`).
pub fn hash_label(rs: &Value) -> Option<&str> {
    let labels = rs.pointer("/metadata/labels")?;
    labels
        .get(POD_TEMPLATE_HASH)
        .or_else(|| labels.get("rollouts-pod-template-hash"))
        .and_then(Value::as_str)
}

/// `(container, image)` pairs of a pod template.
pub fn images_of(template: &Value) -> Vec<(String, String)> {
    template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["image"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `rs` is controlled by the object with uid `owner_uid`.
pub fn controlled_by(rs: &Value, owner_uid: &str) -> bool {
    rs.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r["controller"] == Value::Bool(true) && r["uid"].as_str() == Some(owner_uid)
            })
        })
}

/// A workload's revisions, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// `namespace/name` of the workload.
    pub workload: String,
    /// Revisions in ascending order.
    pub revisions: Vec<Revision>,
}

impl History {
    /// Builds the history from a workload object and candidate ReplicaSets.
    pub fn from_objects(owner: &Value, replicasets: &[Value], kind: Kind) -> History {
        let uid = owner
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut revisions: Vec<Revision> = replicasets
            .iter()
            .filter(|rs| !uid.is_empty() && controlled_by(rs, uid))
            .filter_map(|rs| Revision::from_replicaset(rs, kind.revision_annotation()))
            .collect();
        revisions.sort_by_key(|r| r.number);
        let ns = owner
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        History {
            workload: format!("{ns}/{}", name_of(owner)),
            revisions,
        }
    }

    /// The highest revision.
    pub fn current(&self) -> Option<&Revision> {
        self.revisions.last()
    }

    /// The second-highest revision (kubectl's default undo target).
    pub fn previous(&self) -> Option<&Revision> {
        self.revisions.iter().rev().nth(1)
    }

    /// One revision by number.
    pub fn find(&self, number: u64) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.number == number)
    }

    /// The newest revision below the current one that passed verification. No fallback.
    pub fn last_known_good(&self) -> Result<&Revision, ClusterError> {
        let current = self.current().map(|r| r.number).unwrap_or(0);
        self.revisions
            .iter()
            .rev()
            .find(|r| r.number < current && r.verified)
            .ok_or_else(|| ClusterError::NoLastKnownGood {
                workload: self.workload.clone(),
                current,
            })
    }

    /// Resolves a revision reference.
    pub fn resolve(&self, r: RevisionRef) -> Result<&Revision, ClusterError> {
        match r {
            RevisionRef::Previous => self
                .previous()
                .ok_or_else(|| ClusterError::NoPrevious(self.workload.clone())),
            RevisionRef::LastKnownGood => self.last_known_good(),
            RevisionRef::Revision(n) => self.find(n).ok_or(ClusterError::RevisionNotFound(n)),
        }
    }
}

/// A revision safe to roll back to, and the bad ones passed over to reach it.
#[derive(Debug, Clone)]
pub struct SafeTarget {
    /// The revision to restore.
    pub revision: Revision,
    /// Newer candidates skipped because rollbackd rolled them back as bad.
    pub skipped_bad: Vec<u64>,
}

impl History {
    /// Resolves a revision reference to a revision that is safe to roll back to: it exists
    /// (its ReplicaSet is there) and rollbackd never rolled it back as bad. `previous` is
    /// the newest earlier revision not marked bad (kubectl would take the second-highest
    /// even when it is broken); `last_known_good` the newest earlier verified one not
    /// marked bad. When none is safe: [`ClusterError::NoSafeTarget`].
    pub fn resolve_safe(&self, r: RevisionRef) -> Result<SafeTarget, ClusterError> {
        let current = self.current().map_or(0, |r| r.number);
        let candidates: Vec<&Revision> = match r {
            RevisionRef::Revision(n) => {
                vec![self.find(n).ok_or(ClusterError::RevisionNotFound(n))?]
            }
            RevisionRef::Previous => {
                let earlier: Vec<&Revision> = self
                    .revisions
                    .iter()
                    .rev()
                    .filter(|r| r.number < current)
                    .collect();
                if earlier.is_empty() {
                    return Err(ClusterError::NoPrevious(self.workload.clone()));
                }
                earlier
            }
            RevisionRef::LastKnownGood => {
                let verified: Vec<&Revision> = self
                    .revisions
                    .iter()
                    .rev()
                    .filter(|r| r.number < current && r.verified)
                    .collect();
                if verified.is_empty() {
                    return Err(ClusterError::NoLastKnownGood {
                        workload: self.workload.clone(),
                        current,
                    });
                }
                verified
            }
        };
        let skipped: Vec<&Revision> = candidates
            .iter()
            .copied()
            .take_while(|r| r.rolled_back_as_bad.is_some())
            .collect();
        match candidates.get(skipped.len()) {
            Some(rev) => Ok(SafeTarget {
                revision: (*rev).clone(),
                skipped_bad: skipped.iter().map(|r| r.number).collect(),
            }),
            None => Err(ClusterError::NoSafeTarget {
                workload: self.workload.clone(),
                reason: unsafe_reason(r, &skipped),
            }),
        }
    }
}

/// Why every candidate was refused, for a human.
fn unsafe_reason(r: RevisionRef, bad: &[&Revision]) -> String {
    let each = bad
        .iter()
        .map(|r| {
            format!(
                "revision {} was rolled back as bad by {}",
                r.number,
                r.rolled_back_as_bad.as_deref().unwrap_or("rollbackd")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let rest = match r {
        RevisionRef::Revision(_) => "refusing to restore it",
        RevisionRef::Previous => "no earlier revision is left",
        RevisionRef::LastKnownGood => "no other verified revision is left",
    };
    format!("{each}; {rest}")
}

/// Reads a workload object's history from the cluster.
pub async fn history_of(
    cluster: &Cluster,
    kind: Kind,
    owner: &Value,
) -> Result<History, ClusterError> {
    let ns = owner
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let sets = cluster
        .list(Kind::ReplicaSet, ns, Some(&selector_string(owner)))
        .await?;
    Ok(History::from_objects(owner, &sets, kind))
}

/// Reads a policy workload's history.
pub async fn load(cluster: &Cluster, w: &Workload) -> Result<(Value, History), ClusterError> {
    let owner = cluster.get_workload(w).await?;
    let h = history_of(cluster, Kind::of(w), &owner).await?;
    Ok((owner, h))
}
