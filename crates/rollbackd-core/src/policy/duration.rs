//! Durations as operators write them in runbooks: `30s`, `15m`, `2h`, `1h30m`, `500ms`.

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer};

/// Parses `"1h30m"`-style text into a [`TimeDelta`]; units `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration (expected e.g. \"15m\", \"2h\", \"1h30m\")".into());
    }
    let mut total = TimeDelta::zero();
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number at {rest:?} (e.g. \"15m\", \"2h\")"
            ));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => TimeDelta::try_milliseconds(number),
            "s" => TimeDelta::try_seconds(number),
            "m" => TimeDelta::try_minutes(number),
            "h" => TimeDelta::try_hours(number),
            "d" => TimeDelta::try_days(number),
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit after {number} (use ms, s, m, h or d)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                ));
            }
        };
        total += part.ok_or_else(|| format!("invalid duration {text:?}: out of range"))?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it, e.g. `1h30m`, `20m5s`, `0s`.
pub fn format_duration(delta: TimeDelta) -> String {
    let negative = delta < TimeDelta::zero();
    let millis = delta.num_milliseconds().unsigned_abs();
    let (hours, minutes, seconds, ms) = (
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000,
    );
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || (ms == 0 && hours == 0 && minutes == 0) {
        out.push_str(&format!("{seconds}s"));
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

/// A policy duration field: deserializes from a string such as `"15m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub TimeDelta);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runbook_durations() {
        assert_eq!(parse_duration("15m"), Ok(TimeDelta::minutes(15)));
        assert_eq!(parse_duration("2h"), Ok(TimeDelta::hours(2)));
        assert_eq!(
            parse_duration("1h30m"),
            Ok(TimeDelta::minutes(90)),
            "compound durations add up"
        );
        assert_eq!(parse_duration("500ms"), Ok(TimeDelta::milliseconds(500)));
        assert_eq!(parse_duration("1d"), Ok(TimeDelta::days(1)));
    }

    #[test]
    fn rejects_bad_units_and_shapes() {
        for bad in ["15x", "15", "m", "", "1h 30m", "-5m", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be rejected");
        }
        let message = parse_duration("15x").unwrap_err();
        assert!(message.contains("unknown unit \"x\""), "{message}");
    }

    #[test]
    fn formats_round_trip() {
        for text in ["15m", "2h", "1h30m", "20m5s", "0s", "500ms", "4h"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(format_duration(parsed), text);
        }
    }
}
