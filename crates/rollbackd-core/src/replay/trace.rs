//! The trace format: JSON lines, each a set of signal samples or one event.
//!
//! ```text
//! {"at": "2025-11-17T14:30:00Z", "event": "deploy", "revision": 12}
//! {"at": "2025-11-17T14:31:00Z", "signals": {"error_rate": 0.35, "latency_p95": null}}
//! {"at": "2025-11-17T14:32:00Z", "event": "alert_firing", "labels": {"condition": "data_corruption"}}
//! {"at": "2025-11-17T14:32:30Z", "event": "rollout", "phase": "progressing"}
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::engine::RolloutPhase;

/// A problem in a trace file, with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TraceError {
    /// The trace file.
    pub file: PathBuf,
    /// 1-based line number (0 when the file cannot be read).
    pub line: usize,
    /// The JSON field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.field,
            self.message
        )
    }
}

/// What one trace line says.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// Signal values; `None` is no data.
    Signals(BTreeMap<String, Option<f64>>),
    /// `"event": "deploy"`: a new revision opens the post-deploy window.
    Deploy {
        /// The deploy's revision number (`revision`).
        revision: Option<u64>,
        /// The deployed image (`image`).
        image: Option<String>,
        /// Baselines given outright (`baselines`); they win over baselines computed from samples.
        baselines: BTreeMap<String, f64>,
        /// Values just before the deploy, as a source would give them.
        pre_deploy: BTreeMap<String, f64>,
    },
    /// `"event": "alert_firing"`: an Alertmanager alert started firing.
    AlertFiring {
        /// The alert's labels (`labels`).
        labels: BTreeMap<String, String>,
        /// The alert's identity across deliveries (`fingerprint`; default: the sorted labels).
        fingerprint: Option<String>,
        /// Alertmanager's `startsAt` (default: the line's time).
        starts_at: Option<DateTime<Utc>>,
    },
    /// The workload's rollout phase (`None`: could not be read).
    Rollout {
        /// `progressing`, `complete` or `stalled`.
        phase: Option<RolloutPhase>,
    },
    /// `"event": "alert_resolved"`: an Alertmanager alert resolved.
    AlertResolved {
        /// The alert's labels (`labels`).
        labels: BTreeMap<String, String>,
        /// The alert's identity across deliveries (`fingerprint`; default: the sorted labels).
        fingerprint: Option<String>,
    },
    /// `"event": "approved"`: a human approved a rollback of the current deploy.
    Approved {
        /// Who approved (`by`).
        by: Option<String>,
        /// The row approved (`row`).
        row: Option<String>,
    },
    /// `"event": "rolled_back"`: the current deploy was rolled back.
    RolledBack {
        /// The revision recorded with the rollback (`revision`).
        revision: Option<u64>,
    },
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The line's time (`at`).
    pub at: DateTime<Utc>,
    /// What the line says.
    pub entry: Entry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    at: Value,
    signals: Option<BTreeMap<String, Value>>,
    event: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    fingerprint: Option<String>,
    revision: Option<u64>,
    image: Option<String>,
    baselines: Option<BTreeMap<String, f64>>,
    pre_deploy: Option<BTreeMap<String, f64>>,
    starts_at: Option<String>,
    phase: Option<String>,
    by: Option<String>,
    row: Option<String>,
}

/// The event names a trace may use.
pub const EVENTS: [&str; 6] = [
    "deploy",
    "alert_firing",
    "alert_resolved",
    "approved",
    "rolled_back",
    "rollout",
];

/// Reads and parses a trace file.
pub fn read_trace(file: &Path) -> Result<Vec<TraceLine>, TraceError> {
    let text = std::fs::read_to_string(file).map_err(|e| TraceError {
        file: file.to_path_buf(),
        line: 0,
        field: "(file)".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse_trace(file, &text)
}

/// Parses trace text; blank lines are skipped; times must not go backwards.
pub fn parse_trace(file: &Path, text: &str) -> Result<Vec<TraceLine>, TraceError> {
    let mut out: Vec<TraceLine> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let err = |field: &str, message: String| TraceError {
            file: file.to_path_buf(),
            line: i + 1,
            field: field.to_string(),
            message,
        };
        let line = parse_line(raw).map_err(|(field, message)| err(&field, message))?;
        if let Some(prev) = out.last()
            && line.0 < prev.at
        {
            return Err(err(
                "at",
                format!(
                    "goes back in time ({} after {}): traces must be in time order",
                    line.0.to_rfc3339(),
                    prev.at.to_rfc3339()
                ),
            ));
        }
        out.push(TraceLine {
            line: i + 1,
            at: line.0,
            entry: line.1,
        });
    }
    Ok(out)
}

type FieldError = (String, String);

fn parse_line(raw: &str) -> Result<(DateTime<Utc>, Entry), FieldError> {
    let line: RawLine = serde_json::from_str(raw).map_err(|e| {
        let message = e.to_string();
        let field = message
            .split('`')
            .nth(1)
            .map_or("(line)".to_string(), str::to_string);
        (field, message)
    })?;
    let at = match &line.at {
        Value::String(s) => rfc3339(s, "at")?,
        other => {
            return Err((
                "at".into(),
                format!("expected an RFC 3339 string, got {other}"),
            ));
        }
    };
    let entry = match (line.signals, line.event.as_deref()) {
        (Some(_), Some(_)) => {
            return Err((
                "event".into(),
                "a line has either signals or an event, not both".into(),
            ));
        }
        (None, None) => return Err(("(line)".into(), "needs \"signals\" or \"event\"".into())),
        (Some(signals), None) => Entry::Signals(parse_signals(signals)?),
        (None, Some(event)) => {
            let labels = line.labels.unwrap_or_default();
            match event {
                "deploy" => Entry::Deploy {
                    revision: line.revision,
                    image: line.image,
                    baselines: line.baselines.unwrap_or_default(),
                    pre_deploy: line.pre_deploy.unwrap_or_default(),
                },
                "alert_firing" => Entry::AlertFiring {
                    labels,
                    fingerprint: line.fingerprint,
                    starts_at: line
                        .starts_at
                        .as_deref()
                        .map(|s| rfc3339(s, "starts_at"))
                        .transpose()?,
                },
                "rollout" => Entry::Rollout {
                    phase: match line.phase.as_deref() {
                        None => None,
                        Some("progressing") => Some(RolloutPhase::Progressing),
                        Some("complete") => Some(RolloutPhase::Complete),
                        Some("stalled") => Some(RolloutPhase::Stalled),
                        Some(other) => {
                            return Err((
                                "phase".into(),
                                format!(
                                    "unknown rollout phase {other:?} (expected progressing, complete or stalled)"
                                ),
                            ));
                        }
                    },
                },
                "alert_resolved" => Entry::AlertResolved {
                    labels,
                    fingerprint: line.fingerprint,
                },
                "approved" => Entry::Approved {
                    by: line.by,
                    row: line.row,
                },
                "rolled_back" => Entry::RolledBack {
                    revision: line.revision,
                },
                other => {
                    return Err((
                        "event".into(),
                        format!(
                            "unknown event {other:?} (expected one of {})",
                            EVENTS.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    Ok((at, entry))
}

fn rfc3339(text: &str, field: &str) -> Result<DateTime<Utc>, FieldError> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            (
                field.to_string(),
                format!("{text:?} is not an RFC 3339 time: {e}"),
            )
        })
}

fn parse_signals(
    signals: BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Option<f64>>, FieldError> {
    signals
        .into_iter()
        .map(|(name, value)| {
            let parsed = match &value {
                Value::Null => None,
                Value::Number(n) => n.as_f64(),
                Value::String(s) => match s.as_str() {
                    "NaN" => None,
                    "+Inf" | "Inf" => Some(f64::INFINITY),
                    "-Inf" => Some(f64::NEG_INFINITY),
                    _ => return Err((format!("signals.{name}"), format!("expected a number, null, \"NaN\", \"+Inf\" or \"-Inf\", got {value}"))),
                },
                _ => return Err((format!("signals.{name}"), format!("expected a number, null, \"NaN\", \"+Inf\" or \"-Inf\", got {value}"))),
            };
            Ok((name, parsed))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<TraceLine>, TraceError> {
        parse_trace(Path::new("t.jsonl"), text)
    }

    #[test]
    fn parses_samples_and_events() {
        let lines = parse(concat!(
            "{\"at\":\"2025-11-17T14:30:00Z\",\"event\":\"deploy\",\"revision\":12}\n",
            "\n",
            "{\"at\":\"2025-11-17T14:31:00Z\",\"signals\":{\"error_rate\":0.35,\"latency_p95\":null,\"x\":\"+Inf\"}}\n",
        ))
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].line, 3);
        let Entry::Signals(s) = &lines[1].entry else {
            panic!("signals expected")
        };
        assert_eq!(s["error_rate"], Some(0.35));
        assert_eq!(s["latency_p95"], None);
        assert_eq!(s["x"], Some(f64::INFINITY));
    }

    #[test]
    fn errors_name_line_and_field() {
        let err = parse("{\"at\":\"2025-11-17T14:30:00Z\",\"event\":\"deploy\"}\n{\"at\":\"yesterday\",\"signals\":{}}").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (2, "at"));
        let err = parse("{\"at\":\"2025-11-17T14:30:00Z\",\"signals\":{\"error_rate\":\"high\"}}")
            .unwrap_err();
        assert_eq!(err.field, "signals.error_rate");
        let err = parse("{\"at\":\"2025-11-17T14:30:00Z\",\"event\":\"deploy\",\"revison\":3}")
            .unwrap_err();
        assert_eq!(err.field, "revison", "{err}");
        let err = parse("{\"at\":\"2025-11-17T14:30:00Z\",\"event\":\"deployed\"}").unwrap_err();
        assert!(err.message.contains("unknown event"), "{err}");
        let err = parse("{\"at\":\"2025-11-17T14:30:00Z\",\"signals\":{}}\n{\"at\":\"2025-11-17T14:29:00Z\",\"signals\":{}}").unwrap_err();
        assert!(err.message.contains("back in time"), "{err}");
        let err = parse("not json").unwrap_err();
        assert_eq!(err.line, 1);
    }
}
