//! The validation the real API server does that clients are likely to trip over: names,
//! selectors that match their pod template, and containers with a name and an image.

use std::fmt;

use serde_json::Value;

use super::discovery::Resource;
use super::selector::LabelSelector;
use super::status::{ApiError, qualified};

/// The most replicas one workload may ask for (a simulator limit, not a Kubernetes one).
pub const MAX_REPLICAS: i64 = 1000;

/// `Deployment.apps`, or `Pod` for the core group: how an `Invalid` error names a kind.
pub fn qualified_kind(r: &Resource) -> String {
    if r.group.is_empty() {
        r.kind.to_string()
    } else {
        format!("{}.{}", r.kind, r.group)
    }
}

fn invalid(r: &Resource, name: &str, detail: &str) -> ApiError {
    ApiError::Invalid(format!(
        "{} \"{name}\" is invalid: {detail}",
        qualified_kind(r)
    ))
}

/// One invalid field, worded as the API server's `field.Error` is.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldError {
    /// `path: Required value[: detail]`.
    Required {
        /// The field's path (`spec.group`).
        path: String,
        /// What more to say (may be empty).
        detail: String,
    },
    /// `path: Invalid value: value[: detail]`.
    Invalid {
        /// The field's path.
        path: String,
        /// The value found.
        value: Value,
        /// Why it is invalid.
        detail: String,
    },
    /// `path: Unsupported value: "x": supported values: "a", "b"`.
    NotSupported {
        /// The field's path.
        path: String,
        /// The value found.
        value: String,
        /// The values allowed.
        supported: Vec<&'static str>,
    },
    /// `path: Forbidden: detail`.
    Forbidden {
        /// The field's path.
        path: String,
        /// Why it is forbidden.
        detail: String,
    },
}

impl FieldError {
    /// A required field that is missing.
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError::Required {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// A field with a bad value.
    pub fn invalid(path: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        FieldError::Invalid {
            path: path.into(),
            value,
            detail: detail.into(),
        }
    }

    /// A field whose value is not one of `supported`.
    pub fn not_supported(
        path: impl Into<String>,
        value: impl Into<String>,
        supported: &[&'static str],
    ) -> Self {
        FieldError::NotSupported {
            path: path.into(),
            value: value.into(),
            supported: supported.to_vec(),
        }
    }

    /// A field that may not be set.
    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError::Forbidden {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// `path: Invalid value: new: field is immutable`.
    pub fn immutable(path: impl Into<String>, value: Value) -> Self {
        FieldError::invalid(path, value, "field is immutable")
    }
}

/// A value as `field.Error` prints it: strings quoted, numbers and booleans bare, and (unlike
/// Go, which prints its own syntax) other values as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            FieldError::Required { path, detail } => {
                with_detail(format!("{path}: Required value"), detail)
            }
            FieldError::Invalid {
                path,
                value,
                detail,
            } => with_detail(format!("{path}: Invalid value: {}", shown(value)), detail),
            FieldError::NotSupported {
                path,
                value,
                supported,
            } => {
                let allowed: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
                format!(
                    "{path}: Unsupported value: {value:?}: supported values: {}",
                    allowed.join(", ")
                )
            }
            FieldError::Forbidden { path, detail } => {
                with_detail(format!("{path}: Forbidden"), detail)
            }
        };
        f.write_str(&text)
    }
}

/// The 422 `Invalid` error the API server answers for `errors` (`errors.NewInvalid`): one
/// error as it is, several as `[a, b]`. `qualified_kind` is like `Event` or
/// `CustomResourceDefinition.apiextensions.k8s.io`. `Ok` when there are no errors.
pub fn check_fields(
    qualified_kind: &str,
    name: &str,
    errors: &[FieldError],
) -> Result<(), ApiError> {
    let aggregate = match errors {
        [] => return Ok(()),
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(ApiError::Invalid(format!(
        "{qualified_kind} \"{name}\" is invalid: {aggregate}"
    )))
}

/// Whether `s` is a DNS-1035 label (`[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters);
/// the API server's message when it is not.
pub fn dns1035_label(s: &str) -> Option<&'static str> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (!ok).then_some(
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    )
}

/// The API server's message for a name that is not a DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

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
    check_with(r, obj, None)
}

/// Validates an object about to replace `old`: as [`check`], and for
/// CustomResourceDefinitions with the rules of updates (identity fields, stored versions).
pub fn check_update(r: &Resource, obj: &Value, old: &Value) -> Result<(), ApiError> {
    check_with(r, obj, Some(old))
}

fn check_with(r: &Resource, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
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
    if r.custom {
        // No schema validation for custom resources (see the README).
        return Ok(());
    }
    match r.kind {
        "CustomResourceDefinition" => super::crds::validate(obj, old),
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
    fn field_errors_read_like_the_api_servers() {
        let one = [FieldError::required("eventTime", "")];
        let err = check_fields("Event", "e", &one).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Event \"e\" is invalid: eventTime: Required value"
        );
        let two = [
            FieldError::invalid("type", json!(""), "has invalid value: Bad"),
            FieldError::not_supported("spec.scope", "Everywhere", &["Cluster", "Namespaced"]),
        ];
        let err = check_fields("X.y.io", "n", &two).unwrap_err();
        assert_eq!(
            err.to_string(),
            "X.y.io \"n\" is invalid: [type: Invalid value: \"\": has invalid value: Bad, spec.scope: Unsupported value: \"Everywhere\": supported values: \"Cluster\", \"Namespaced\"]"
        );
        assert!(check_fields("X", "n", &[]).is_ok());
        assert!(dns1035_label("v1alpha1").is_none());
        assert!(dns1035_label("1v").is_some());
        assert!(dns1035_label("V1").is_some());
    }

    #[test]
    fn names_are_dns_subdomains() {
        assert!(valid_name("web-1.a"));
        assert!(!valid_name("Web"));
        assert!(!valid_name("-web"));
        assert!(!valid_name(""));
    }
}
