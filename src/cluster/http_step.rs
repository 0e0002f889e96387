//! `http`: call an agent's API (GL-001 isolate, config reload). `{name}` placeholders in
//! the URL and body come from the run's variables; a missing one fails before any request.
//! Values put into the URL are percent-encoded (they can come from alert labels), and every
//! request carries `Idempotency-Key: <incident>/<method>/<step index>`, so a step re-sent
//! after a crash can be recognised by its receiver.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::ClusterError;
use super::annotate::{ActionMeta, ActionOutcome, step_id};
use crate::text::truncate_in_place;

/// Most bytes of an answer body kept in a step's detail or error.
const SNIPPET_LIMIT: usize = 2000;

/// Replaces `{name}` placeholders; `{{`/`}}` are literal braces. Unknown names are errors.
pub fn fill(template: &str, vars: &BTreeMap<String, String>) -> Result<String, ClusterError> {
    fill_with(template, vars, |_, v| Ok(v.to_string()))
}

/// [`fill`] for a URL: each value is percent-encoded as one path or query component, so a
/// label such as `a/../../admin?x=1` cannot change the path or add a query. A value of `.`
/// or `..` (a whole "go up" segment even when encoded) is refused.
pub fn fill_url(template: &str, vars: &BTreeMap<String, String>) -> Result<String, ClusterError> {
    fill_with(template, vars, |name, v| {
        if v == "." || v == ".." {
            return Err(ClusterError::InvalidStep(format!(
                "variable {{{name}}} is {v:?}, which would change the URL's path"
            )));
        }
        Ok(percent_encode(v))
    })
}

/// Percent-encodes every byte except RFC 3986's unreserved characters.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn fill_with(
    template: &str,
    vars: &BTreeMap<String, String>,
    value_of: impl Fn(&str, &str) -> Result<String, ClusterError>,
) -> Result<String, ClusterError> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for n in chars.by_ref() {
                    if n == '}' {
                        closed = true;
                        break;
                    }
                    name.push(n);
                }
                if !closed {
                    return Err(ClusterError::InvalidStep(format!(
                        "unclosed placeholder in {template:?}"
                    )));
                }
                let v = vars.get(&name).ok_or_else(|| {
                    ClusterError::InvalidStep(format!(
                        "missing variable {{{name}}} in {template:?}"
                    ))
                })?;
                out.push_str(&value_of(&name, v)?);
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn fill_value(v: &Value, vars: &BTreeMap<String, String>) -> Result<Value, ClusterError> {
    Ok(match v {
        Value::String(s) => Value::String(fill(s, vars)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| fill_value(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), fill_value(x, vars)?)))
                .collect::<Result<_, ClusterError>>()?,
        ),
        other => other.clone(),
    })
}

/// The first [`SNIPPET_LIMIT`] bytes of an answer, cut on a character boundary; the rest
/// is not read (an agent's answer can be any size).
async fn body_start(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    // one character past the limit, so the cut can tell a split character from the end
    while body.len() <= SNIPPET_LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(SNIPPET_LIMIT + 4);
    let mut text = String::from_utf8_lossy(&body).into_owned();
    truncate_in_place(&mut text, SNIPPET_LIMIT);
    text
}

/// Plans or makes the call; success iff the status equals `expect_status`.
#[allow(clippy::too_many_arguments)]
pub async fn http_call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<&Value>,
    expect_status: u16,
    vars: &BTreeMap<String, String>,
    timeout: Duration,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let url = fill_url(url, vars)?;
    let body = body.map(|b| fill_value(b, vars)).transpose()?;
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())
        .map_err(|_| ClusterError::InvalidStep(format!("invalid HTTP method {method:?}")))?;
    if meta.dry_run {
        return Ok(ActionOutcome::Planned {
            plan: json!({"request": format!("{m} {url}"), "body": body, "expect_status": expect_status}),
        });
    }
    let idempotency_key = step_id(&meta.incident, &meta.method, meta.step_index);
    let mut req = client
        .request(m.clone(), &url)
        .timeout(timeout)
        .header("Idempotency-Key", &idempotency_key);
    if let Some(b) = &body {
        req = req.json(b);
    }
    let err = |message: String| ClusterError::Http {
        method: m.to_string(),
        url: url.clone(),
        message,
    };
    let resp = req.send().await.map_err(|e| err(e.to_string()))?;
    let status = resp.status().as_u16();
    let snippet = body_start(resp).await;
    if status != expect_status {
        return Err(err(format!(
            "status {status}, expected {expect_status}: {snippet}"
        )));
    }
    Ok(ActionOutcome::Done {
        detail: json!({"url": url, "status": status, "body": snippet, "idempotency_key": idempotency_key}),
    })
}
