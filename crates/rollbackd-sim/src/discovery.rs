//! The resource table and the discovery documents built from it.

use serde_json::{Value, json};

/// One served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group (`""` for core).
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Plural resource name used in URLs.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Object kind.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Whether a `/status` subresource exists.
    pub has_status: bool,
    /// Whether a `/scale` subresource exists.
    pub has_scale: bool,
}

impl Resource {
    /// The discovery categories (`kubectl get all` expands the `all` category).
    pub fn categories(&self) -> &'static [&'static str] {
        match self.kind {
            "Pod" | "Service" | "Deployment" | "ReplicaSet" | "Job" => &["all"],
            _ => &[],
        }
    }

    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Table constructor; one row per resource reads better than nine named fields.
#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    has_status: bool,
    has_scale: bool,
) -> Resource {
    Resource {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        has_status,
        has_scale,
    }
}

/// core/v1 pods.
pub static PODS: Resource = res("", "v1", "pods", "pod", "Pod", true, &["po"], true, false);
/// core/v1 services.
pub static SERVICES: Resource = res(
    "",
    "v1",
    "services",
    "service",
    "Service",
    true,
    &["svc"],
    true,
    false,
);
/// core/v1 configmaps.
pub static CONFIGMAPS: Resource = res(
    "",
    "v1",
    "configmaps",
    "configmap",
    "ConfigMap",
    true,
    &["cm"],
    false,
    false,
);
/// core/v1 events.
pub static EVENTS: Resource = res(
    "",
    "v1",
    "events",
    "event",
    "Event",
    true,
    &["ev"],
    false,
    false,
);
/// core/v1 namespaces.
pub static NAMESPACES: Resource = res(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    false,
    &["ns"],
    true,
    false,
);
/// apps/v1 deployments.
pub static DEPLOYMENTS: Resource = res(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    true,
    &["deploy"],
    true,
    true,
);
/// apps/v1 replicasets.
pub static REPLICASETS: Resource = res(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    true,
    &["rs"],
    true,
    true,
);
/// batch/v1 jobs.
pub static JOBS: Resource = res("batch", "v1", "jobs", "job", "Job", true, &[], true, false);
/// coordination.k8s.io/v1 leases.
pub static LEASES: Resource = res(
    "coordination.k8s.io",
    "v1",
    "leases",
    "lease",
    "Lease",
    true,
    &[],
    false,
    false,
);
/// argoproj.io/v1alpha1 rollouts.
pub static ROLLOUTS: Resource = res(
    "argoproj.io",
    "v1alpha1",
    "rollouts",
    "rollout",
    "Rollout",
    true,
    &["ro"],
    true,
    true,
);

/// Every resource the simulator serves.
pub static RESOURCES: &[&Resource] = &[
    &PODS,
    &SERVICES,
    &CONFIGMAPS,
    &EVENTS,
    &NAMESPACES,
    &DEPLOYMENTS,
    &REPLICASETS,
    &JOBS,
    &LEASES,
    &ROLLOUTS,
];

/// The groups served, in discovery order (excluding core).
pub const GROUPS: &[(&str, &str)] = &[
    ("apps", "v1"),
    ("batch", "v1"),
    ("coordination.k8s.io", "v1"),
    ("argoproj.io", "v1alpha1"),
];

/// Finds a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
        .copied()
}

/// Finds a resource by apiVersion and kind.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
        .copied()
}

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.1",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `GET /api` (legacy APIVersions).
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
    })
}

fn group_entry(name: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/{version}"), "version": version});
    json!({"name": name, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis` (legacy APIGroupList).
pub fn group_list() -> Value {
    let groups: Vec<Value> = GROUPS.iter().map(|(g, v)| group_entry(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}` (APIGroup).
pub fn group(name: &str) -> Option<Value> {
    GROUPS.iter().find(|(g, _)| *g == name).map(|(g, v)| {
        let mut e = group_entry(g, v);
        e["kind"] = json!("APIGroup");
        e["apiVersion"] = json!("v1");
        e
    })
}

fn verbs(r: &Resource) -> Vec<&'static str> {
    let mut v = vec![
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    if r.namespaced {
        v.insert(1, "deletecollection");
    }
    v
}

/// `GET /api/v1` or `/apis/{group}/{version}` (APIResourceList).
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let matching: Vec<&Resource> = RESOURCES
        .iter()
        .copied()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if matching.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in &matching {
        out.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
            "shortNames": r.short_names,
            "categories": r.categories(),
        }));
        if r.has_status {
            out.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.has_scale {
            out.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.kind == "Pod" {
            out.push(json!({
                "name": "pods/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

/// The aggregated discovery media type versions kubectl may ask for, newest first.
pub const AGGREGATED_VERSIONS: &[&str] = &["v2", "v2beta1"];

/// The aggregated discovery version the `Accept` header asks for, honouring its order
/// (the first acceptable media range wins; a plain JSON range first means legacy).
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    for range in accept.split(',') {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        let base = params.first().copied().unwrap_or_default();
        let has = |p: &str| params.iter().skip(1).any(|x| *x == p);
        if base == "application/json"
            && has("g=apidiscovery.k8s.io")
            && has("as=APIGroupDiscoveryList")
        {
            if let Some(v) = AGGREGATED_VERSIONS.iter().find(|v| has(&format!("v={v}"))) {
                return Some(v);
            }
            continue;
        }
        if base == "application/json" || base == "*/*" || base == "application/*" {
            return None;
        }
    }
    None
}

/// The Content-Type of an aggregated discovery answer in `version`.
pub fn aggregated_content_type(version: &str) -> &'static str {
    if version == "v2" {
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    } else {
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    }
}

fn aggregated_resource(r: &Resource) -> Value {
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut subs = Vec::new();
    if r.has_status {
        subs.push(json!({"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}));
    }
    if r.has_scale {
        subs.push(json!({"subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": ["get", "patch", "update"]}));
    }
    if r.kind == "Pod" {
        subs.push(json!({"subresource": "log", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get"]}));
    }
    let mut out = json!({
        "resource": r.plural,
        "responseKind": kind,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": verbs(r),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories().is_empty() {
        out["categories"] = json!(r.categories());
    }
    if !subs.is_empty() {
        out["subresources"] = json!(subs);
    }
    out
}

/// Aggregated discovery for `/api` (`core == true`) or `/apis`.
pub fn aggregated(core: bool, version: &str) -> Value {
    let groups: Vec<(&str, &str)> = if core {
        vec![("", "v1")]
    } else {
        GROUPS.to_vec()
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, v)| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == *g && r.version == *v)
                .map(|r| aggregated_resource(r))
                .collect();
            let mut meta = json!({"creationTimestamp": null});
            if !g.is_empty() {
                meta["name"] = json!(g);
            }
            json!({"metadata": meta, "versions": [{"version": v, "resources": resources, "freshness": "Current"}]})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_only_when_asked_for_first() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(kubectl), Some("v2"));
        assert_eq!(
            aggregated_version(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            ),
            Some("v2beta1")
        );
        assert_eq!(aggregated_version("application/json"), None);
        assert_eq!(aggregated_version(""), None);
        assert_eq!(
            aggregated_version(
                "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json"
            ),
            None
        );
    }
}
