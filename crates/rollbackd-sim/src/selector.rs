//! Label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and field selectors.

use serde_json::Value;
use std::collections::BTreeMap;

use super::status::ApiError;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` / `key==value` / `key in (v1,v2)`.
    In(String, Vec<String>),
    /// `key!=value` / `key notin (v1,v2)`.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(s: &str) -> Result<Vec<String>, ApiError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| ApiError::BadRequest(format!("unable to parse requirement: {s}")))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            if let Some(k) = part.strip_prefix('!') {
                reqs.push(Requirement::DoesNotExist(k.trim().to_string()));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(Requirement::NotIn(k.trim().into(), vec![v.trim().into()]));
            } else if let Some((k, v)) = part.split_once("==") {
                reqs.push(Requirement::In(k.trim().into(), vec![v.trim().into()]));
            } else if let Some((k, v)) = part.split_once('=') {
                reqs.push(Requirement::In(k.trim().into(), vec![v.trim().into()]));
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                reqs.push(Requirement::NotIn(k.trim().into(), parse_set(rest)?));
            } else if let Some((k, rest)) = part.split_once(" in ") {
                reqs.push(Requirement::In(k.trim().into(), parse_set(rest)?));
            } else if part
                .chars()
                .all(|c| c.is_alphanumeric() || "-_./".contains(c))
            {
                reqs.push(Requirement::Exists(part));
            } else {
                return Err(ApiError::BadRequest(format!(
                    "unable to parse requirement: {part}"
                )));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON (matchLabels + matchExpressions).
    pub fn from_label_selector(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement::In(
                    k.clone(),
                    vec![v.as_str().unwrap_or_default().to_string()],
                ));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or_default().to_string();
                let values: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                match e["operator"].as_str().unwrap_or_default() {
                    "In" => reqs.push(Requirement::In(key, values)),
                    "NotIn" => reqs.push(Requirement::NotIn(key, values)),
                    "Exists" => reqs.push(Requirement::Exists(key)),
                    _ => reqs.push(Requirement::DoesNotExist(key)),
                }
            }
        }
        LabelSelector(reqs)
    }

    /// Whether it selects everything (no requirement).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `key=value` requirements: a LIST can start from the objects that carry one of
    /// these labels (the rarest) instead of every object.
    pub fn equalities(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter_map(|r| match r {
            Requirement::In(k, vs) if vs.len() == 1 => Some((k.as_str(), vs[0].as_str())),
            _ => None,
        })
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Whether the object's `metadata.labels` satisfy the selector (read in place: a LIST
    /// runs this on every object of the resource).
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = obj
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.matches_with(|k| {
            labels
                .and_then(|m| m.get(k))
                .map(|v| v.as_str().unwrap_or_default())
        })
    }

    /// Whether every requirement holds, with `label` looking up a label's value.
    fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::In(k, vs) => label(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
        })
    }
}

/// How a field label reads its value from an object, for kinds whose labels are not plain
/// JSON paths (an Event's `source`); None means the label is not known.
pub type FieldResolver = fn(&Value, &str) -> Option<String>;

/// A parsed field selector (`metadata.name=x,metadata.namespace!=y`).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
    resolver: Option<FieldResolver>,
}

impl FieldSelector {
    /// Whether it selects everything (no requirement).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses the `fieldSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            out.push((field.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector {
            requirements: out,
            resolver: None,
        })
    }

    /// The same selector with every label renamed by `rename` (which may refuse a label).
    pub fn map_labels(
        self,
        rename: impl Fn(&str) -> Result<String, ApiError>,
    ) -> Result<Self, ApiError> {
        let requirements = self
            .requirements
            .into_iter()
            .map(|(label, eq, value)| Ok((rename(&label)?, eq, value)))
            .collect::<Result<_, ApiError>>()?;
        Ok(FieldSelector {
            requirements,
            resolver: self.resolver,
        })
    }

    /// The same selector, reading label values with `resolver` instead of as dotted paths.
    pub fn with_resolver(self, resolver: FieldResolver) -> Self {
        FieldSelector {
            resolver: Some(resolver),
            ..self
        }
    }

    /// Whether the object satisfies every field requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|(field, eq, value)| {
            let actual = match self.resolver {
                Some(resolve) => resolve(obj, field).unwrap_or_default(),
                None => {
                    let pointer = format!("/{}", field.replace('.', "/"));
                    obj.pointer(&pointer)
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .unwrap_or_default()
                }
            };
            (actual == *value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_set_based_selectors() {
        let s = LabelSelector::parse("app in (web,api),tier notin (db),!legacy,env").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("env", "x")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "x"), ("legacy", "1")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "x"), ("tier", "db")])));
    }

    #[test]
    fn field_selector_on_name() {
        let f = FieldSelector::parse("metadata.name=web").unwrap();
        assert!(f.matches(&serde_json::json!({"metadata": {"name": "web"}})));
        assert!(!f.matches(&serde_json::json!({"metadata": {"name": "api"}})));
    }
}
