//! The resource table and the discovery documents built from it.

use serde_json::{Value, json};

/// One column of a custom resource's table (`additionalPrinterColumns` of its CRD version).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrinterColumn {
    /// The column's heading.
    pub name: &'static str,
    /// Its OpenAPI type: `integer`, `number`, `string`, `boolean` or `date`.
    pub kind: &'static str,
    /// Its OpenAPI format (may be empty).
    pub format: &'static str,
    /// Its description.
    pub description: &'static str,
    /// 0 for default output, more for `-o wide` only.
    pub priority: i64,
    /// The JSONPath (like `.spec.agent`) its cells come from.
    pub json_path: &'static str,
}

/// One served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Discovery categories (`kubectl get all` expands the `all` category).
    pub categories: &'static [&'static str],
    /// The kind of its lists; empty means `{kind}List`.
    pub list_kind: &'static str,
    /// Printer columns after Name (custom resources; built-in kinds have their own in `table`).
    pub columns: &'static [PrinterColumn],
    /// Whether a CustomResourceDefinition defines it (see `crds`).
    pub custom: bool,
}

impl Resource {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind of a list of these objects (`DeploymentList`).
    pub fn list_kind(&self) -> String {
        if self.list_kind.is_empty() {
            format!("{}List", self.kind)
        } else {
            self.list_kind.to_string()
        }
    }

    /// Whether `other` serves the same objects (same group and plural, any version).
    pub fn same_objects(&self, other: &Resource) -> bool {
        self.group == other.group && self.plural == other.plural
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
        categories: &[],
        list_kind: "",
        columns: &[],
        custom: false,
    }
}

/// The `all` category (`kubectl get all`).
const ALL: &[&str] = &["all"];

/// core/v1 pods.
pub static PODS: Resource = Resource {
    categories: ALL,
    ..res("", "v1", "pods", "pod", "Pod", true, &["po"], true, false)
};
/// core/v1 services.
pub static SERVICES: Resource = Resource {
    categories: ALL,
    ..res(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        true,
        false,
    )
};
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
/// core/v1 events: one set of objects with [`EVENTS_V1`] (see `events`).
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
pub static DEPLOYMENTS: Resource = Resource {
    categories: ALL,
    ..res(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        true,
        true,
    )
};
/// apps/v1 replicasets.
pub static REPLICASETS: Resource = Resource {
    categories: ALL,
    ..res(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        true,
        true,
    )
};
/// events.k8s.io/v1 events: the core/v1 [`EVENTS`] in their newer shape (stored as core
/// Events and converted on the way in and out, as the real API server does).
pub static EVENTS_V1: Resource = res(
    "events.k8s.io",
    "v1",
    "events",
    "event",
    "Event",
    true,
    &["ev"],
    false,
    false,
);
/// batch/v1 jobs.
pub static JOBS: Resource = Resource {
    categories: ALL,
    ..res("batch", "v1", "jobs", "job", "Job", true, &[], true, false)
};
/// apiextensions.k8s.io/v1 customresourcedefinitions (cluster-scoped; see `crds`).
pub static CRDS: Resource = Resource {
    categories: &["api-extensions"],
    ..res(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
        false,
    )
};
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
/// argoproj.io/v1alpha1 rollouts (built in: no CRD is needed, and a CRD of the same name
/// does not replace it).
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

/// Every built-in resource, in discovery order.
pub static RESOURCES: &[&Resource] = &[
    &PODS,
    &SERVICES,
    &CONFIGMAPS,
    &EVENTS,
    &NAMESPACES,
    &DEPLOYMENTS,
    &REPLICASETS,
    &EVENTS_V1,
    &JOBS,
    &CRDS,
    &LEASES,
    &ROLLOUTS,
];

/// The built-in groups (core excluded) in the real API server's discovery order; groups of
/// CustomResourceDefinitions follow, by name (their priority is lower).
const BUILTIN_GROUPS: &[&str] = &[
    "apps",
    "events.k8s.io",
    "batch",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
    "argoproj.io",
];

/// A built-in resource by group and plural (any version).
pub fn builtin(group: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .copied()
}

/// The order of two API versions as the API server sorts them (newest and most stable first):
/// `v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1`, then versions not shaped like these,
/// alphabetically.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    /// (major, stability: 2 GA, 1 beta, 0 alpha, minor) of a Kubernetes-like version.
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        if major == 0 {
            return None;
        }
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stability, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (0, m)
        } else {
            return None;
        };
        if minor.is_empty() || !minor.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((major, stability, minor.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => {
            // GA first, then beta, then alpha; within one, the higher major, then minor.
            sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na))
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The resources served at one moment: the built-in ones and those that
/// CustomResourceDefinitions define (`Store::catalog`). Discovery documents are built from it.
#[derive(Debug, Clone)]
pub struct Catalog {
    resources: Vec<&'static Resource>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::builtin()
    }
}

impl Catalog {
    /// The built-in resources only.
    pub fn builtin() -> Self {
        Catalog {
            resources: RESOURCES.to_vec(),
        }
    }

    /// The built-in resources and `custom` ones. A custom resource that would take the place
    /// of a built-in one (its group and plural, or its group, version and kind) is left out:
    /// the built-in one keeps serving.
    pub fn with_custom(custom: impl IntoIterator<Item = &'static Resource>) -> Self {
        let mut resources = RESOURCES.to_vec();
        for r in custom {
            let clashes = RESOURCES.iter().any(|b| {
                b.same_objects(r)
                    || (b.group == r.group && b.version == r.version && b.kind == r.kind)
            });
            let duplicate = resources
                .iter()
                .any(|x| x.same_objects(r) && x.version == r.version);
            if !clashes && !duplicate {
                resources.push(r);
            }
        }
        Catalog { resources }
    }

    /// Every served resource.
    pub fn resources(&self) -> &[&'static Resource] {
        &self.resources
    }

    /// Finds a resource by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .copied()
    }

    /// Finds a resource by apiVersion and kind.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&'static Resource> {
        self.resources
            .iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
            .copied()
    }

    /// The served groups other than core, in discovery order, each with its versions,
    /// preferred (newest, most stable) first.
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut names: Vec<&'static str> = Vec::new();
        for r in &self.resources {
            if !r.group.is_empty() && !names.contains(&r.group) {
                names.push(r.group);
            }
        }
        names.sort_by_key(|g| {
            let builtin = BUILTIN_GROUPS.iter().position(|b| b == g);
            (builtin.is_none(), builtin.unwrap_or(0), *g)
        });
        names
            .into_iter()
            .map(|g| {
                let mut versions: Vec<&'static str> = Vec::new();
                for r in self.resources.iter().filter(|r| r.group == g) {
                    if !versions.contains(&r.version) {
                        versions.push(r.version);
                    }
                }
                versions.sort_by(|a, b| compare_versions(a, b));
                (g, versions)
            })
            .collect()
    }

    /// `GET /apis` (legacy APIGroupList).
    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .iter()
            .map(|(g, vs)| group_entry(g, vs))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `GET /apis/{group}` (APIGroup).
    pub fn group(&self, name: &str) -> Option<Value> {
        self.groups()
            .iter()
            .find(|(g, _)| *g == name)
            .map(|(g, vs)| {
                let mut e = group_entry(g, vs);
                e["kind"] = json!("APIGroup");
                e["apiVersion"] = json!("v1");
                e
            })
    }

    /// `GET /api/v1` or `/apis/{group}/{version}` (APIResourceList).
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let matching: Vec<&Resource> = self
            .resources
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
                "categories": r.categories,
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

    /// Aggregated discovery for `/api` (`core == true`) or `/apis`.
    pub fn aggregated(&self, core: bool, version: &str) -> Value {
        let groups: Vec<(&str, Vec<&str>)> = if core {
            vec![("", vec!["v1"])]
        } else {
            self.groups()
        };
        let items: Vec<Value> = groups
            .iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs
                    .iter()
                    .map(|v| {
                        let resources: Vec<Value> = self
                            .resources
                            .iter()
                            .filter(|r| r.group == *g && r.version == *v)
                            .map(|r| aggregated_resource(r))
                            .collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                let mut meta = json!({"creationTimestamp": null});
                if !g.is_empty() {
                    meta["name"] = json!(g);
                }
                json!({"metadata": meta, "versions": versions})
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": format!("apidiscovery.k8s.io/{version}"),
            "metadata": {},
            "items": items,
        })
    }
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

fn group_entry(name: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = gvs.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": gvs, "preferredVersion": preferred})
}

/// The verbs of a resource: custom resources always have `deletecollection`, built-in ones
/// when namespaced.
fn verbs(r: &Resource) -> Vec<&'static str> {
    let mut v = vec![
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    if r.namespaced || r.custom {
        v.insert(1, "deletecollection");
    }
    v
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
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        out["subresources"] = json!(subs);
    }
    out
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

    #[test]
    fn versions_sort_like_the_api_server() {
        let mut vs = vec![
            "v1alpha1", "foo", "v1", "v2beta1", "v1beta2", "v10", "v1beta1", "bar",
        ];
        vs.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            vs,
            [
                "v10", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"
            ]
        );
    }

    #[test]
    fn built_in_groups_come_first_and_custom_ones_cannot_replace_them() {
        static WIDGETS: Resource = Resource {
            custom: true,
            ..res(
                "example.io",
                "v1",
                "widgets",
                "widget",
                "Widget",
                true,
                &[],
                false,
                false,
            )
        };
        static FAKE_ROLLOUTS: Resource = Resource {
            custom: true,
            ..res(
                "argoproj.io",
                "v1alpha1",
                "rollouts",
                "rollout",
                "Rollout",
                true,
                &[],
                false,
                false,
            )
        };
        let c = Catalog::with_custom([&WIDGETS, &FAKE_ROLLOUTS]);
        let groups: Vec<&str> = c.groups().iter().map(|(g, _)| *g).collect();
        assert_eq!(
            groups,
            [
                "apps",
                "events.k8s.io",
                "batch",
                "apiextensions.k8s.io",
                "coordination.k8s.io",
                "argoproj.io",
                "example.io"
            ]
        );
        assert_eq!(
            c.find("argoproj.io", "v1alpha1", "rollouts"),
            Some(&ROLLOUTS)
        );
        assert!(
            c.find("example.io", "v1", "widgets")
                .is_some_and(|r| r.custom)
        );
        let list = c.resource_list("example.io", "v1").unwrap();
        assert_eq!(list["resources"][0]["verbs"][1], "deletecollection");
    }
}
