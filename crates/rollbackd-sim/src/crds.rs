//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): their defaults and validation as
//! the real API server applies them, the status its controllers give them (`acceptedNames`,
//! the `NamesAccepted` and `Established` conditions, `storedVersions`), and the resources they
//! define, served generically (`Store::catalog`).
//!
//! [`Resource`] is `&'static` throughout the simulator, so the resources of a CRD are made
//! `'static` here: each distinct definition (group, version, names, scope, status subresource,
//! printer columns) is leaked once and shared by every simulator in the process. Memory grows
//! with the number of distinct definitions ever created, not with writes.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::{Value, json};

use super::discovery::{CRDS, PrinterColumn, Resource};
use super::ids;
use super::jsonpath::JsonPath;
use super::status::ApiError;
use super::validate::{self, FieldError, check_fields, dns1035_label, qualified_kind};

/// The printer column a CRD version gets when it declares none (`serveDefaultColumnsIfEmpty`).
const DEFAULT_COLUMNS: &[PrinterColumn] = &[PrinterColumn {
    name: "Age",
    kind: "date",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    priority: 0,
    json_path: ".metadata.creationTimestamp",
}];

/// The allowed printer column types (`printerColumnDatatypes`, sorted as Go lists them).
const COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
/// The allowed printer column formats.
const COLUMN_FORMATS: &[&str] = &[
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

/// Everything a served custom resource is made of, owned (the key of the intern pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Definition {
    group: String,
    version: String,
    plural: String,
    singular: String,
    kind: String,
    list_kind: String,
    namespaced: bool,
    short_names: Vec<String>,
    categories: Vec<String>,
    has_status: bool,
    /// (name, type, format, description, priority, jsonPath).
    columns: Vec<(String, String, String, String, i64, String)>,
}

static POOL: LazyLock<Mutex<HashMap<Definition, &'static Resource>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_all(v: &[String]) -> &'static [&'static str] {
    Box::leak(
        v.iter()
            .map(|s| leak(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

/// The one `'static` resource of a definition.
fn intern(def: Definition) -> &'static Resource {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = pool.get(&def) {
        return r;
    }
    let columns: Vec<PrinterColumn> = def
        .columns
        .iter()
        .map(
            |(name, kind, format, description, priority, path)| PrinterColumn {
                name: leak(name),
                kind: leak(kind),
                format: leak(format),
                description: leak(description),
                priority: *priority,
                json_path: leak(path),
            },
        )
        .collect();
    let r: &'static Resource = Box::leak(Box::new(Resource {
        group: leak(&def.group),
        version: leak(&def.version),
        plural: leak(&def.plural),
        singular: leak(&def.singular),
        kind: leak(&def.kind),
        namespaced: def.namespaced,
        short_names: leak_all(&def.short_names),
        has_status: def.has_status,
        has_scale: false,
        categories: leak_all(&def.categories),
        list_kind: leak(&def.list_kind),
        columns: Box::leak(columns.into_boxed_slice()),
        custom: true,
    }));
    pool.insert(def, r);
    r
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn strings(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn versions(crd: &Value) -> &[Value] {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The group of a CRD (`spec.group`).
pub fn group_of(crd: &Value) -> &str {
    s(crd, "/spec/group")
}

/// The plural of a CRD's resource (`spec.names.plural`).
pub fn plural_of(crd: &Value) -> &str {
    s(crd, "/spec/names/plural")
}

/// Whether a condition of the CRD is `True`.
fn condition_true(crd: &Value, kind: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
}

/// The resources a stored CRD serves: one per served version, named by its accepted names;
/// none while its names are not accepted (and it was never established).
pub fn served(crd: &Value) -> Vec<&'static Resource> {
    resources(crd)
        .into_iter()
        .filter_map(|(r, served)| served.then_some(r))
        .collect()
}

/// Every resource a stored CRD defines, one per version, with whether it is served (the
/// version says `served: true` and the names are accepted or the CRD is established). None
/// before any name was accepted.
pub fn resources(crd: &Value) -> Vec<(&'static Resource, bool)> {
    let names = crd
        .pointer("/status/acceptedNames")
        .cloned()
        .unwrap_or(Value::Null);
    if s(&names, "/plural").is_empty() || s(&names, "/kind").is_empty() {
        return Vec::new();
    }
    let accepted = condition_true(crd, "NamesAccepted") || condition_true(crd, "Established");
    versions(crd)
        .iter()
        .map(|v| {
            let declared = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .filter(|cs| !cs.is_empty());
            let columns = match declared {
                Some(cs) => cs
                    .iter()
                    .map(|c| {
                        let path = s(c, "/jsonPath").to_string();
                        let description = match s(c, "/description") {
                            "" => format!(
                                "Custom resource definition column (in JSONPath format): {path}"
                            ),
                            d => d.to_string(),
                        };
                        (
                            s(c, "/name").to_string(),
                            s(c, "/type").to_string(),
                            s(c, "/format").to_string(),
                            description,
                            c["priority"].as_i64().unwrap_or(0),
                            path,
                        )
                    })
                    .collect(),
                None => DEFAULT_COLUMNS
                    .iter()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.kind.to_string(),
                            c.format.to_string(),
                            c.description.to_string(),
                            c.priority,
                            c.json_path.to_string(),
                        )
                    })
                    .collect(),
            };
            let r = intern(Definition {
                group: group_of(crd).to_string(),
                version: s(v, "/name").to_string(),
                plural: s(&names, "/plural").to_string(),
                singular: s(&names, "/singular").to_string(),
                kind: s(&names, "/kind").to_string(),
                list_kind: s(&names, "/listKind").to_string(),
                namespaced: s(crd, "/spec/scope") == "Namespaced",
                short_names: strings(&names, "/shortNames"),
                categories: strings(&names, "/categories"),
                has_status: v
                    .pointer("/subresources/status")
                    .is_some_and(Value::is_object),
                columns,
            });
            (r, accepted && v["served"] == true)
        })
        .collect()
}

/// The API server's defaults for a CRD (`SetDefaults_CustomResourceDefinitionSpec`):
/// `names.singular` (the kind in lower case), `names.listKind` (`{kind}List`) and
/// `conversion.strategy: None`.
pub fn apply_defaults(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let empty = |v: Option<&Value>| v.and_then(Value::as_str).is_none_or(str::is_empty);
        if empty(names.get("singular")) {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if empty(names.get("listKind")) && !kind.is_empty() {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    spec.entry("conversion")
        .or_insert_with(|| json!({"strategy": "None"}));
}

fn column_errors(col: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if s(col, "/name").is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    }
    let kind = s(col, "/type");
    let must = format!("must be one of {}", COLUMN_TYPES.join(","));
    if kind.is_empty() {
        errs.push(FieldError::required(format!("{path}.type"), must));
    } else if !COLUMN_TYPES.contains(&kind) {
        errs.push(FieldError::invalid(
            format!("{path}.type"),
            json!(kind),
            must,
        ));
    }
    let format = s(col, "/format");
    if !format.is_empty() && !COLUMN_FORMATS.contains(&format) {
        errs.push(FieldError::invalid(
            format!("{path}.format"),
            json!(format),
            format!("must be one of {}", COLUMN_FORMATS.join(",")),
        ));
    }
    let json_path = s(col, "/jsonPath");
    if json_path.is_empty() {
        errs.push(FieldError::required(format!("{path}.JSONPath"), ""));
    } else if !json_path.starts_with('.') {
        errs.push(FieldError::invalid(
            format!("{path}.JSONPath"),
            json!(json_path),
            "must be a simple json path starting with .",
        ));
    }
}

fn names_errors(names: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for key in ["plural", "singular"] {
        let v = s(names, &format!("/{key}"));
        if let Some(msg) = dns1035_label(v).filter(|_| !v.is_empty()) {
            errs.push(FieldError::invalid(format!("{path}.{key}"), json!(v), msg));
        }
    }
    for key in ["kind", "listKind"] {
        let v = s(names, &format!("/{key}"));
        if let Some(msg) = dns1035_label(&v.to_lowercase()).filter(|_| !v.is_empty()) {
            errs.push(FieldError::invalid(
                format!("{path}.{key}"),
                json!(v),
                format!("may have mixed case, but should otherwise match: {msg}"),
            ));
        }
    }
    for key in ["shortNames", "categories"] {
        for (i, v) in strings(names, &format!("/{key}")).iter().enumerate() {
            if let Some(msg) = dns1035_label(v) {
                errs.push(FieldError::invalid(
                    format!("{path}.{key}[{i}]"),
                    json!(v),
                    msg,
                ));
            }
        }
    }
    let kind = s(names, "/kind");
    if !kind.is_empty() && kind == s(names, "/listKind") {
        errs.push(FieldError::invalid(
            format!("{path}.listKind"),
            json!(kind),
            "kind and listKind may not be the same",
        ));
    }
}

/// Validates a CRD about to be stored (`ValidateCustomResourceDefinition`, and
/// `…Update` when `old` is the stored one): the name is `plural.group`; the group a domain;
/// the scope `Cluster` or `Namespaced`; exactly one storage version, with unique DNS-1035 names;
/// a schema with `type: object` at the root for every version; valid names and printer
/// columns; conversion `None` or `Webhook`; and, on update, the group and plural (and, once
/// established, the scope and kind) unchanged and every stored version still listed.
pub fn validate(crd: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let mut errs = Vec::new();
    let name = s(crd, "/metadata/name");
    let group = group_of(crd);
    let plural = plural_of(crd);
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !validate::valid_name(group) {
        errs.push(FieldError::invalid(
            "spec.group",
            json!(group),
            validate::DNS1123_SUBDOMAIN,
        ));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            json!(group),
            "should be a domain with at least one dot",
        ));
    }
    match s(crd, "/spec/scope") {
        "" => errs.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = versions(crd);
    for (i, v) in versions.iter().enumerate() {
        if v.pointer("/schema/openAPIV3Schema")
            .is_none_or(Value::is_null)
        {
            errs.push(FieldError::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }
    let mut seen = Vec::new();
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let vname = s(v, "/name");
        if seen.contains(&vname) {
            unique = false;
        }
        seen.push(vname);
        if let Some(msg) = dns1035_label(vname) {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                json!(vname),
                msg,
            ));
        }
        if let Some(schema) = v
            .pointer("/schema/openAPIV3Schema")
            .filter(|x| x.is_object())
        {
            let root = s(schema, "/type");
            let status_enabled = v
                .pointer("/subresources/status")
                .is_some_and(Value::is_object);
            if status_enabled && !root.is_empty() && root != "object" {
                errs.push(FieldError::invalid(
                    format!("{path}.schema.openAPIV3Schema.type"),
                    json!(root),
                    "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled",
                ));
            }
            if root.is_empty() {
                errs.push(FieldError::required(
                    format!("{path}.schema.openAPIV3Schema.type"),
                    "must not be empty at the root",
                ));
            }
        }
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            for (j, c) in cols.iter().enumerate() {
                column_errors(
                    c,
                    &format!("{path}.additionalPrinterColumns[{j}]"),
                    &mut errs,
                );
            }
        }
    }
    if !unique {
        errs.push(FieldError::invalid(
            "spec.versions",
            json!(seen),
            "must contain unique version names",
        ));
    }
    if versions.iter().filter(|v| v["storage"] == true).count() != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            json!(seen),
            "must have exactly one version marked as storage version",
        ));
    }
    let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    for key in ["plural", "singular", "kind", "listKind"] {
        if s(&names, &format!("/{key}")).is_empty() {
            errs.push(FieldError::required(format!("spec.names.{key}"), ""));
        }
    }
    names_errors(&names, "spec.names", &mut errs);
    match s(crd, "/spec/conversion/strategy") {
        "None" => {
            if crd
                .pointer("/spec/conversion/webhook")
                .is_some_and(|w| !w.is_null())
            {
                errs.push(FieldError::forbidden(
                    "spec.conversion.webhookClientConfig",
                    "should not be set when strategy is not set to Webhook",
                ));
            }
        }
        "Webhook" => {
            if crd
                .pointer("/spec/conversion/webhook/clientConfig")
                .is_none_or(Value::is_null)
            {
                errs.push(FieldError::required(
                    "spec.conversion.webhookClientConfig",
                    "required when strategy is set to Webhook",
                ));
            }
        }
        "" => errs.push(FieldError::required("spec.conversion.strategy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            other,
            &["None", "Webhook"],
        )),
    }
    if let Some(old) = old {
        for (path, pointer) in [
            ("spec.group", "/spec/group"),
            ("spec.names.plural", "/spec/names/plural"),
        ] {
            if s(crd, pointer) != s(old, pointer) {
                errs.push(FieldError::immutable(path, json!(s(crd, pointer))));
            }
        }
        if condition_true(old, "Established") {
            for (path, pointer) in [
                ("spec.scope", "/spec/scope"),
                ("spec.names.kind", "/spec/names/kind"),
            ] {
                if s(crd, pointer) != s(old, pointer) {
                    errs.push(FieldError::immutable(path, json!(s(crd, pointer))));
                }
            }
        }
        let stored = strings(old, "/status/storedVersions");
        for (i, v) in stored.iter().enumerate() {
            if !seen.contains(&v.as_str()) {
                errs.push(FieldError::invalid(
                    format!("status.storedVersions[{i}]"),
                    json!(v),
                    format!(
                        "missing from spec.versions; {v} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {v} and removes {v} from status.storedVersions"
                    ),
                ));
            }
        }
    }
    check_fields(&qualified_kind(&CRDS), name, &errs)
}

/// `equalToAcceptedOrFresh`: a requested name is fine if it is already ours or unused.
fn fresh(requested: &str, accepted: &str, used: &[String]) -> Result<(), String> {
    if requested == accepted || !used.iter().any(|u| u == requested) {
        Ok(())
    } else {
        Err(format!("{requested:?} is already in use"))
    }
}

/// A condition, keeping `lastTransitionTime` from `old` when the status did not change.
fn condition(kind: &str, status: &str, reason: &str, message: &str, old: Option<&Value>) -> Value {
    let previous = old
        .and_then(|o| o.pointer("/status/conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let since = previous
        .filter(|c| c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(ids::now()));
    json!({"type": kind, "status": status, "lastTransitionTime": since,
           "reason": reason, "message": message})
}

/// The status the API server's controllers give a CRD about to be stored: the names it may
/// use (`acceptedNames`: each name requested, unless another CRD of the group accepted it
/// first), `NamesAccepted` (`NoConflicts`, or `PluralConflict`, `SingularConflict`,
/// `ShortNamesConflict`, `KindConflict`, `ListKindConflict` with `"x" is already in use`),
/// `Established` (`InitialNamesAccepted`, which stays once reached, or `NotAccepted`), and
/// `storedVersions` (every version ever used for storage). `others` are the other CRDs of the
/// same group; `old` the stored CRD on updates. The real controllers do this a moment after
/// the write; the simulator does it in the write.
pub fn settle(crd: &mut Value, old: Option<&Value>, others: &[Value]) {
    let mut resources = Vec::new();
    let mut kinds = Vec::new();
    for o in others {
        let names = o
            .pointer("/status/acceptedNames")
            .cloned()
            .unwrap_or(Value::Null);
        for key in ["plural", "singular"] {
            resources.push(s(&names, &format!("/{key}")).to_string());
        }
        resources.extend(strings(&names, "/shortNames"));
        for key in ["kind", "listKind"] {
            kinds.push(s(&names, &format!("/{key}")).to_string());
        }
    }
    resources.retain(|r| !r.is_empty());
    kinds.retain(|k| !k.is_empty());
    let requested = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    let accepted = old
        .and_then(|o| o.pointer("/status/acceptedNames"))
        .cloned()
        .unwrap_or(json!({}));
    let mut names = accepted.clone();
    let mut conflict: Option<(&str, String)> = None;
    for (key, reason, used) in [
        ("plural", "PluralConflict", &resources),
        ("singular", "SingularConflict", &resources),
    ] {
        let want = s(&requested, &format!("/{key}"));
        match fresh(want, s(&accepted, &format!("/{key}")), used) {
            Ok(()) => names[key] = json!(want),
            Err(e) => conflict = Some((reason, e)),
        }
    }
    let wanted_short = strings(&requested, "/shortNames");
    let had_short = strings(&accepted, "/shortNames");
    if wanted_short != had_short {
        let clashes: Vec<String> = wanted_short
            .iter()
            .filter(|n| !had_short.contains(n))
            .filter_map(|n| fresh(n, "", &resources).err())
            .collect();
        match clashes.as_slice() {
            [] => names["shortNames"] = json!(wanted_short),
            [one] => conflict = Some(("ShortNamesConflict", one.clone())),
            many => conflict = Some(("ShortNamesConflict", format!("[{}]", many.join(", ")))),
        }
    }
    for (key, reason) in [("kind", "KindConflict"), ("listKind", "ListKindConflict")] {
        let want = s(&requested, &format!("/{key}"));
        match fresh(want, s(&accepted, &format!("/{key}")), &kinds) {
            Ok(()) => names[key] = json!(want),
            Err(e) => conflict = Some((reason, e)),
        }
    }
    let categories = strings(&requested, "/categories");
    if categories.is_empty() {
        if let Some(m) = names.as_object_mut() {
            m.remove("categories");
        }
    } else {
        names["categories"] = json!(categories);
    }
    if names
        .get("shortNames")
        .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
        && let Some(m) = names.as_object_mut()
    {
        m.remove("shortNames");
    }
    let was_established = old.is_some_and(|o| condition_true(o, "Established"));
    let (names_accepted, established) = match &conflict {
        None => (
            condition(
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
                old,
            ),
            condition(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
                old,
            ),
        ),
        Some((reason, message)) => (
            condition("NamesAccepted", "False", reason, message, old),
            if was_established {
                condition(
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                    old,
                )
            } else {
                condition(
                    "Established",
                    "False",
                    "NotAccepted",
                    "not all names are accepted",
                    old,
                )
            },
        ),
    };
    let mut stored = strings(crd, "/status/storedVersions");
    for v in strings(old.unwrap_or(&Value::Null), "/status/storedVersions") {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    if let Some(storage) = versions(crd).iter().find(|v| v["storage"] == true) {
        let storage = s(storage, "/name").to_string();
        if !stored.contains(&storage) {
            stored.push(storage);
        }
    }
    if let Some(m) = crd.as_object_mut() {
        m.insert(
            "status".into(),
            json!({
                "acceptedNames": names,
                "conditions": [names_accepted, established],
                "storedVersions": stored,
            }),
        );
    }
}

/// The cell of a printer column for one object, as the API server's table convertor makes
/// it: the first value the JSONPath finds; `string` columns print it (objects as JSON),
/// `integer`, `number` and `boolean` columns keep values of their type, `date` columns show
/// the time since an RFC 3339 timestamp (`5m3s`, or `<invalid>`); anything else is `null`,
/// which kubectl shows as `<none>`.
pub fn cell(column: &PrinterColumn, obj: &Value) -> Value {
    let Ok(path) = JsonPath::parse(column.json_path) else {
        return Value::Null;
    };
    let Some(value) = path.find(obj).into_iter().next() else {
        return Value::Null;
    };
    match (column.kind, value) {
        ("string", Value::Null) => Value::Null,
        ("string", v) => json!(super::jsonpath::text(v)),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(t)) => json!(
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| super::table::human_duration(
                    chrono::Utc::now() - t.with_timezone(&chrono::Utc)
                ))
                .unwrap_or_else(|_| "<invalid>".into())
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "rollbackincidents.rollbackd.io"},
            "spec": {
                "group": "rollbackd.io", "scope": "Namespaced",
                "names": {"kind": "RollbackIncident", "plural": "rollbackincidents",
                          "shortNames": ["rbi"], "categories": ["rollbackd"]},
                "versions": [{
                    "name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Agent", "type": "string", "jsonPath": ".spec.agent"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                    ]
                }]
            }
        })
    }

    fn settled(mut c: Value, others: &[Value]) -> Value {
        apply_defaults(&mut c);
        validate(&c, None).unwrap();
        settle(&mut c, None, others);
        c
    }

    #[test]
    fn defaults_status_and_served_resources() {
        let c = settled(crd(), &[]);
        assert_eq!(c["spec"]["names"]["singular"], "rollbackincident");
        assert_eq!(c["spec"]["names"]["listKind"], "RollbackIncidentList");
        assert_eq!(c["spec"]["conversion"]["strategy"], "None");
        assert_eq!(c["status"]["acceptedNames"]["shortNames"], json!(["rbi"]));
        assert_eq!(c["status"]["storedVersions"], json!(["v1alpha1"]));
        assert!(condition_true(&c, "Established"));
        let rs = served(&c);
        assert_eq!(rs.len(), 1);
        let r = rs[0];
        assert_eq!(
            (
                r.group,
                r.version,
                r.plural,
                r.kind,
                r.namespaced,
                r.has_status,
                r.custom
            ),
            (
                "rollbackd.io",
                "v1alpha1",
                "rollbackincidents",
                "RollbackIncident",
                true,
                true,
                true
            )
        );
        assert_eq!(r.short_names, ["rbi"]);
        assert_eq!(r.columns.len(), 2);
        // the same definition is the same resource, in any simulator
        assert!(std::ptr::eq(r, served(&settled(crd(), &[]))[0]));
        // no printer columns: the server's default Age column
        let mut plain = crd();
        plain["spec"]["versions"][0]
            .as_object_mut()
            .unwrap()
            .remove("additionalPrinterColumns");
        let r = served(&settled(plain, &[]))[0];
        assert_eq!(r.columns[0].name, "Age");
        assert_eq!(r.columns[0].kind, "date");
    }

    #[test]
    fn invalid_definitions_are_422_with_the_servers_words() {
        let mut c = crd();
        c["metadata"]["name"] = json!("incidents.rollbackd.io");
        c["spec"]["scope"] = json!("Everywhere");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = json!("text");
        apply_defaults(&mut c);
        let err = validate(&c, None).unwrap_err();
        assert_eq!((err.code(), err.reason()), (422, "Invalid"));
        let text = err.to_string();
        for part in [
            "CustomResourceDefinition.apiextensions.k8s.io \"incidents.rollbackd.io\" is invalid: [",
            "metadata.name: Invalid value: \"incidents.rollbackd.io\": must be spec.names.plural+\".\"+spec.group",
            "spec.scope: Unsupported value: \"Everywhere\": supported values: \"Cluster\", \"Namespaced\"",
            "spec.versions[0].additionalPrinterColumns[0].type: Invalid value: \"text\": must be one of boolean,date,integer,number,string",
            "must have exactly one version marked as storage version",
        ] {
            assert!(text.contains(part), "missing {part:?} in {text}");
        }
        let mut no_dot = crd();
        no_dot["spec"]["group"] = json!("rollbackd");
        no_dot["metadata"]["name"] = json!("rollbackincidents.rollbackd");
        apply_defaults(&mut no_dot);
        assert!(
            validate(&no_dot, None)
                .unwrap_err()
                .to_string()
                .contains("should be a domain with at least one dot")
        );
        let mut no_schema = crd();
        no_schema["spec"]["versions"][0]
            .as_object_mut()
            .unwrap()
            .remove("schema");
        apply_defaults(&mut no_schema);
        assert!(
            validate(&no_schema, None)
                .unwrap_err()
                .to_string()
                .contains(
                    "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"
                )
        );
    }

    #[test]
    fn updates_keep_identity_and_stored_versions() {
        let old = settled(crd(), &[]);
        let mut scope = old.clone();
        scope["spec"]["scope"] = json!("Cluster");
        let err = validate(&scope, Some(&old)).unwrap_err();
        assert!(
            err.to_string()
                .contains("spec.scope: Invalid value: \"Cluster\": field is immutable")
        );
        let mut moved = old.clone();
        moved["spec"]["versions"][0]["name"] = json!("v1");
        let err = validate(&moved, Some(&old)).unwrap_err();
        assert!(err.to_string().contains(
            "status.storedVersions[0]: Invalid value: \"v1alpha1\": missing from spec.versions"
        ));
        // a new storage version joins storedVersions; the old one stays
        let mut two = old.clone();
        two["spec"]["versions"][0]["storage"] = json!(false);
        let mut v1 = two["spec"]["versions"][0].clone();
        v1["name"] = json!("v1");
        v1["storage"] = json!(true);
        two["spec"]["versions"].as_array_mut().unwrap().push(v1);
        validate(&two, Some(&old)).unwrap();
        settle(&mut two, Some(&old), &[]);
        assert_eq!(two["status"]["storedVersions"], json!(["v1alpha1", "v1"]));
        assert_eq!(served(&two).len(), 2);
    }

    #[test]
    fn names_taken_by_another_definition_of_the_group_are_not_accepted() {
        let first = settled(crd(), &[]);
        let mut second = crd();
        second["metadata"]["name"] = json!("incidents.rollbackd.io");
        second["spec"]["names"]["plural"] = json!("incidents");
        second["spec"]["names"]["singular"] = json!("incident");
        let second = settled(second, &[first]);
        let conds = &second["status"]["conditions"];
        assert_eq!(conds[0]["status"], "False");
        // kind and listKind both clash; as in the naming controller, the last check wins
        assert_eq!(conds[0]["reason"], "ListKindConflict");
        assert_eq!(
            conds[0]["message"],
            "\"RollbackIncidentList\" is already in use"
        );
        assert!(second["status"]["acceptedNames"].get("kind").is_none());
        assert_eq!(conds[1]["reason"], "NotAccepted");
        assert!(served(&second).is_empty());
    }

    #[test]
    fn cells_follow_the_column_types() {
        let col = |kind: &'static str, path: &'static str| PrinterColumn {
            name: "c",
            kind,
            format: "",
            description: "",
            priority: 0,
            json_path: path,
        };
        let obj = json!({"spec": {"agent": "rollbackd", "n": 3, "f": 2.5, "ok": true, "m": {"a": 1}},
                         "metadata": {"creationTimestamp": ids::now()}});
        assert_eq!(cell(&col("string", ".spec.agent"), &obj), "rollbackd");
        assert_eq!(cell(&col("string", ".spec.n"), &obj), "3");
        assert_eq!(cell(&col("string", ".spec.m"), &obj), r#"{"a":1}"#);
        assert_eq!(cell(&col("integer", ".spec.f"), &obj), 2);
        assert_eq!(cell(&col("number", ".spec.n"), &obj), 3.0);
        assert_eq!(cell(&col("boolean", ".spec.ok"), &obj), true);
        assert_eq!(cell(&col("integer", ".spec.agent"), &obj), Value::Null);
        assert_eq!(cell(&col("string", ".status.state"), &obj), Value::Null);
        assert_eq!(
            cell(&col("date", ".metadata.creationTimestamp"), &obj),
            "0s"
        );
        assert_eq!(cell(&col("date", ".spec.agent"), &obj), "<invalid>");
    }
}
