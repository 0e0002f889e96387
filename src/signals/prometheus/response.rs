//! Decoding of the Prometheus HTTP API JSON answers into [`QueryResult`].

use chrono::{DateTime, TimeZone, Utc};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::error::PromError;

/// The `resultType` of a query answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultType {
    /// An instant vector: one sample per series.
    Vector,
    /// A single number without labels.
    Scalar,
    /// A range vector: many samples per series.
    Matrix,
}

/// One sample: a timestamp and a value (which may be NaN or ±Inf).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The evaluation timestamp of the sample.
    pub at: DateTime<Utc>,
    /// The sample value.
    pub value: f64,
}

/// One labelled series of a query answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series labels in the answer's order (empty for scalars and aggregated
    /// results). A list, not a map: a 10,000-series answer would spend most of its
    /// memory on map nodes.
    pub labels: Vec<(String, String)>,
    /// The value: the only sample for vectors and scalars, the last sample
    /// for matrices (NaN if a matrix series has no samples).
    pub value: f64,
    /// All samples, oldest first (one for vectors and scalars).
    pub points: Vec<Point>,
}

impl Series {
    /// The value of one label, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A decoded successful answer of `/api/v1/query` or `/api/v1/query_range`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The answer's `resultType`.
    pub result_type: ResultType,
    /// The series; empty when nothing matched (which is not an error).
    pub series: Vec<Series>,
    /// Warnings the server returned alongside the data (e.g. partial data from
    /// Thanos or Mimir). Never dropped.
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    status: String,
    #[serde(borrow)]
    data: Option<Data<'a>>,
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    result_type: String,
    /// Decoded once the type is known, straight from the text (no `Value` tree: a
    /// 10,000-series answer would cost ten times its size).
    #[serde(borrow)]
    result: &'a serde_json::value::RawValue,
}

type RawPoint = (f64, String);

#[derive(Deserialize)]
struct RawInstant {
    #[serde(default, deserialize_with = "label_pairs")]
    metric: Vec<(String, String)>,
    value: RawPoint,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(default, deserialize_with = "label_pairs")]
    metric: Vec<(String, String)>,
    #[serde(default)]
    values: Vec<RawPoint>,
}

/// A `metric` object's `label: value` pairs, in order.
fn label_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of label values")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(pair) = map.next_entry::<String, String>()? {
                pairs.push(pair);
            }
            Ok(pairs)
        }
    }
    d.deserialize_map(Pairs)
}

/// Parses a Prometheus sample value string: decimal numbers, `NaN`, `+Inf`, `-Inf`.
pub fn parse_sample_value(s: &str) -> Result<f64, PromError> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        other => other
            .parse::<f64>()
            .map_err(|_| PromError::Decode(format!("invalid sample value {other:?}"))),
    }
}

fn to_time(seconds: f64) -> Result<DateTime<Utc>, PromError> {
    if !seconds.is_finite() {
        return Err(PromError::Decode(format!("invalid timestamp {seconds}")));
    }
    // Prometheus timestamps have millisecond precision.
    let millis = (seconds * 1000.0).round();
    if millis.abs() > 8.0e15 {
        return Err(PromError::Decode(format!(
            "timestamp out of range {seconds}"
        )));
    }
    Utc.timestamp_millis_opt(millis as i64)
        .single()
        .ok_or_else(|| PromError::Decode(format!("timestamp out of range {seconds}")))
}

fn to_point(raw: &RawPoint) -> Result<Point, PromError> {
    Ok(Point {
        at: to_time(raw.0)?,
        value: parse_sample_value(&raw.1)?,
    })
}

fn decode_err(e: serde_json::Error) -> PromError {
    PromError::Decode(e.to_string())
}

/// Decodes an answer body given its HTTP status.
///
/// The API error envelope becomes [`PromError::Api`] whatever the status; a
/// non-2xx status whose body is not an envelope becomes [`PromError::Http`].
pub fn decode(status: u16, body: &str) -> Result<QueryResult, PromError> {
    let envelope: Envelope = match serde_json::from_str(body) {
        Ok(e) => e,
        Err(e) if (200..300).contains(&status) => return Err(decode_err(e)),
        Err(_) => {
            return Err(PromError::Http {
                status,
                body: body.chars().take(200).collect(),
            });
        }
    };
    if envelope.status != "success" {
        return Err(PromError::Api {
            error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
            message: envelope.error.unwrap_or_default(),
            status,
        });
    }
    if !(200..300).contains(&status) {
        return Err(PromError::Http {
            status,
            body: body.chars().take(200).collect(),
        });
    }
    let data = envelope
        .data
        .ok_or_else(|| PromError::Decode("success answer without data".into()))?;
    let (result_type, series) = match data.result_type.as_str() {
        "vector" => {
            let raw: Vec<RawInstant> =
                serde_json::from_str(data.result.get()).map_err(decode_err)?;
            let series = raw
                .into_iter()
                .map(|r| {
                    let p = to_point(&r.value)?;
                    Ok(Series {
                        labels: r.metric,
                        value: p.value,
                        points: vec![p],
                    })
                })
                .collect::<Result<Vec<_>, PromError>>()?;
            (ResultType::Vector, series)
        }
        "scalar" => {
            let raw: RawPoint = serde_json::from_str(data.result.get()).map_err(decode_err)?;
            let p = to_point(&raw)?;
            let series = vec![Series {
                labels: Vec::new(),
                value: p.value,
                points: vec![p],
            }];
            (ResultType::Scalar, series)
        }
        "matrix" => {
            let raw: Vec<RawRange> = serde_json::from_str(data.result.get()).map_err(decode_err)?;
            let series = raw
                .into_iter()
                .map(|r| {
                    let points = r
                        .values
                        .iter()
                        .map(to_point)
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Series {
                        labels: r.metric,
                        value: points.last().map_or(f64::NAN, |p| p.value),
                        points,
                    })
                })
                .collect::<Result<Vec<_>, PromError>>()?;
            (ResultType::Matrix, series)
        }
        other => {
            return Err(PromError::Decode(format!(
                "unsupported resultType {other:?}"
            )));
        }
    };
    Ok(QueryResult {
        result_type,
        series,
        warnings: envelope.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_with_special_values() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"a"},"value":[1700000000.5,"0.61"]},
            {"metric":{"job":"b"},"value":[1700000000.5,"NaN"]},
            {"metric":{"job":"c"},"value":[1700000000.5,"+Inf"]},
            {"metric":{"job":"d"},"value":[1700000000.5,"-Inf"]}]}}"#;
        let r = decode(200, body).unwrap();
        assert_eq!(r.result_type, ResultType::Vector);
        assert_eq!(r.series.len(), 4);
        assert_eq!(r.series[0].value, 0.61);
        assert_eq!(r.series[0].label("job"), Some("a"));
        assert_eq!(
            r.series[0].points[0].at.timestamp_millis(),
            1_700_000_000_500
        );
        assert!(r.series[1].value.is_nan());
        assert_eq!(r.series[2].value, f64::INFINITY);
        assert_eq!(r.series[3].value, f64::NEG_INFINITY);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn empty_vector_is_not_an_error() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let r = decode(200, body).unwrap();
        assert!(r.series.is_empty());
    }

    #[test]
    fn scalar() {
        let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1.0,"NaN"]}}"#;
        let r = decode(200, body).unwrap();
        assert_eq!(r.result_type, ResultType::Scalar);
        assert!(r.series[0].value.is_nan());
        assert!(r.series[0].labels.is_empty());
    }

    #[test]
    fn matrix_keeps_points_and_last_value() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"x":"1"},"values":[[1,"1"],[2,"2"],[3,"3.5"]]},
            {"metric":{"x":"2"},"values":[]}]}}"#;
        let r = decode(200, body).unwrap();
        assert_eq!(r.result_type, ResultType::Matrix);
        assert_eq!(r.series[0].points.len(), 3);
        assert_eq!(r.series[0].value, 3.5);
        assert!(r.series[1].value.is_nan());
    }

    #[test]
    fn warnings_are_kept() {
        let body = r#"{"status":"success","warnings":["partial response","store down"],
            "data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2"]}]}}"#;
        let r = decode(200, body).unwrap();
        assert_eq!(r.warnings, vec!["partial response", "store down"]);
        assert_eq!(r.series[0].value, 2.0);
    }

    #[test]
    fn error_envelope() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        match decode(400, body) {
            Err(PromError::Api {
                error_type,
                message,
                status,
            }) => {
                assert_eq!(error_type, "bad_data");
                assert_eq!(message, "parse error at char 5");
                assert_eq!(status, 400);
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = r#"{"status":"error","errorType":"unavailable","error":"not ready"}"#;
        assert!(matches!(
            decode(503, body),
            Err(PromError::Api { status: 503, .. })
        ));
    }

    #[test]
    fn non_json_errors() {
        assert!(matches!(
            decode(502, "<html>bad gateway</html>"),
            Err(PromError::Http { status: 502, .. })
        ));
        assert!(matches!(decode(200, "not json"), Err(PromError::Decode(_))));
        let bad_value = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#;
        assert!(matches!(decode(200, bad_value), Err(PromError::Decode(_))));
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(matches!(decode(200, string), Err(PromError::Decode(_))));
        let bad_time =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1e300,"1"]}}"#;
        assert!(matches!(decode(200, bad_time), Err(PromError::Decode(_))));
    }

    #[test]
    fn sample_values() {
        assert_eq!(parse_sample_value("1e3").unwrap(), 1000.0);
        assert_eq!(parse_sample_value("-0.5").unwrap(), -0.5);
        assert!(parse_sample_value("").is_err());
    }
}
