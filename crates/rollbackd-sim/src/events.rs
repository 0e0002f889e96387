//! Events: one set of objects served as core/v1 `events` and as events.k8s.io/v1 `events`,
//! as the real API server does. Objects are stored in the core/v1 shape and converted on the
//! way in and out with the mapping of `k8s.io/kubernetes/pkg/apis/events/v1/conversion.go`:
//!
//! | events.k8s.io/v1 | core/v1 |
//! | --- | --- |
//! | `regarding` | `involvedObject` |
//! | `note` | `message` |
//! | `reportingController` | `reportingComponent` |
//! | `reportingInstance` | `reportingInstance` |
//! | `deprecatedSource` | `source` |
//! | `deprecatedFirstTimestamp`, `deprecatedLastTimestamp` | `firstTimestamp`, `lastTimestamp` |
//! | `deprecatedCount` | `count` |
//! | `eventTime`, `series`, `action`, `reason`, `type`, `related` | the same |
//!
//! Validation is `k8s.io/kubernetes/pkg/apis/core/validation/events.go`: the legacy rules for
//! every write, and the strict ones (eventTime, reportingController, reportingInstance,
//! action, reason required; length limits; no deprecated fields) for writes through
//! events.k8s.io/v1. Field selectors are those of both versions
//! (`AddFieldLabelConversionsForEvent`).

use serde_json::{Map, Value, json};

use super::discovery::{EVENTS, EVENTS_V1, Resource};
use super::selector::FieldSelector;
use super::status::ApiError;
use super::validate::{FieldError, check_fields};

/// Whether `r` is events.k8s.io/v1 `events`.
pub fn is_v1(r: &Resource) -> bool {
    r.same_objects(&EVENTS_V1)
}

/// Whether `r` is one of the two event resources.
pub fn is_event(r: &Resource) -> bool {
    is_v1(r) || r.same_objects(&EVENTS)
}

/// Moves `from` of `src` to `to` of `dst`, if present.
fn carry(src: &Map<String, Value>, from: &str, dst: &mut Map<String, Value>, to: &str) {
    if let Some(v) = src.get(from) {
        dst.insert(to.to_string(), v.clone());
    }
}

/// A string field, `""` when absent.
fn str_of<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Whether a timestamp field is unset (absent, null or empty).
fn unset(obj: &Value, key: &str) -> bool {
    obj.get(key)
        .is_none_or(|v| v.is_null() || v.as_str().is_some_and(str::is_empty))
}

/// An events.k8s.io/v1 Event in the core/v1 shape (`Convert_v1_Event_To_core_Event`), with
/// the fields a core/v1 Event always serializes (`reportingComponent`, `reportingInstance`,
/// `source`, and the timestamps as `null` when unset). Unknown fields are dropped, as the
/// API server's decoding drops them.
pub fn to_core(v1: &Value) -> Value {
    let Some(src) = v1.as_object() else {
        return v1.clone();
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    carry(src, "metadata", &mut out, "metadata");
    carry(src, "regarding", &mut out, "involvedObject");
    carry(src, "reason", &mut out, "reason");
    carry(src, "note", &mut out, "message");
    carry(src, "deprecatedSource", &mut out, "source");
    carry(src, "deprecatedFirstTimestamp", &mut out, "firstTimestamp");
    carry(src, "deprecatedLastTimestamp", &mut out, "lastTimestamp");
    carry(src, "deprecatedCount", &mut out, "count");
    carry(src, "type", &mut out, "type");
    carry(src, "eventTime", &mut out, "eventTime");
    carry(src, "series", &mut out, "series");
    carry(src, "action", &mut out, "action");
    carry(src, "related", &mut out, "related");
    carry(src, "reportingController", &mut out, "reportingComponent");
    carry(src, "reportingInstance", &mut out, "reportingInstance");
    let mut core = Value::Object(out);
    normalize_core(&mut core);
    core
}

/// Gives a core/v1 Event the fields Go always serializes for it: `involvedObject: {}`,
/// `source: {}`, `reportingComponent: ""`, `reportingInstance: ""`, and `firstTimestamp`,
/// `lastTimestamp` and `eventTime` as `null` when unset.
pub fn normalize_core(core: &mut Value) {
    let Some(m) = core.as_object_mut() else {
        return;
    };
    for (key, empty) in [
        ("involvedObject", json!({})),
        ("source", json!({})),
        ("firstTimestamp", Value::Null),
        ("lastTimestamp", Value::Null),
        ("eventTime", Value::Null),
        ("reportingComponent", json!("")),
        ("reportingInstance", json!("")),
    ] {
        m.entry(key.to_string()).or_insert(empty);
    }
}

/// A stored core/v1 Event in the events.k8s.io/v1 shape (`Convert_core_Event_To_v1_Event`),
/// with the fields an events.k8s.io/v1 Event always serializes (`eventTime`, `regarding`,
/// `deprecatedSource`, and the deprecated timestamps as `null` when unset).
pub fn to_v1(core: &Value) -> Value {
    let Some(src) = core.as_object() else {
        return core.clone();
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(EVENTS_V1.api_version()));
    out.insert("kind".into(), json!("Event"));
    carry(src, "metadata", &mut out, "metadata");
    out.insert(
        "eventTime".into(),
        src.get("eventTime").cloned().unwrap_or(Value::Null),
    );
    carry(src, "series", &mut out, "series");
    let nonempty = |key: &str| src.get(key).filter(|v| !v.is_null() && *v != "");
    if let Some(v) = nonempty("reportingComponent") {
        out.insert("reportingController".into(), v.clone());
    }
    if let Some(v) = nonempty("reportingInstance") {
        out.insert("reportingInstance".into(), v.clone());
    }
    for key in ["action", "reason"] {
        if let Some(v) = nonempty(key) {
            out.insert(key.into(), v.clone());
        }
    }
    out.insert(
        "regarding".into(),
        src.get("involvedObject").cloned().unwrap_or(json!({})),
    );
    carry(src, "related", &mut out, "related");
    if let Some(v) = nonempty("message") {
        out.insert("note".into(), v.clone());
    }
    if let Some(v) = nonempty("type") {
        out.insert("type".into(), v.clone());
    }
    out.insert(
        "deprecatedSource".into(),
        src.get("source").cloned().unwrap_or(json!({})),
    );
    out.insert(
        "deprecatedFirstTimestamp".into(),
        src.get("firstTimestamp").cloned().unwrap_or(Value::Null),
    );
    out.insert(
        "deprecatedLastTimestamp".into(),
        src.get("lastTimestamp").cloned().unwrap_or(Value::Null),
    );
    if let Some(n) = src
        .get("count")
        .filter(|c| c.as_i64().is_some_and(|n| n != 0))
    {
        out.insert("deprecatedCount".into(), n.clone());
    }
    Value::Object(out)
}

/// The core/v1 shape of an Event whatever shape it is in (tables and field selectors work
/// on it).
pub fn as_core(obj: &Value) -> Value {
    if obj["apiVersion"] == EVENTS_V1.api_version().as_str() {
        to_core(obj)
    } else {
        obj.clone()
    }
}

/// `ReportingInstanceLengthLimit`, `ActionLengthLimit`, `ReasonLengthLimit`.
const FIELD_LIMIT: usize = 128;
/// `NoteLengthLimit`.
pub const NOTE_LIMIT: usize = 1024;

/// `validation.IsQualifiedName`: the API server's complaints about `s` as a qualified name
/// (`[prefix/]name`, the name of at most 63 alphanumerics, `-`, `_` and `.`, starting and
/// ending alphanumeric, the prefix a DNS subdomain).
fn qualified_name_errors(s: &str) -> Vec<String> {
    const FORMAT: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let parts: Vec<&str> = s.split('/').collect();
    let mut errs = Vec::new();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else if !super::validate::valid_name(prefix) {
                errs.push(format!(
                    "prefix part {}",
                    super::validate::DNS1123_SUBDOMAIN
                ));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {FORMAT} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".into());
    }
    let matches = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !matches {
        errs.push(format!("name part {FORMAT}"));
    }
    errs
}

/// `legacyValidateEvent` on the core/v1 shape; `namespace` is the Event's namespace.
fn legacy(core: &Value, namespace: &str, errs: &mut Vec<FieldError>) {
    let involved_ns = core
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            json!(involved_ns),
            "does not match event.namespace",
        )
    };
    if unset(core, "eventTime") {
        // Old-style events: the namespaces must agree (or the Event lives in `default`).
        if involved_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errs.push(mismatch());
            }
        } else if namespace != involved_ns {
            errs.push(mismatch());
        }
        return;
    }
    if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
        errs.push(mismatch());
    }
    let controller = str_of(core, "reportingComponent");
    if controller.is_empty() {
        errs.push(FieldError::required("reportingController", ""));
    }
    for msg in qualified_name_errors(controller) {
        errs.push(FieldError::invalid(
            "reportingController",
            json!(controller),
            msg,
        ));
    }
    let too_long = |path: &str, limit: usize| {
        FieldError::invalid(
            path,
            json!(""),
            format!("can have at most {limit} characters"),
        )
    };
    for (field, path) in [
        ("reportingInstance", "reportingInstance"),
        ("action", "action"),
        ("reason", "reason"),
    ] {
        let value = str_of(core, field);
        if value.is_empty() {
            errs.push(FieldError::required(path, ""));
        }
        if value.len() > FIELD_LIMIT {
            errs.push(too_long(path, FIELD_LIMIT));
        }
    }
    if str_of(core, "message").len() > NOTE_LIMIT {
        errs.push(too_long("message", NOTE_LIMIT));
    }
}

/// `validateV1EventSeries`.
fn series(core: &Value, errs: &mut Vec<FieldError>) {
    let Some(s) = core.get("series").filter(|s| !s.is_null()) else {
        return;
    };
    if s.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
        errs.push(FieldError::invalid(
            "series.count",
            json!(""),
            "should be at least 2",
        ));
    }
    if unset(s, "lastObservedTime") {
        errs.push(FieldError::required("series.lastObservedTime", ""));
    }
}

/// Validates an Event (in the core/v1 shape) about to be written through `r`, in
/// `namespace`, replacing `old` (None for a create): the API server's `ValidateEventCreate`
/// and `ValidateEventUpdate`. Errors are 422 `Invalid`, naming the kind `Event`.
pub fn validate(
    r: &Resource,
    core: &Value,
    namespace: &str,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let mut errs = Vec::new();
    legacy(core, namespace, &mut errs);
    if is_v1(r) {
        match old {
            None => {
                series(core, &mut errs);
                if unset(core, "eventTime") {
                    errs.push(FieldError::required("eventTime", ""));
                }
                let kind = str_of(core, "type");
                if kind != "Normal" && kind != "Warning" {
                    errs.push(FieldError::invalid(
                        "type",
                        json!(""),
                        format!("has invalid value: {kind}"),
                    ));
                }
                for key in ["firstTimestamp", "lastTimestamp"] {
                    if !unset(core, key) {
                        errs.push(FieldError::invalid(key, json!(""), "needs to be unset"));
                    }
                }
                if core.get("count").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    errs.push(FieldError::invalid("count", json!(""), "needs to be unset"));
                }
                let source = core.get("source");
                let set = |k: &str| {
                    source
                        .and_then(|s| s.get(k))
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty())
                };
                if set("component") || set("host") {
                    errs.push(FieldError::invalid(
                        "source",
                        json!(""),
                        "needs to be unset",
                    ));
                }
            }
            Some(old) => {
                if core.get("series") != old.get("series") {
                    series(core, &mut errs);
                }
                for (field, path) in [
                    ("involvedObject", "involvedObject"),
                    ("reason", "reason"),
                    ("message", "message"),
                    ("source", "source"),
                    ("firstTimestamp", "firstTimestamp"),
                    ("lastTimestamp", "lastTimestamp"),
                    ("count", "count"),
                    ("type", "type"),
                    ("eventTime", "eventTime"),
                    ("action", "action"),
                    ("related", "related"),
                    ("reportingComponent", "reportingController"),
                    ("reportingInstance", "reportingInstance"),
                ] {
                    let now = core.get(field).filter(|v| !v.is_null());
                    let before = old.get(field).filter(|v| !v.is_null());
                    if now != before {
                        errs.push(FieldError::immutable(
                            path,
                            now.cloned().unwrap_or(Value::Null),
                        ));
                    }
                }
            }
        }
    }
    let name = core
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    check_fields("Event", name, &errs)
}

/// The field labels core/v1 Events can be selected by (`AddFieldLabelConversionsForEvent`).
const CORE_LABELS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];

/// The core/v1 label an events.k8s.io/v1 field label stands for.
fn v1_label(label: &str) -> Option<&'static str> {
    Some(match label {
        "regarding.kind" => "involvedObject.kind",
        "regarding.namespace" => "involvedObject.namespace",
        "regarding.name" => "involvedObject.name",
        "regarding.uid" => "involvedObject.uid",
        "regarding.apiVersion" => "involvedObject.apiVersion",
        "regarding.resourceVersion" => "involvedObject.resourceVersion",
        "regarding.fieldPath" => "involvedObject.fieldPath",
        "reportingController" => "reportingComponent",
        "reason" => "reason",
        "source" => "source",
        "type" => "type",
        "metadata.namespace" => "metadata.namespace",
        "metadata.name" => "metadata.name",
        _ => return None,
    })
}

/// The value of a core/v1 field label on a stored (core/v1) Event: `source` is
/// `source.component`, or `reportingComponent` when that is empty.
fn core_field(obj: &Value, label: &str) -> Option<String> {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match label {
        "source" => {
            let component = s("/source/component");
            Some(if component.is_empty() {
                s("/reportingComponent")
            } else {
                component
            })
        }
        l if CORE_LABELS.contains(&l) => Some(s(&format!("/{}", l.replace('.', "/")))),
        _ => None,
    }
}

/// A field selector on the events of `r`, in the labels of the stored (core/v1) objects:
/// events.k8s.io/v1 labels (`regarding.name`) are renamed, and labels neither version
/// supports are 400 `BadRequest` (`field label not supported: note`), as on the real server.
pub fn field_selector(r: &Resource, fields: FieldSelector) -> Result<FieldSelector, ApiError> {
    let v1 = is_v1(r);
    let renamed = fields.map_labels(|label| {
        let core = if v1 {
            v1_label(label)
        } else {
            CORE_LABELS.iter().find(|l| **l == label).copied()
        };
        core.map(str::to_string)
            .ok_or_else(|| ApiError::BadRequest(format!("field label not supported: {label}")))
    })?;
    Ok(renamed.with_resolver(core_field))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid events.k8s.io/v1 Event.
    fn v1_event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "shop"},
            "eventTime": "2026-01-02T03:04:05.000000Z",
            "reportingController": "rollbackd.io/daemon",
            "reportingInstance": "rollbackd-0",
            "action": "Rollback",
            "reason": "RolledBack",
            "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                          "namespace": "shop", "uid": "u-1"},
            "related": {"kind": "ReplicaSet", "name": "web-1"},
            "note": "rolled back to revision 3",
            "type": "Warning",
            "series": {"count": 2, "lastObservedTime": "2026-01-02T03:05:00.000000Z"},
        })
    }

    #[test]
    fn conversion_follows_the_documented_mapping_both_ways() {
        let mut counted = v1_event();
        counted["deprecatedCount"] = json!(4);
        let core = to_core(&counted);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["involvedObject"]["uid"], "u-1");
        assert_eq!(core["message"], "rolled back to revision 3");
        assert_eq!(core["reportingComponent"], "rollbackd.io/daemon");
        assert_eq!(core["reportingInstance"], "rollbackd-0");
        assert_eq!(core["count"], 4);
        assert_eq!(core["series"]["count"], 2);
        assert_eq!(core["related"]["name"], "web-1");
        assert_eq!(core["source"], json!({}));
        assert_eq!(core["firstTimestamp"], Value::Null);
        // and back: nothing is lost
        let back = to_v1(&core);
        assert_eq!(back, {
            let mut want = counted.clone();
            want["deprecatedSource"] = json!({});
            want["deprecatedFirstTimestamp"] = Value::Null;
            want["deprecatedLastTimestamp"] = Value::Null;
            want
        });
        // a core event written by a controller reads through events.k8s.io/v1
        let old_style = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "x", "namespace": "shop"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "BackOff",
            "message": "m", "source": {"component": "kubelet", "host": "node"},
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
            "count": 3, "type": "Warning"});
        let v1 = to_v1(&old_style);
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["note"], "m");
        assert_eq!(v1["deprecatedSource"]["component"], "kubelet");
        assert_eq!(v1["deprecatedFirstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(v1["deprecatedCount"], 3);
        assert_eq!(v1["eventTime"], Value::Null);
        assert!(v1.get("reportingController").is_none());
    }

    #[test]
    fn strict_validation_for_events_k8s_io() {
        let ok = to_core(&v1_event());
        assert!(validate(&EVENTS_V1, &ok, "shop", None).is_ok());
        let mut counted = v1_event();
        counted["deprecatedCount"] = json!(4);
        let err = validate(&EVENTS_V1, &to_core(&counted), "shop", None).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is invalid: count: Invalid value: \"\": needs to be unset"),
            "{err}"
        );
        let bare = to_core(&json!({"metadata": {"name": "e"}, "regarding": {"namespace": "shop"}}));
        let err = validate(&EVENTS_V1, &bare, "shop", None).unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(
            err.to_string(),
            "Event \"e\" is invalid: [eventTime: Required value, type: Invalid value: \"\": has invalid value: ]"
        );
        // with an eventTime the legacy rules want the reporter, action and reason
        let mut e = v1_event();
        for k in [
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
        ] {
            e.as_object_mut().unwrap().remove(k);
        }
        let err = validate(&EVENTS_V1, &to_core(&e), "shop", None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("Event \"web.1\" is invalid: [reportingController: Required value, reportingController: Invalid value: \"\": name part must be non-empty, reportingController: Invalid value: \"\": name part must consist of"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "reportingInstance: Required value, action: Required value, reason: Required value]"
            ),
            "{text}"
        );
        let mut e = v1_event();
        e["reportingController"] = json!("a/b/c");
        let err = validate(&EVENTS_V1, &to_core(&e), "shop", None).unwrap_err();
        assert!(
            err.to_string().contains(
                "reportingController: Invalid value: \"a/b/c\": a qualified name must consist"
            ),
            "{err}"
        );
        let mut e = v1_event();
        e["note"] = json!("x".repeat(NOTE_LIMIT + 1));
        let err = validate(&EVENTS_V1, &to_core(&e), "shop", None).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("message: Invalid value: \"\": can have at most 1024 characters"),
            "{err}"
        );
        let mut e = v1_event();
        e["deprecatedFirstTimestamp"] = json!("2026-01-01T00:00:00Z");
        // an event about a cluster-scoped object lives in `default` (or `kube-system`)
        e["regarding"]["namespace"] = json!("");
        let err = validate(&EVENTS_V1, &to_core(&e), "shop", None).unwrap_err();
        assert!(
            err.to_string()
                .contains("firstTimestamp: Invalid value: \"\": needs to be unset")
        );
        assert!(err.to_string().contains(
            "involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
        ));
        // one about an object of another namespace is fine
        let mut e = v1_event();
        e["regarding"]["namespace"] = json!("elsewhere");
        assert!(validate(&EVENTS_V1, &to_core(&e), "shop", None).is_ok());
        // core/v1 keeps the legacy rules only
        let old_style = json!({"metadata": {"name": "x"}, "involvedObject": {"namespace": "shop"},
                               "reason": "R", "count": 2, "firstTimestamp": "2026-01-01T00:00:00Z"});
        assert!(validate(&EVENTS, &old_style, "shop", None).is_ok());
        assert!(validate(&EVENTS, &old_style, "other", None).is_err());
        // updates through events.k8s.io/v1 may not change what happened
        let mut changed = ok.clone();
        changed["message"] = json!("different");
        let err = validate(&EVENTS_V1, &changed, "shop", Some(&ok)).unwrap_err();
        assert!(
            err.to_string()
                .contains("message: Invalid value: \"different\": field is immutable")
        );
        let mut bumped = ok.clone();
        bumped["series"] = json!({"count": 3, "lastObservedTime": "2026-01-02T03:06:00.000000Z"});
        assert!(validate(&EVENTS_V1, &bumped, "shop", Some(&ok)).is_ok());
    }

    #[test]
    fn field_selectors_of_both_versions_select_stored_events() {
        let core = to_core(&v1_event());
        let sel = |r: &Resource, s: &str| field_selector(r, FieldSelector::parse(s).unwrap());
        let describe = "involvedObject.name=web,involvedObject.namespace=shop,involvedObject.kind=Deployment,involvedObject.uid=u-1";
        assert!(sel(&EVENTS, describe).unwrap().matches(&core));
        assert!(
            sel(
                &EVENTS_V1,
                "regarding.name=web,reportingController=rollbackd.io/daemon"
            )
            .unwrap()
            .matches(&core)
        );
        assert!(
            !sel(&EVENTS_V1, "regarding.name=api")
                .unwrap()
                .matches(&core)
        );
        assert!(
            sel(&EVENTS, "source=rollbackd.io/daemon")
                .unwrap()
                .matches(&core)
        );
        let err = sel(&EVENTS_V1, "note=x").unwrap_err();
        assert_eq!(
            (err.code(), err.to_string().as_str()),
            (400, "field label not supported: note")
        );
        assert!(sel(&EVENTS, "regarding.name=web").is_err());
    }
}
