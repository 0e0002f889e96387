//! A small decoder for the Kubernetes protobuf wire format (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl 1.33 sends typed creates (`kubectl create deployment`, `kubectl run`, …) as
//! protobuf. This decodes the `k8s\0` envelope and the handful of built-in kinds kubectl
//! creates that way into the same JSON the JSON encoding would carry. Unknown fields are
//! skipped; empty strings, zero non-pointer integers and `false` are dropped like `omitempty`.

use serde_json::{Map, Value, json};

use super::status::ApiError;

/// The type of one protobuf field.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// string.
    Str,
    /// Integer that is a pointer in Go (kept even when zero).
    OptInt,
    /// Integer that is a plain value in Go (dropped when zero).
    Int,
    /// bool.
    Bool,
    /// Embedded message.
    Msg(&'static [F]),
    /// map<string,string>.
    StrMap,
    /// map<string,Quantity>.
    QtyMap,
    /// metav1.Time (dropped when zero).
    Time,
    /// intstr.IntOrString.
    IntOrStr,
}

/// One field of a message schema.
#[derive(Debug, Clone, Copy)]
struct F(u32, &'static str, Ty, bool);

const fn f(num: u32, name: &'static str, ty: Ty) -> F {
    F(num, name, ty, false)
}

const fn rep(num: u32, name: &'static str, ty: Ty) -> F {
    F(num, name, ty, true)
}

const OWNER_REF: &[F] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];
const OBJECT_META: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(11, "labels", Ty::StrMap),
    f(12, "annotations", Ty::StrMap),
    rep(13, "ownerReferences", Ty::Msg(OWNER_REF)),
    rep(14, "finalizers", Ty::Str),
];
const REQUIREMENT: &[F] = &[
    f(1, "key", Ty::Str),
    f(2, "operator", Ty::Str),
    rep(3, "values", Ty::Str),
];
const LABEL_SELECTOR: &[F] = &[
    f(1, "matchLabels", Ty::StrMap),
    rep(2, "matchExpressions", Ty::Msg(REQUIREMENT)),
];
const CONTAINER_PORT: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "hostPort", Ty::Int),
    f(3, "containerPort", Ty::Int),
    f(4, "protocol", Ty::Str),
    f(5, "hostIP", Ty::Str),
];
const ENV_VAR: &[F] = &[f(1, "name", Ty::Str), f(2, "value", Ty::Str)];
const RESOURCES: &[F] = &[f(1, "limits", Ty::QtyMap), f(2, "requests", Ty::QtyMap)];
const VOLUME_MOUNT: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "readOnly", Ty::Bool),
    f(3, "mountPath", Ty::Str),
    f(4, "subPath", Ty::Str),
];
const CONTAINER: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "image", Ty::Str),
    rep(3, "command", Ty::Str),
    rep(4, "args", Ty::Str),
    f(5, "workingDir", Ty::Str),
    rep(6, "ports", Ty::Msg(CONTAINER_PORT)),
    rep(7, "env", Ty::Msg(ENV_VAR)),
    f(8, "resources", Ty::Msg(RESOURCES)),
    rep(9, "volumeMounts", Ty::Msg(VOLUME_MOUNT)),
    f(13, "terminationMessagePath", Ty::Str),
    f(14, "imagePullPolicy", Ty::Str),
    f(16, "stdin", Ty::Bool),
    f(17, "stdinOnce", Ty::Bool),
    f(18, "tty", Ty::Bool),
    f(20, "terminationMessagePolicy", Ty::Str),
];
const POD_SPEC: &[F] = &[
    rep(2, "containers", Ty::Msg(CONTAINER)),
    f(3, "restartPolicy", Ty::Str),
    f(4, "terminationGracePeriodSeconds", Ty::OptInt),
    f(5, "activeDeadlineSeconds", Ty::OptInt),
    f(6, "dnsPolicy", Ty::Str),
    f(7, "nodeSelector", Ty::StrMap),
    f(8, "serviceAccountName", Ty::Str),
    f(10, "nodeName", Ty::Str),
    f(14, "securityContext", Ty::Msg(&[])),
    f(19, "schedulerName", Ty::Str),
    rep(20, "initContainers", Ty::Msg(CONTAINER)),
];
const POD_TEMPLATE: &[F] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(POD_SPEC)),
];
const ROLLING_UPDATE: &[F] = &[
    f(1, "maxUnavailable", Ty::IntOrStr),
    f(2, "maxSurge", Ty::IntOrStr),
];
const STRATEGY: &[F] = &[
    f(1, "type", Ty::Str),
    f(2, "rollingUpdate", Ty::Msg(ROLLING_UPDATE)),
];
const DEPLOYMENT_SPEC: &[F] = &[
    f(1, "replicas", Ty::OptInt),
    f(2, "selector", Ty::Msg(LABEL_SELECTOR)),
    f(3, "template", Ty::Msg(POD_TEMPLATE)),
    f(4, "strategy", Ty::Msg(STRATEGY)),
    f(5, "minReadySeconds", Ty::Int),
    f(6, "revisionHistoryLimit", Ty::OptInt),
    f(7, "paused", Ty::Bool),
    f(9, "progressDeadlineSeconds", Ty::OptInt),
];
const JOB_SPEC: &[F] = &[
    f(1, "parallelism", Ty::OptInt),
    f(2, "completions", Ty::OptInt),
    f(3, "activeDeadlineSeconds", Ty::OptInt),
    f(4, "selector", Ty::Msg(LABEL_SELECTOR)),
    f(6, "template", Ty::Msg(POD_TEMPLATE)),
    f(7, "backoffLimit", Ty::OptInt),
    f(8, "ttlSecondsAfterFinished", Ty::OptInt),
];
const SERVICE_PORT: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "protocol", Ty::Str),
    f(3, "port", Ty::Int),
    f(4, "targetPort", Ty::IntOrStr),
    f(5, "nodePort", Ty::Int),
];
const SERVICE_SPEC: &[F] = &[
    rep(1, "ports", Ty::Msg(SERVICE_PORT)),
    f(2, "selector", Ty::StrMap),
    f(3, "clusterIP", Ty::Str),
    f(4, "type", Ty::Str),
];
const EMPTY: &[F] = &[];
const QUANTITY: &[F] = &[f(1, "string", Ty::Str)];

fn with_spec(spec: &'static [F]) -> [F; 2] {
    [
        f(1, "metadata", Ty::Msg(OBJECT_META)),
        f(2, "spec", Ty::Msg(spec)),
    ]
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(msg: &str) -> ApiError {
    ApiError::BadRequest(format!("invalid protobuf body: {msg}"))
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let len = usize::try_from(self.varint()?).map_err(|_| bad("length overflow"))?;
        let end = self
            .pos
            .checked_add(len)
            .ok_or_else(|| bad("length overflow"))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| bad("truncated field"))?;
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u64) -> Result<(), ApiError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => Err(bad("unsupported wire type")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), ApiError> {
        if self.pos + n > self.buf.len() {
            return Err(bad("truncated fixed field"));
        }
        self.pos += n;
        Ok(())
    }
}

/// Decodes one message into a JSON object using `schema`.
fn message(buf: &[u8], schema: &[F]) -> Result<Map<String, Value>, ApiError> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Map::new();
    while r.pos < buf.len() {
        let tag = r.varint()?;
        let (num, wire) = ((tag >> 3) as u32, tag & 7);
        let Some(field) = schema.iter().find(|x| x.0 == num) else {
            r.skip(wire)?;
            continue;
        };
        let F(_, name, ty, repeated) = *field;
        let value = match ty {
            Ty::Int | Ty::OptInt | Ty::Bool if wire == 0 => {
                let v = r.varint()?;
                match ty {
                    Ty::Bool => json!(v != 0),
                    _ => json!(v as i64),
                }
            }
            Ty::Str => json!(String::from_utf8_lossy(r.bytes()?)),
            Ty::Msg(s) => Value::Object(message(r.bytes()?, s)?),
            Ty::StrMap | Ty::QtyMap => {
                let value_ty = match ty {
                    Ty::QtyMap => Ty::Msg(QUANTITY),
                    _ => Ty::Str,
                };
                let entry = message(
                    r.bytes()?,
                    &[F(1, "k", Ty::Str, true), F(2, "v", value_ty, true)],
                )?;
                let key = entry
                    .get("k")
                    .and_then(|k| k.get(0))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let mut v = entry
                    .get("v")
                    .and_then(|v| v.get(0))
                    .cloned()
                    .unwrap_or(json!(""));
                if let Some(q) = v.get("string").cloned() {
                    v = q;
                }
                let target = out.entry(name).or_insert_with(|| json!({}));
                if let Some(m) = target.as_object_mut() {
                    m.insert(key, v);
                }
                continue;
            }
            Ty::Time => {
                let t = message(r.bytes()?, &[f(1, "seconds", Ty::Int)])?;
                match t.get("seconds").and_then(Value::as_i64) {
                    Some(s) if s != 0 => json!(
                        chrono::DateTime::from_timestamp(s, 0)
                            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                            .unwrap_or_default()
                    ),
                    _ => continue,
                }
            }
            Ty::IntOrStr => {
                let m = message(
                    r.bytes()?,
                    &[
                        f(1, "type", Ty::Int),
                        f(2, "intVal", Ty::Int),
                        f(3, "strVal", Ty::Str),
                    ],
                )?;
                if m.get("type").and_then(Value::as_i64) == Some(1) {
                    m.get("strVal").cloned().unwrap_or(json!(""))
                } else {
                    m.get("intVal").cloned().unwrap_or(json!(0))
                }
            }
            _ => {
                r.skip(wire)?;
                continue;
            }
        };
        let omit = match (&value, ty) {
            (Value::String(s), Ty::Str) => s.is_empty() && !repeated,
            (Value::Bool(b), _) => !b,
            (Value::Number(n), Ty::Int) => n.as_i64() == Some(0),
            _ => false,
        };
        if omit {
            continue;
        }
        if repeated {
            let target = out.entry(name).or_insert_with(|| json!([]));
            if let Some(a) = target.as_array_mut() {
                a.push(value);
            }
        } else {
            out.insert(name.to_string(), value);
        }
    }
    Ok(out)
}

/// The schema of the top-level kinds kubectl creates with protobuf.
fn schema_for(kind: &str) -> Option<Vec<F>> {
    let spec: &'static [F] = match kind {
        "Deployment" => DEPLOYMENT_SPEC,
        "Pod" => POD_SPEC,
        "Job" => JOB_SPEC,
        "Service" => SERVICE_SPEC,
        "Namespace" => EMPTY,
        "ConfigMap" => {
            return Some(vec![
                f(1, "metadata", Ty::Msg(OBJECT_META)),
                f(2, "data", Ty::StrMap),
                f(4, "immutable", Ty::Bool),
            ]);
        }
        _ => return None,
    };
    Some(with_spec(spec).to_vec())
}

/// Decodes a protobuf request body (with the `k8s\0` envelope) into JSON.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let inner = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| bad("missing k8s envelope"))?;
    let mut r = Reader { buf: inner, pos: 0 };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while r.pos < inner.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => {
                let tm = message(
                    r.bytes()?,
                    &[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)],
                )?;
                api_version = tm
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                kind = tm
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
            }
            (2, 2) => raw = r.bytes()?,
            (_, wire) => r.skip(wire)?,
        }
    }
    let schema = schema_for(&kind).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "the simulator cannot decode protobuf for kind {kind:?}; send JSON"
        ))
    })?;
    let mut obj = message(raw, &schema)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a length-delimited field.
    fn ld(num: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(num << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = ld(1, b"cfg");
        let entry = [ld(1, b"k"), ld(2, b"v")].concat();
        let raw = [ld(1, &meta), ld(2, &entry)].concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &type_meta), ld(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["metadata"]["name"], "cfg");
        assert_eq!(v["data"]["k"], "v");
    }

    #[test]
    fn garbage_is_a_bad_request_not_a_panic() {
        let mut seed: u32 = 7;
        for len in 0..200 {
            let mut body = b"k8s\0".to_vec();
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                body.push((seed >> 16) as u8);
            }
            if let Err(e) = decode(&body) {
                assert!(matches!(e.code(), 400 | 415));
            }
        }
        assert_eq!(decode(b"{}").unwrap_err().code(), 400);
    }
}
