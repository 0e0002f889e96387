//! The Kubernetes permissions rollbackd needs, derived from the calls the code makes.
//!
//! [`REQUIRED`] is what the daemon does to the agents' workloads, across their namespaces
//! (the ClusterRole in `deploy/clusterrole.yaml`); [`LEADER_ELECTION`] is the Lease in
//! rollbackd's own namespace (the Role in `deploy/role.yaml`); [`STORE`] is the Kubernetes
//! store's objects in its namespace (the Role in `deploy/store-role.yaml`), the only rules
//! with `delete`: retention deletes rollbackd's own records, never a workload's object.
//! `tests/deploy_manifests.rs` checks that the rendered manifests grant exactly these rules
//! and nothing more, and that every write verb granted is one the code makes.
//!
//! Each rule names, in `why`, the code that needs it. When a module starts calling a new
//! verb or resource, add it here and to the manifests (the test fails until both agree).

/// One RBAC rule: verbs on resources of an API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The API group (`""` is the core group).
    pub group: &'static str,
    /// Resources (and subresources such as `pods/log`).
    pub resources: &'static [&'static str],
    /// Verbs, in the order `get`, `list`, `watch`, `create`, `update`, `patch`.
    pub verbs: &'static [&'static str],
    /// Which code makes these calls.
    pub why: &'static str,
}

/// Cluster-wide rules (a ClusterRole bound by a ClusterRoleBinding): rollbackd watches and
/// rolls back workloads in every namespace its policies name.
pub const REQUIRED: &[Rule] = &[
    Rule {
        group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "events/recorder.rs: each decision, step and outcome as an Event on the workload \
              (create; a repeated one's series count is a merge patch)",
    },
    Rule {
        group: "",
        resources: &["pods"],
        verbs: &["list", "watch"],
        why: "watcher/mod.rs: pod reflector per namespace (kube signals: restarts, OOM kills, \
              crash loops, image pull backoff); verify/pods.rs: pods of the current ReplicaSet \
              held Ready; cluster/job.rs: collect_logs lists a Job's pods (job-name=…)",
    },
    Rule {
        group: "",
        resources: &["pods/log"],
        verbs: &["get"],
        why: "cluster/mod.rs Cluster::pod_logs: the logs of a failed migration Job's pods",
    },
    Rule {
        group: "",
        resources: &["configmaps"],
        verbs: &["get", "create", "patch"],
        why: "cluster/snapshot.rs: read a workload's ConfigMaps and create their snapshots \
              when a deploy is first seen; cluster/configmap.rs: restore_configmap and \
              patch_configmap (get + merge patch); cluster/backup.rs and executor/mod.rs: \
              read objects before a step",
    },
    Rule {
        group: "",
        resources: &["services"],
        verbs: &["get", "patch"],
        why: "cluster/service.rs: switch_service reads and merge-patches the Service selector \
              (blue-green); executor/mod.rs: reads it before the step",
    },
    Rule {
        group: "apps",
        resources: &["deployments"],
        verbs: &["get", "list", "watch", "patch"],
        why: "watcher/mod.rs: Deployment reflector and get of each watched workload; \
              cluster/undo.rs, image.rs, restart.rs, scale.rs: patch the Deployment; \
              cluster/rollout_status.rs, history.rs, backup.rs: get it",
    },
    Rule {
        group: "apps",
        resources: &["replicasets"],
        verbs: &["get", "list", "watch", "patch"],
        why: "watcher/mod.rs: ReplicaSet reflector (new revisions); cluster/history.rs: list a \
              workload's ReplicaSets (revision history for undo); cluster/annotate.rs \
              mark_verified and mark_rolled_back_as_bad (cluster/guard.rs, before a \
              rollback): get + merge-patch rollbackd.io/verified, rollbackd.io/rolled-back-as-bad",
    },
    Rule {
        group: "batch",
        resources: &["jobs"],
        verbs: &["get", "create"],
        why: "cluster/job.rs: create a method's Job (migration downgrade) and poll it",
    },
    Rule {
        group: "argoproj.io",
        resources: &["rollouts"],
        verbs: &["get", "list", "watch", "patch"],
        why: "watcher/mod.rs: Rollout reflector (namespaces with a Rollout workload); \
              cluster/argo.rs and undo.rs: argo_undo patches the Rollout, argo_abort \
              annotates it; image.rs, restart.rs, scale.rs on Rollout workloads",
    },
    Rule {
        group: "argoproj.io",
        resources: &["rollouts/status"],
        verbs: &["patch"],
        why: "cluster/argo.rs argo_abort: merge patch {\"status\":{\"abort\":true}} on the \
              status subresource",
    },
];

/// Rules in rollbackd's own namespace only (a Role bound by a RoleBinding): the leader
/// election Lease of `daemon/leader.rs`.
pub const LEADER_ELECTION: &[Rule] = &[Rule {
    group: "coordination.k8s.io",
    resources: &["leases"],
    verbs: &["get", "create", "update"],
    why: "daemon/leader.rs LeaderElector: get the Lease, create it when missing, and \
          replace it (resourceVersion-checked) to acquire, renew and release leadership",
}];

/// Rules in the Kubernetes store's namespace only (`[store] namespace`, a Role bound by a
/// RoleBinding): its `RollbackIncident`s and ConfigMaps (`store/kubernetes/`).
pub const STORE: &[Rule] = &[
    Rule {
        group: "rollbackd.io",
        resources: &["rollbackincidents"],
        verbs: &["get", "list", "watch", "create", "delete"],
        why: "store/kubernetes/api.rs and informer.rs: read an incident (get), keep a \
              watched copy of them (list, watch) or, without it, list them (a metadata-only \
              list, then get or list what changed), open one (create, its first status in \
              an annotation), retention deletes a finished one (resourceVersion precondition)",
    },
    Rule {
        group: "rollbackd.io",
        resources: &["rollbackincidents/status"],
        verbs: &["update"],
        why: "store/kubernetes/incidents.rs: every transition, step, notification, thread \
              and audit entry is a replace of the status at the resourceVersion read",
    },
    Rule {
        group: "",
        resources: &["configmaps"],
        verbs: &["get", "list", "create", "update", "delete"],
        why: "store/kubernetes/configmaps.rs and log.rs: the agents' registers (get, create, \
              replace at a resourceVersion), backups (create, list, deleted with their \
              incident), pauses (create, list, resume deletes), the alert and audit logs \
              (segments created and replaced; retention rewrites or deletes old ones)",
    },
];

/// Every rule, cluster-wide first.
pub fn all() -> impl Iterator<Item = &'static Rule> {
    REQUIRED
        .iter()
        .chain(LEADER_ELECTION.iter())
        .chain(STORE.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_wildcards_no_duplicates_and_delete_only_of_rollbackds_own_records() {
        for rules in [REQUIRED, LEADER_ELECTION, STORE] {
            let mut seen = std::collections::BTreeSet::new();
            for r in rules {
                assert!(!r.group.contains('*'));
                for res in r.resources {
                    assert!(!res.contains('*'), "{res}");
                    assert!(seen.insert((r.group, *res)), "{}/{res} twice", r.group);
                }
                for v in r.verbs {
                    assert!(
                        !matches!(
                            *v,
                            "*" | "deletecollection" | "escalate" | "bind" | "impersonate"
                        ),
                        "{v}"
                    );
                    // a workload's objects are never deleted: only the store's own, in its
                    // namespace
                    assert!(
                        *v != "delete" || std::ptr::eq(rules, STORE),
                        "delete on {:?}",
                        r.resources
                    );
                }
                assert!(!r.why.is_empty());
            }
        }
    }
}
