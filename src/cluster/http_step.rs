//! `http`: call an agent's API (GL-001 isolate, config reload). `{name}` placeholders in
//! the URL and body come from the run's variables; a missing one fails before any request.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::ClusterError;
use super::annotate::{ActionMeta, ActionOutcome};

/// Replaces `{name}` placeholders; `{{`/`}}` are literal braces. Unknown names are errors.
pub fn fill(template: &str, vars: &BTreeMap<String, String>) -> Result<String, ClusterError> {
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
                out.push_str(v);
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
    let url = fill(url, vars)?;
    let body = body.map(|b| fill_value(b, vars)).transpose()?;
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())
        .map_err(|_| ClusterError::InvalidStep(format!("invalid HTTP method {method:?}")))?;
    if meta.dry_run {
        return Ok(ActionOutcome::Planned {
            plan: json!({"request": format!("{m} {url}"), "body": body, "expect_status": expect_status}),
        });
    }
    let mut req = client.request(m.clone(), &url).timeout(timeout);
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
    let text = resp.text().await.unwrap_or_default();
    let mut snippet = text.clone();
    snippet.truncate(2000);
    if status != expect_status {
        return Err(err(format!(
            "status {status}, expected {expect_status}: {snippet}"
        )));
    }
    Ok(ActionOutcome::Done {
        detail: json!({"url": url, "status": status, "body": snippet}),
    })
}
