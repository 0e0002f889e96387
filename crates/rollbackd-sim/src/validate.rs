//! The validation the real API server does that clients are likely to trip over: names,
//! selectors that match their pod template, and containers with a name and an image.

use serde_json::Value;

use super::discovery::Resource;
use super::selector::LabelSelector;
use super::status::{ApiError, qualified};

/// The most replicas one workload may ask for (a simulator limit, not a Kubernetes one).
pub const MAX_REPLICAS: i64 = 1000;

fn invalid(r: &Resource, name: &str, detail: &str) -> ApiError {
    let kind = if r.group.is_empty() {
        r.kind.to_string()
    } else {
        format!("{}.{}", r.kind, r.group)
    };
    ApiError::Invalid(format!("{kind} \"{name}\" is invalid: {detail}"))
}

/// Whether `name` is a valid DNS subdomain (lowercase alphanumerics, `-` and `.`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn pod_spec(r: &Resource, name: &str, spec: Option<&Value>, field: &str) -> Result<(), ApiError> {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid(r, name, &format!("{field}.containers: Required value")))?;
    for (i, c) in containers.iter().enumerate() {
        for key in ["name", "image"] {
            if c.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(invalid(
                    r,
                    name,
                    &format!("{field}.containers[{i}].{key}: Required value"),
                ));
            }
        }
    }
    Ok(())
}

/// Validates an object about to be stored.
pub fn check(r: &Resource, obj: &Value) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !valid_name(name) {
        return Err(invalid(
            r,
            name,
            "metadata.name: Invalid value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
        ));
    }
    match r.kind {
        "Deployment" | "ReplicaSet" | "Rollout" => {
            if let Some(replicas) = obj.pointer("/spec/replicas")
                && !replicas
                    .as_i64()
                    .is_some_and(|n| (0..=MAX_REPLICAS).contains(&n))
            {
                return Err(invalid(
                    r,
                    name,
                    &format!(
                        "spec.replicas: Invalid value: {replicas}: must be between 0 and {MAX_REPLICAS} in the simulator"
                    ),
                ));
            }
            let selector = obj
                .pointer("/spec/selector")
                .filter(|s| s.get("matchLabels").is_some() || s.get("matchExpressions").is_some())
                .ok_or_else(|| invalid(r, name, "spec.selector: Required value"))?;
            let template = obj
                .pointer("/spec/template")
                .ok_or_else(|| invalid(r, name, "spec.template: Required value"))?;
            if !LabelSelector::from_label_selector(selector).matches_object(template) {
                return Err(invalid(
                    r,
                    name,
                    "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
                ));
            }
            pod_spec(r, name, template.get("spec"), "spec.template.spec")
        }
        "Job" => pod_spec(
            r,
            name,
            obj.pointer("/spec/template/spec"),
            "spec.template.spec",
        ),
        "Pod" => pod_spec(r, name, obj.get("spec"), "spec"),
        _ => Ok(()),
    }
}

/// A `NotFound` for a namespaced path without namespace, kept next to validation.
pub fn missing_namespace(r: &Resource) -> ApiError {
    ApiError::NotFound(format!(
        "the server could not find the requested resource ({})",
        qualified(r.plural, r.group)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::DEPLOYMENTS;
    use serde_json::json;

    #[test]
    fn selector_must_match_template() {
        let d = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "other"}},
                         "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}});
        let err = check(&DEPLOYMENTS, &d).unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(
            err.to_string()
                .starts_with("Deployment.apps \"web\" is invalid")
        );
    }

    #[test]
    fn names_are_dns_subdomains() {
        assert!(valid_name("web-1.a"));
        assert!(!valid_name("Web"));
        assert!(!valid_name("-web"));
        assert!(!valid_name(""));
    }
}
