//! `deploy/`: the kustomization renders with exactly `kubectl kustomize deploy/`, and what it
//! renders agrees with the code: the ClusterRole and Roles grant exactly
//! `cluster::rbac::REQUIRED`, `LEADER_ELECTION` and `STORE`, the CRD of the Kubernetes store
//! is installed and the configuration uses that store (no volume holds state), the
//! Deployment runs hardened with two replicas and the probes the API serves, every file
//! `deploy/rollbackd.toml` names is mounted, the policies shipped are the repository's, the PrometheusRule speaks each
//! policy's vocabulary (and `promtool` accepts it), the Alertmanager snippet routes to
//! rollbackd (`amtool`), and the dashboard only names metrics rollbackd exports.
//!
//! YAML is turned into JSON offline by `kubectl patch --local -o json` (kubectl needs no
//! server for that); no YAML crate is needed.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rollbackd::cluster::rbac::{LEADER_ELECTION, REQUIRED, Rule, STORE};
use rollbackd_core::policy::{SignalSource, load_all};
use serde_json::Value;

const NS: &str = "rollbackd";
const AGENTS: [&str; 5] = ["GL-001", "GL-002", "GL-006", "GL-008", "GL-009"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize deploy/`, exactly, then each document as JSON.
fn rendered() -> &'static Vec<Value> {
    static RENDERED: OnceLock<Vec<Value>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let out = Command::new("kubectl")
            .args(["kustomize", "deploy/"])
            .current_dir(root())
            .output()
            .expect("kubectl on the PATH");
        assert!(
            out.status.success(),
            "kubectl kustomize deploy/ failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8(out.stdout).unwrap();
        let docs = yaml.split("\n---\n").count();
        let objects = yaml_to_json(&yaml);
        assert_eq!(objects.len(), docs, "every rendered document converted");
        objects
    })
}

/// YAML documents (with apiVersion and kind) to JSON values, offline.
fn yaml_to_json(yaml: &str) -> Vec<Value> {
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new("kubectl")
        .args([
            "patch", "--local", "-f", "-", "--type", "merge", "-p", "{}", "-o", "json",
        ])
        .env("KUBECONFIG", kubeconfig.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl patch --local: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn all(kind: &str) -> Vec<&'static Value> {
    rendered().iter().filter(|o| o["kind"] == kind).collect()
}

fn one(kind: &str) -> &'static Value {
    let v = all(kind);
    assert_eq!(v.len(), 1, "exactly one {kind}");
    v[0]
}

fn named(kind: &str, prefix: &str) -> &'static Value {
    let v: Vec<_> = all(kind)
        .into_iter()
        .filter(|o| o["metadata"]["name"].as_str().unwrap().starts_with(prefix))
        .collect();
    assert_eq!(v.len(), 1, "exactly one {kind} {prefix}*");
    v[0]
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

/// (group, resource) → verbs.
type Grants = BTreeMap<(String, String), BTreeSet<String>>;

fn grants_of_rules(rules: &[Rule]) -> Grants {
    let mut g = Grants::new();
    for r in rules {
        for res in r.resources {
            g.entry((r.group.to_string(), res.to_string()))
                .or_default()
                .extend(r.verbs.iter().map(|v| v.to_string()));
        }
    }
    g
}

fn grants_of_manifest(role: &Value) -> Grants {
    let mut g = Grants::new();
    for rule in arr(&role["rules"]) {
        assert!(rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none());
        for group in arr(&rule["apiGroups"]) {
            for res in arr(&rule["resources"]) {
                let verbs: Vec<String> = arr(&rule["verbs"]).iter().map(|v| s(v).into()).collect();
                for x in std::iter::once(s(group))
                    .chain(std::iter::once(s(res)))
                    .chain(verbs.iter().map(String::as_str))
                {
                    assert!(!x.contains('*'), "wildcard in {rule}");
                }
                g.entry((s(group).into(), s(res).into()))
                    .or_default()
                    .extend(verbs);
            }
        }
    }
    g
}

fn container() -> &'static Value {
    let d = one("Deployment");
    let cs = arr(&d["spec"]["template"]["spec"]["containers"]);
    assert_eq!(cs.len(), 1);
    &cs[0]
}

fn pod_spec() -> &'static Value {
    &one("Deployment")["spec"]["template"]["spec"]
}

/// A file in the pod → (`configMap` or `secret`, its name, its key).
type MountedFiles = BTreeMap<String, (String, String, String)>;

/// Files the pod sees, as (mount path + projected/item path) → (volume kind, source name,
/// key); and writable directories.
fn mounted_files() -> (MountedFiles, BTreeSet<String>) {
    let volumes: BTreeMap<&str, &Value> = arr(&pod_spec()["volumes"])
        .iter()
        .map(|v| (s(&v["name"]), v))
        .collect();
    let mut files = BTreeMap::new();
    let mut writable = BTreeSet::new();
    for m in arr(&container()["volumeMounts"]) {
        let at = s(&m["mountPath"]).trim_end_matches('/').to_string();
        let v = volumes[s(&m["name"])];
        if v.get("emptyDir").is_some() || v.get("persistentVolumeClaim").is_some() {
            assert_ne!(m["readOnly"], true);
            writable.insert(at.clone());
            continue;
        }
        let sources: Vec<&Value> = match v.get("projected") {
            Some(p) => arr(&p["sources"]).iter().collect(),
            None => vec![v],
        };
        for src in sources {
            for (kind, name_key) in [("configMap", "name"), ("secret", "name")] {
                let Some(c) = src.get(kind) else { continue };
                let name = s(&c[name_key]).to_string();
                assert_ne!(c["optional"], true, "{kind} {name} must not be optional");
                for item in arr(&c["items"]) {
                    files.insert(
                        format!("{at}/{}", s(&item["path"])),
                        (kind.to_string(), name.clone(), s(&item["key"]).to_string()),
                    );
                }
            }
        }
    }
    (files, writable)
}

fn config() -> toml::Table {
    std::fs::read_to_string(root().join("deploy/rollbackd.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

/// Every `*_file` value anywhere in the configuration.
fn file_keys(v: &toml::Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                if k.ends_with("_file")
                    && let Some(p) = v.as_str()
                {
                    out.push((format!("{path}.{k}"), p.to_string()));
                }
                file_keys(v, &format!("{path}.{k}"), out);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                file_keys(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn renders_the_expected_objects_in_the_rollbackd_namespace() {
    let kinds: BTreeMap<&str, usize> = rendered().iter().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(s(&o["kind"])).or_default() += 1;
        m
    });
    let expected: BTreeMap<&str, usize> = [
        ("Namespace", 1),
        ("ServiceAccount", 1),
        ("ClusterRole", 1),
        ("ClusterRoleBinding", 1),
        ("CustomResourceDefinition", 1),
        ("Role", 2),
        ("RoleBinding", 2),
        ("ConfigMap", 3),
        ("Deployment", 1),
        ("Service", 1),
        ("PodDisruptionBudget", 1),
        ("PrometheusRule", 1),
        ("ServiceMonitor", 1),
    ]
    .into();
    assert_eq!(kinds, expected);
    assert_eq!(one("Namespace")["metadata"]["name"], NS);
    for o in rendered() {
        let cluster_scoped = matches!(
            s(&o["kind"]),
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        );
        let ns = o["metadata"]["namespace"].as_str();
        if cluster_scoped {
            assert_eq!(ns, None, "{}", o["kind"]);
        } else {
            assert_eq!(ns, Some(NS), "{} {}", o["kind"], o["metadata"]["name"]);
        }
        // No Secret values are ever rendered.
        assert_ne!(o["kind"], "Secret");
    }
}

#[test]
fn cluster_role_grants_exactly_the_required_rules() {
    let cr = one("ClusterRole");
    assert_eq!(
        grants_of_manifest(cr),
        grants_of_rules(REQUIRED),
        "deploy/clusterrole.yaml vs cluster::rbac::REQUIRED"
    );
    let crb = one("ClusterRoleBinding");
    assert_eq!(crb["roleRef"]["kind"], "ClusterRole");
    assert_eq!(crb["roleRef"]["name"], cr["metadata"]["name"]);
    let subjects = arr(&crb["subjects"]);
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(
        subjects[0]["name"],
        one("ServiceAccount")["metadata"]["name"]
    );
    assert_eq!(subjects[0]["namespace"], NS);
}

#[test]
fn role_grants_exactly_the_lease_rules_in_its_namespace() {
    let role = named("Role", "rollbackd-leader-election");
    assert_eq!(grants_of_manifest(role), grants_of_rules(LEADER_ELECTION));
    let rb = named("RoleBinding", "rollbackd-leader-election");
    assert_eq!(rb["roleRef"]["kind"], "Role");
    assert_eq!(rb["roleRef"]["name"], role["metadata"]["name"]);
    let subjects = arr(&rb["subjects"]);
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        subjects[0]["name"],
        one("ServiceAccount")["metadata"]["name"]
    );
    assert_eq!(
        pod_spec()["serviceAccountName"],
        one("ServiceAccount")["metadata"]["name"]
    );
}

/// The configuration keeps the state on the Kubernetes API, in a namespace where the store's
/// Role grants exactly `cluster::rbac::STORE`, and the CRD it needs is installed.
#[test]
fn the_kubernetes_store_has_its_crd_and_exactly_its_rules_in_its_namespace() {
    let cfg = config();
    assert_eq!(cfg["store"]["backend"].as_str(), Some("kubernetes"));
    let namespace = cfg["store"]["namespace"].as_str().unwrap();
    let role = named("Role", "rollbackd-store");
    assert_eq!(grants_of_manifest(role), grants_of_rules(STORE));
    assert_eq!(role["metadata"]["namespace"], namespace);
    let rb = named("RoleBinding", "rollbackd-store");
    assert_eq!(rb["metadata"]["namespace"], namespace);
    assert_eq!(rb["roleRef"]["kind"], "Role");
    assert_eq!(rb["roleRef"]["name"], role["metadata"]["name"]);
    let subjects = arr(&rb["subjects"]);
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        subjects[0]["name"],
        one("ServiceAccount")["metadata"]["name"]
    );
    let crd = one("CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "rollbackincidents.rollbackd.io");
    assert_eq!(crd["spec"]["group"], rollbackd::store::kubernetes::GROUP);
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(
        crd["spec"]["names"]["kind"],
        rollbackd::store::kubernetes::KIND
    );
    assert_eq!(
        crd["spec"]["names"]["plural"],
        rollbackd::store::kubernetes::PLURAL
    );
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["rbi"])
    );
    assert_eq!(
        crd["spec"]["names"]["categories"],
        serde_json::json!(["rollbackd"])
    );
    let versions = arr(&crd["spec"]["versions"]);
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!(v["name"], rollbackd::store::kubernetes::VERSION);
    assert_eq!(
        (v["served"].as_bool(), v["storage"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(v["subresources"]["status"].is_object());
    let columns: Vec<(&str, &str, &str)> = arr(&v["additionalPrinterColumns"])
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|c| (s(&c["name"]), s(&c["type"]), s(&c["jsonPath"])))
        .collect();
    assert_eq!(
        columns,
        [
            ("Agent", "string", ".spec.agent"),
            ("State", "string", ".status.state"),
            ("Severity", "string", ".spec.severity"),
            ("Row", "string", ".spec.row"),
            ("Revision", "integer", ".spec.revision"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ]
    );
    let schema = &v["schema"]["openAPIV3Schema"];
    assert_eq!(schema["type"], "object");
    for part in ["spec", "status"] {
        assert_eq!(schema["properties"][part]["type"], "object", "{part}");
    }
    // the open shapes keep their unknown fields (a structural schema prunes the rest)
    for open in [
        &schema["properties"]["spec"]["properties"]["decision"],
        &schema["properties"]["status"]["properties"]["steps"]["items"]["properties"]["detail"],
        &schema["properties"]["status"]["properties"]["notifications"]["items"]["properties"]["message"],
    ] {
        assert_eq!(open["x-kubernetes-preserve-unknown-fields"], true, "{open}");
    }
}

#[test]
fn deployment_is_two_hardened_replicas_with_probes_and_limits() {
    let d = one("Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    let c = container();
    let args: Vec<&str> = arr(&c["args"]).iter().map(s).collect();
    assert_eq!(args, ["run", "--config", "/etc/rollbackd/rollbackd.toml"]);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let ports = arr(&c["ports"]);
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["containerPort"], 8080);
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], ports[0]["name"], "{probe}");
    }
    // Resources: requests and limits for CPU and memory.
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][k][r].is_string(), "resources.{k}.{r}");
        }
    }
    // Security: pod and container.
    let psc = &pod_spec()["securityContext"];
    let sc = &c["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(sc["runAsNonRoot"], true);
    assert!(psc["runAsUser"].as_i64().unwrap() > 0);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_ne!(sc["privileged"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_ne!(pod_spec()["hostNetwork"], true);
    // Leader identity and address from the downward API.
    let env: BTreeMap<&str, &Value> = arr(&c["env"])
        .iter()
        .map(|e| (s(&e["name"]), &e["valueFrom"]["fieldRef"]["fieldPath"]))
        .collect();
    assert_eq!(env["POD_NAME"], "metadata.name");
    assert_eq!(env["POD_NAMESPACE"], "metadata.namespace");
    // The leader's API URL on the Lease, for the standby to forward writes to.
    assert_eq!(env["POD_IP"], "status.podIP");
    // The Service and the PodDisruptionBudget select the pods.
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    let selects = |sel: &Value| {
        sel.as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &labels[k] == v)
    };
    let svc = one("Service");
    assert!(selects(&svc["spec"]["selector"]));
    assert!(selects(
        &one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    ));
    assert!(selects(&d["spec"]["selector"]["matchLabels"]));
    let sp = arr(&svc["spec"]["ports"]);
    assert_eq!(sp.len(), 1);
    assert_eq!(sp[0]["port"], 8080);
    assert_eq!(sp[0]["targetPort"], ports[0]["name"]);
}

#[test]
fn every_configured_path_is_mounted_and_the_secrets_are_referenced() {
    let (files, writable) = mounted_files();
    let cfg = config();
    // The configuration file itself, from the generated ConfigMap, byte for byte.
    let (kind, cm, key) = &files["/etc/rollbackd/rollbackd.toml"];
    assert_eq!(
        (kind.as_str(), key.as_str()),
        ("configMap", "rollbackd.toml")
    );
    assert_eq!(
        named("ConfigMap", "rollbackd-config-")["metadata"]["name"],
        cm.as_str()
    );
    assert_eq!(
        s(&named("ConfigMap", "rollbackd-config-")["data"]["rollbackd.toml"]),
        std::fs::read_to_string(root().join("deploy/rollbackd.toml")).unwrap()
    );
    // The state is on the Kubernetes API: the only writable directory is /tmp.
    assert_eq!(cfg["store"]["backend"].as_str(), Some("kubernetes"));
    assert_eq!(
        writable,
        BTreeSet::from(["/tmp".to_string()]),
        "no volume holds state"
    );
    // The API listens where the Service sends traffic.
    assert!(cfg["server"]["listen"].as_str().unwrap().ends_with(":8080"));
    // Every *_file of the configuration is a mounted Secret key, all in one place; and
    // these Secrets are referenced, never rendered.
    let mut keys = Vec::new();
    file_keys(&toml::Value::Table(cfg.clone()), "", &mut keys);
    assert!(keys.len() >= 5, "{keys:?}");
    let mut secrets = BTreeSet::new();
    for (k, path) in &keys {
        let Some((kind, name, key)) = files.get(path) else {
            panic!("{k} = {path} is not mounted; mounted: {:?}", files.keys());
        };
        assert_eq!(kind, "secret", "{k}");
        secrets.insert((name.clone(), key.clone()));
    }
    let expected: BTreeSet<(String, String)> = [
        ("rollbackd-alertmanager", "token"),
        ("rollbackd-api-tokens", "dashboard-token"),
        ("rollbackd-api-tokens", "oncall-token"),
        ("rollbackd-slack", "signing-secret"),
        ("rollbackd-slack", "token"),
        ("rollbackd-statuspage", "api-key"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(secrets, expected);
    let readme = std::fs::read_to_string(root().join("deploy/README.md")).unwrap();
    for (name, key) in &expected {
        assert!(
            readme.contains(name) && readme.contains(&format!("--from-file={key}=")),
            "deploy/README.md explains how to create {name} ({key})"
        );
    }
}

#[test]
fn policies_shipped_are_the_repositorys_and_all_mounted() {
    let policy_dir = cfg_policy_dir();
    let (files, _) = mounted_files();
    let cm = named("ConfigMap", "rollbackd-policies-");
    let data = cm["data"].as_object().unwrap();
    let mut originals = BTreeMap::new();
    for e in std::fs::read_dir(root().join("policies")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            originals.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    assert_eq!(originals.len(), 5);
    let shipped: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| (k.clone(), s(v).to_string()))
        .collect();
    assert!(
        shipped == originals,
        "deploy/policies/ differs from policies/: run `cp policies/*.toml deploy/policies/`"
    );
    for name in originals.keys() {
        let (kind, cm_name, key) = &files[&format!("{policy_dir}/{name}")];
        assert_eq!(kind, "configMap");
        assert_eq!(cm_name.as_str(), s(&cm["metadata"]["name"]));
        assert_eq!(key, name);
    }
    // Nothing else lands in the policy directory.
    let in_dir = files
        .keys()
        .filter(|f| f.starts_with(&format!("{policy_dir}/")))
        .count();
    assert_eq!(in_dir, originals.len());
}

fn cfg_policy_dir() -> String {
    let cfg = config();
    let paths = cfg["policies"]["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 1);
    paths[0].as_str().unwrap().trim_end_matches('/').to_string()
}

#[test]
fn prometheus_rule_names_every_agent_with_its_policys_conditions() {
    let pr = one("PrometheusRule");
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    let policies = load_all(&[root().join("policies")]).unwrap();
    let conditions: BTreeMap<String, BTreeSet<String>> = policies
        .iter()
        .map(|p| {
            let c = p
                .signals
                .values()
                .filter_map(|sig| match &sig.source {
                    SignalSource::Alert { labels } => labels.get("condition").cloned(),
                    _ => None,
                })
                .collect();
            (p.agent.id.clone(), c)
        })
        .collect();
    let mut agents = BTreeSet::new();
    for g in arr(&pr["spec"]["groups"]) {
        for r in arr(&g["rules"]) {
            let labels = &r["labels"];
            let Some(agent) = labels["agent"].as_str() else {
                assert!(
                    labels.get("condition").is_none(),
                    "{}: condition without agent",
                    r["alert"]
                );
                continue;
            };
            if !agent.starts_with("GL-") {
                continue;
            }
            let condition = s(&labels["condition"]);
            let known = &conditions[agent];
            assert!(
                known.contains(condition),
                "{}: {agent}'s policy has no alert signal for condition {condition} (has {known:?})",
                r["alert"]
            );
            agents.insert(agent.to_string());
        }
    }
    let want: BTreeSet<String> = AGENTS.iter().map(|a| a.to_string()).collect();
    assert_eq!(agents, want);
    assert_eq!(
        conditions.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "the five policies"
    );
    // promtool accepts the groups (JSON is YAML).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, serde_json::to_string(&pr["spec"]).unwrap()).unwrap();
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool (Debian package prometheus; tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alertmanager_receiver_routes_agent_alerts_to_rollbackd_with_a_bearer_file() {
    let file = root().join("deploy/monitoring/alertmanager-receiver.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let amtool = |args: &[&str]| {
        let out = Command::new("amtool")
            .args(args)
            .output()
            .expect("amtool (Debian package prometheus-alertmanager; tests/run.sh installs it)");
        assert!(
            out.status.success(),
            "amtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let f = file.to_str().unwrap();
    amtool(&["check-config", f]);
    let config_flag = format!("--config.file={f}");
    for agent in AGENTS {
        let to = amtool(&[
            "config",
            "routes",
            "test",
            &config_flag,
            &format!("agent={agent}"),
            "condition=service_outage",
        ]);
        assert_eq!(to.trim(), "rollbackd", "{agent}");
    }
    // rollbackd's own alerts (no condition) and other teams' alerts are not sent to it.
    for labels in [
        vec!["alertname=RollbackdRollbackFailed", "agent=GL-002"],
        vec!["alertname=Other", "condition=service_outage"],
    ] {
        let mut args = vec!["config", "routes", "test", &config_flag];
        args.extend(labels.iter().copied());
        assert!(!amtool(&args).contains("rollbackd"), "{labels:?}");
    }
    // The receiver: resolved notifications, bearer token from the Secret rollbackd reads.
    for needle in [
        "send_resolved: true",
        "url: http://rollbackd.rollbackd.svc:8080/api/v1/alerts",
        "type: Bearer",
        "credentials_file: /etc/alertmanager/secrets/rollbackd-alertmanager/token",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    assert!(!text.contains("credentials:"), "no inline credentials");
}

#[test]
fn dashboard_shows_rollbackds_own_metrics_and_only_those() {
    let cm = named("ConfigMap", "rollbackd-grafana-dashboard-");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let text = s(&cm["data"]["grafana-dashboard.json"]);
    let dash: Value = serde_json::from_str(text).unwrap();
    let exprs: Vec<&str> = arr(&dash["panels"])
        .iter()
        .flat_map(|p| arr(&p["targets"]).iter().map(|t| s(&t["expr"])))
        .collect();
    let families: BTreeSet<String> = rollbackd::metrics::Metrics::new()
        .names()
        .map(String::from)
        .collect();
    let re = regex::Regex::new(r"rollbackd_[a-z_]+").unwrap();
    let mut used = BTreeSet::new();
    for e in &exprs {
        for m in re.find_iter(e) {
            let name = m.as_str();
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|sfx| name.strip_suffix(sfx).filter(|f| families.contains(*f)))
                .unwrap_or(name);
            assert!(
                families.contains(family),
                "{name} is not a rollbackd metric"
            );
            used.insert(family.to_string());
        }
    }
    for f in [
        "rollbackd_decisions_total",
        "rollbackd_rollbacks_total",
        "rollbackd_step_duration_seconds",
        "rollbackd_webhook_requests_total",
        "rollbackd_evaluation_duration_seconds",
        "rollbackd_outbox",
    ] {
        assert!(used.contains(f), "dashboard lacks {f}");
    }
    // Unique panel ids.
    let ids: BTreeSet<i64> = arr(&dash["panels"])
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), arr(&dash["panels"]).len());
}

#[test]
fn dockerfile_is_multi_stage_and_runs_as_the_deployments_user() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "builder + runtime");
    assert!(froms[0].starts_with("FROM rust:") && froms[0].ends_with(" AS build"));
    // The builder is at least the workspace's rust-version.
    let cargo: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let msrv = cargo["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap();
    let tag = froms[0]
        .trim_start_matches("FROM rust:")
        .split('-')
        .next()
        .unwrap();
    let v = |s: &str| -> Vec<u32> { s.split('.').map(|x| x.parse().unwrap()).collect() };
    assert!(v(tag) >= v(msrv), "rust:{tag} < rust-version {msrv}");
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .unwrap()
        .trim_start_matches("USER ");
    let uid: i64 = user.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0);
    assert_eq!(
        Some(uid),
        pod_spec()["securityContext"]["runAsUser"].as_i64()
    );
    assert!(text.contains(r#"ENTRYPOINT ["/usr/local/bin/rollbackd"]"#));
    // The sources the build embeds (include_str!) are copied into the builder.
    for p in [
        "COPY src ",
        "COPY crates ",
        "COPY policies ",
        "COPY tests/traces ",
    ] {
        assert!(text.contains(p), "{p}");
    }
    // Every workspace member's manifest is in the dependency-caching stage, or
    // `cargo build --locked` there fails.
    let members = cargo["workspace"]["members"].as_array().unwrap();
    for member in members.iter().map(|m| m.as_str().unwrap()) {
        if member != "." {
            let copy = format!("COPY {member}/Cargo.toml {member}/");
            assert!(text.contains(&copy), "{copy}");
            assert!(text.contains(&format!("{member}/src/lib.rs")), "{member}");
        }
    }
    // The image tag the Deployment runs is the one the Dockerfile documents.
    let image = s(&container()["image"]);
    assert!(text.contains(&format!("-t {image} ")), "{image}");
}

mod cluster_support;

/// (group, resource[/subresource], verb) of a mutating request the simulator recorded.
fn grant_of_request(method: &str, path: &str) -> (String, String, String) {
    let verb = match method {
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        other => panic!("unexpected method {other}"),
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/v1/namespaces/NS/RES[/NAME[/SUB]] or /apis/GROUP/VERSION/namespaces/NS/RES[...]
    let (group, rest) = match parts.as_slice() {
        ["api", _v, rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => panic!("unexpected path {path}"),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        _ => panic!("cluster-scoped request {path}"),
    };
    let resource = match rest {
        [res, _name, sub] => format!("{res}/{sub}"),
        [res, ..] => res.to_string(),
        [] => panic!("{path}"),
    };
    (group.to_string(), resource, verb.to_string())
}

/// Drives every mutating step kind of `rollbackd::cluster`, the leader elector and the
/// Kubernetes store against the simulator, then checks each recorded write against the RBAC
/// rules — and that every write verb the rules grant was used (nothing granted "just in
/// case").
#[tokio::test]
async fn rbac_rules_cover_every_write_the_code_makes_and_no_more() {
    use std::collections::BTreeMap as Map;

    use cluster_support::{
        NS as SIM_NS, at_revision, client_for, deploy_history, eventually, meta, start, workload,
    };
    use kube::api::Patch;
    use rollbackd::cluster::annotate::mark_verified;
    use rollbackd::cluster::{Kind, argo, configmap, image, job, restart, scale, service};
    use rollbackd::cluster::{history, snapshot, undo};
    use rollbackd::daemon::leader::LeaderElector;
    use rollbackd_core::policy::{ImageRef, RevisionRef, WorkloadKind, WorkloadRole};
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 1).await;
    let mut w = workload("web", "web", WorkloadRole::Primary);
    w.configmaps = vec!["cfg".into()];
    sim.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": SIM_NS}, "data": {"mode": "safe"}}))
        .unwrap();
    sim.create(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": SIM_NS},
        "spec": {"selector": {"app": "web", "color": "blue"}, "ports": [{"port": 80}]}}))
        .unwrap();
    let m = meta("INC-RBAC", "step");
    snapshot::snapshot_configmaps(&cluster, &w, 2)
        .await
        .unwrap();
    undo::undo(&cluster, &w, RevisionRef::Previous, &m)
        .await
        .unwrap();
    at_revision(&cluster, "web", 3).await;
    image::set_image(&cluster, &w, None, &ImageRef::Literal("web:3".into()), &m)
        .await
        .unwrap();
    restart::restart(&cluster, &w, &m).await.unwrap();
    scale::scale(&cluster, &w, Some(2), &m).await.unwrap();
    let sel: Map<String, String> = [("color".to_string(), "green".to_string())].into();
    service::switch_service(&cluster, SIM_NS, "web", &sel, &[], &m)
        .await
        .unwrap();
    let data: Map<String, String> = [("mode".to_string(), "fast".to_string())].into();
    configmap::patch_configmap(&cluster, SIM_NS, "cfg", &data, &m)
        .await
        .unwrap();
    configmap::restore_configmap(&cluster, SIM_NS, "cfg", 2, &m)
        .await
        .unwrap();
    let (_, h) = history::load(&cluster, &w).await.unwrap();
    let rs = h.current().unwrap().replicaset.clone();
    mark_verified(&cluster, SIM_NS, &rs).await.unwrap();
    job::run_job(
        &cluster,
        SIM_NS,
        "migrate-down",
        "migrate:1",
        &["down".into()],
        Duration::from_secs(10),
        &CancellationToken::new(),
        &m,
    )
    .await
    .unwrap();
    // An Argo Rollout: abort (status subresource) and undo.
    sim.create(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "shop", "namespace": SIM_NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shop"}},
                 "template": {"metadata": {"labels": {"app": "shop"}},
                              "spec": {"containers": [{"name": "app", "image": "shop:1"}]}}}
    }))
    .unwrap();
    let rev = |v: &Value| {
        v.pointer("/metadata/annotations/rollout.argoproj.io~1revision")
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_string()
    };
    eventually("rollout at 1", 10, || async {
        rev(&cluster.get(Kind::Rollout, SIM_NS, "shop").await.unwrap()) == "1"
    })
    .await;
    cluster
        .patch(
            Kind::Rollout,
            SIM_NS,
            "shop",
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop:2"}]}}}})),
            false,
        )
        .await
        .unwrap();
    eventually("rollout at 2", 10, || async {
        rev(&cluster.get(Kind::Rollout, SIM_NS, "shop").await.unwrap()) == "2"
    })
    .await;
    let mut ro = workload("shop", "shop", WorkloadRole::Primary);
    ro.kind = WorkloadKind::Rollout;
    argo::argo_abort(&cluster, &ro, &m).await.unwrap();
    argo::argo_undo(&cluster, &ro, RevisionRef::Previous, &m)
        .await
        .unwrap();
    // Events: one decision twice on a workload: created, then patched into a series.
    let events_cancel = CancellationToken::new();
    let (recorder, writer) = rollbackd::events::recorder::start(
        cluster.clone(),
        "pod-a".into(),
        std::sync::Arc::new(rollbackd::metrics::Metrics::new()),
        events_cancel.clone(),
    );
    let events_task = tokio::spawn(writer);
    for _ in 0..2 {
        recorder.record(rollbackd::events::correlator::NewEvent {
            regarding: rollbackd::events::correlator::Regarding {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: SIM_NS.into(),
                name: "web".into(),
            },
            warning: true,
            reason: "RollbackStarted".into(),
            action: "Rollback".into(),
            note: "rolling back".into(),
            at: chrono::Utc::now(),
        });
    }
    eventually("the event's series patch", 10, || async {
        sim.requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.path.starts_with("/apis/events.k8s.io/v1/"))
    })
    .await;
    events_cancel.cancel();
    events_task.await.unwrap();
    // Leader election: create, renew, release.
    let elector = LeaderElector::new(
        client_for(&sim),
        SIM_NS,
        "rollbackd-leader",
        "pod-a",
        Duration::from_secs(1),
        Duration::from_millis(50),
    );
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(elector.run(cancel.clone(), tx));
    rx.wait_for(|l| *l).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    cancel.cancel();
    task.await.unwrap();

    // The Kubernetes store, on the CRD as rendered: an incident's whole life (open, status
    // writes, a backup, a delivered notification, a thread), a pause and its resume, a global
    // audit entry, an alert, and retention deleting what is old.
    {
        use rollbackd::store::{
            AlertRecord, AuditEntry, Incident, KubeStore, NewIncident, NewOutbox, Pause,
            StateStore, StepRow, Transition, Trigger,
        };
        use rollbackd_core::incident::Event;
        sim.create(one("CustomResourceDefinition").clone()).unwrap();
        let store = KubeStore::open(client_for(&sim), NS).await.unwrap();
        let at = chrono::Utc::now() - chrono::TimeDelta::days(2);
        let new = NewIncident {
            agent: "GL-002".into(),
            namespace: SIM_NS.into(),
            workload: "web".into(),
            revision: Some(2),
            from_image: Some("web:2".into()),
            row: Some("p0".into()),
            severity: Some("P0".into()),
            method: Some("quick".into()),
            trigger: Trigger::Automatic,
            requested_by: None,
            reason: "error_rate=0.6".into(),
            decision: json!({"decision": "rollback"}),
            dry_run: false,
            vars: Map::new(),
            deploy_at: Some(at),
        };
        let inc = store
            .open_incident(
                &new,
                Event::Start,
                at,
                None,
                Box::new(|_: &Incident| {
                    vec![NewOutbox {
                        target_key: "webhook:h".into(),
                        target: json!({"kind": "webhook", "name": "h"}),
                        message: json!({"stage": "initiated"}),
                    }]
                }),
            )
            .await
            .unwrap()
            .into_incident();
        store
            .save_step(&StepRow {
                incident_id: inc.id.clone(),
                method: "quick".into(),
                index: 0,
                workload: "web".into(),
                name: "undo".into(),
                kind: "undo".into(),
                state: "done".into(),
                started_at: Some(at),
                finished_at: Some(at),
                detail: json!({}),
            })
            .await
            .unwrap();
        store
            .save_backup(&inc.id, "Deployment", SIM_NS, "web", &json!({}), at)
            .await
            .unwrap();
        let due = store.outbox_due(chrono::Utc::now(), 10).await.unwrap();
        store.outbox_sent(due[0].id, at, None).await.unwrap();
        store
            .save_thread(&inc.id, "webhook:h", &json!({"id": 1}))
            .await
            .unwrap();
        for event in [Event::StepsDone, Event::Verified, Event::WatchElapsed] {
            store
                .transition(&Transition::new(&inc.id, event, at, ""))
                .await
                .unwrap();
        }
        let pause = Pause {
            scope: "global".into(),
            paused_by: "alice".into(),
            reason: "freeze".into(),
            at,
        };
        store.pause(&pause).await.unwrap();
        assert!(store.resume("global").await.unwrap());
        store
            .audit(&AuditEntry {
                at,
                actor: "alice".into(),
                action: "agent.pause".into(),
                target: "global".into(),
                reason: String::new(),
                detail: json!({}),
            })
            .await
            .unwrap();
        store
            .record_alerts(
                &[AlertRecord {
                    fingerprint: "f".into(),
                    status: "firing".into(),
                    starts_at: at,
                    ends_at: None,
                    agent: Some("GL-002".into()),
                    labels: Map::new(),
                    annotations: Map::new(),
                }],
                at,
            )
            .await
            .unwrap();
        let pruned = store
            .prune_older_than(chrono::Utc::now() - chrono::TimeDelta::days(1))
            .await
            .unwrap();
        assert_eq!((pruned.incidents, pruned.backups, pruned.alerts), (1, 1, 1));
    }

    let granted: BTreeSet<(String, String, String)> = grants_of_rules(REQUIRED)
        .into_iter()
        .chain(grants_of_rules(LEADER_ELECTION))
        .chain(grants_of_rules(STORE))
        .flat_map(|((g, r), verbs)| verbs.into_iter().map(move |v| (g.clone(), r.clone(), v)))
        .collect();
    let used: BTreeSet<(String, String, String)> = sim
        .requests()
        .iter()
        .map(|r| grant_of_request(&r.method, &r.path))
        .collect();
    for u in &used {
        assert!(granted.contains(u), "{u:?} is not granted by cluster::rbac");
    }
    let write_verbs = ["create", "update", "patch", "delete"];
    let granted_writes: BTreeSet<_> = granted
        .iter()
        .filter(|(_, _, v)| write_verbs.contains(&v.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        granted_writes, used,
        "every write granted is one the code makes"
    );
    sim.shutdown().await;
}
