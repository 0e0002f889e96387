//! A tiny PromQL series selector: `name{label="v",label!="v",label=~"re",label!~"re"}`.
//!
//! Regular expressions are fully anchored, as in Prometheus. A label that a
//! series does not have matches as the empty string.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use regex::Regex;
use thiserror::Error;

/// Why a selector could not be parsed. Positions are byte offsets into the input.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SelectorError {
    /// The selector has neither a metric name nor a matcher.
    #[error("empty selector: give a metric name or at least one label matcher")]
    Empty,
    /// Something other than what the grammar allows at this position.
    #[error("at position {position}: expected {expected}, found {found}")]
    Unexpected {
        /// Byte offset of the offending character.
        position: usize,
        /// What the parser expected there.
        expected: &'static str,
        /// What it found (a quoted character or "end of input").
        found: String,
    },
    /// A quoted string has no closing quote.
    #[error("at position {position}: unterminated string")]
    UnterminatedString {
        /// Byte offset of the opening quote.
        position: usize,
    },
    /// A `=~`/`!~` value is not a valid regular expression.
    #[error("at position {position}: invalid regex: {message}")]
    InvalidRegex {
        /// Byte offset of the regex string.
        position: usize,
        /// The regex engine's complaint.
        message: String,
    },
}

impl SelectorError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SelectorError::Empty => "selector_empty",
            SelectorError::Unexpected { .. } => "selector_syntax",
            SelectorError::UnterminatedString { .. } => "selector_syntax",
            SelectorError::InvalidRegex { .. } => "selector_regex",
        }
    }
}

/// The comparison of a label matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// One `label op "value"` matcher.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value as written (unescaped).
    pub value: String,
    regex: Option<Regex>,
}

impl LabelMatcher {
    /// Builds a matcher; compiles (anchored) regexes.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, regex::Error> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Regex::new(&format!("^(?:{value})$"))?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Whether a label value (empty when the label is absent) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            // Unreachable by construction; treat as non-matching.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether a series' labels satisfy the matcher.
    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches(labels.get(&self.name).map_or("", String::as_str))
    }
}

/// A parsed series selector.
#[derive(Debug, Clone)]
pub struct Selector {
    /// The metric name, if given before the braces.
    pub name: Option<String>,
    /// The label matchers (a `__name__` matcher applies to the metric name).
    pub matchers: Vec<LabelMatcher>,
}

impl Selector {
    /// Parses a selector such as `http_requests_total{status=~"5.."}`.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        Parser { input, pos: 0 }.selector()
    }

    /// The label matchers, for APIs that take matchers without a name.
    pub fn matchers(&self) -> &[LabelMatcher] {
        &self.matchers
    }

    /// Whether a series with this metric name and labels is selected.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.name.as_deref().is_some_and(|n| n != name) {
            return false;
        }
        self.matchers.iter().all(|m| {
            if m.name == "__name__" {
                m.matches(name)
            } else {
                m.matches_labels(labels)
            }
        })
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn unexpected(&self, expected: &'static str) -> SelectorError {
        SelectorError::Unexpected {
            position: self.pos,
            expected,
            found: self
                .peek()
                .map_or_else(|| "end of input".to_string(), |c| format!("{c:?}")),
        }
    }

    /// An identifier; `colons` allows `:` (metric names, not label names).
    fn ident(&mut self, colons: bool) -> Option<&str> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == '_'
                || (colons && c == ':')
                || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.input[start..self.pos])
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        self.skip_ws();
        let name = self.ident(true).map(str::to_string);
        self.skip_ws();
        let mut matchers = Vec::new();
        if self.peek() == Some('{') {
            self.pos += 1;
            loop {
                self.skip_ws();
                if self.peek() == Some('}') {
                    self.pos += 1;
                    break;
                }
                matchers.push(self.matcher()?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some('}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.unexpected("',' or '}'")),
                }
            }
            self.skip_ws();
        }
        if self.pos < self.input.len() {
            let expected = if name.is_none() && matchers.is_empty() {
                "a metric name or '{'"
            } else {
                "end of selector"
            };
            return Err(self.unexpected(expected));
        }
        if name.is_none() && matchers.is_empty() {
            return Err(SelectorError::Empty);
        }
        Ok(Selector { name, matchers })
    }

    fn matcher(&mut self) -> Result<LabelMatcher, SelectorError> {
        let Some(label) = self.ident(false).map(str::to_string) else {
            return Err(self.unexpected("a label name"));
        };
        self.skip_ws();
        let rest = &self.input[self.pos..];
        let op = if rest.starts_with("=~") {
            MatchOp::Regex
        } else if rest.starts_with("!=") {
            MatchOp::NotEqual
        } else if rest.starts_with("!~") {
            MatchOp::NotRegex
        } else if rest.starts_with('=') {
            MatchOp::Equal
        } else {
            return Err(self.unexpected("one of '=', '!=', '=~', '!~'"));
        };
        self.pos += if op == MatchOp::Equal { 1 } else { 2 };
        self.skip_ws();
        let value_pos = self.pos;
        let value = self.string()?;
        LabelMatcher::new(&label, op, &value).map_err(|e| SelectorError::InvalidRegex {
            position: value_pos,
            message: e.to_string(),
        })
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        let start = self.pos;
        let quote = match self.peek() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => return Err(self.unexpected("a quoted string")),
        };
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.input[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + 1;
                return Ok(out);
            }
            if c == '\\' && quote != '`' {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' | '"' | '\'' => out.push(e),
                    // Keep unknown escapes verbatim so regexes like `\d` survive.
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            } else {
                out.push(c);
            }
        }
        Err(SelectorError::UnterminatedString { position: start })
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
    fn parses_all_operators() {
        let s = Selector::parse(r#" x_total { a="1", b!='2' ,c=~"5..", d!~`4\d\d`, } "#).unwrap();
        assert_eq!(s.name.as_deref(), Some("x_total"));
        let ops: Vec<MatchOp> = s.matchers.iter().map(|m| m.op).collect();
        assert_eq!(
            ops,
            vec![
                MatchOp::Equal,
                MatchOp::NotEqual,
                MatchOp::Regex,
                MatchOp::NotRegex
            ]
        );
        assert_eq!(s.matchers[3].value, r"4\d\d");
        assert!(s.matches(
            "x_total",
            &labels(&[("a", "1"), ("c", "500"), ("d", "200")])
        ));
        assert!(!s.matches("x_total", &labels(&[("a", "1"), ("c", "5000")])));
        assert!(!s.matches("x_total", &labels(&[("a", "1"), ("b", "2"), ("c", "500")])));
        assert!(!s.matches("y_total", &labels(&[("a", "1"), ("c", "500")])));
    }

    #[test]
    fn regex_is_anchored_and_missing_label_is_empty() {
        let s = Selector::parse(r#"x{status=~"5.*"}"#).unwrap();
        assert!(!s.matches("x", &labels(&[("status", "250")])));
        let s = Selector::parse(r#"x{pod=""}"#).unwrap();
        assert!(s.matches("x", &labels(&[])));
        let s = Selector::parse(r#"x{a=~"x|"}"#).unwrap();
        assert!(s.matches("x", &labels(&[])));
    }

    #[test]
    fn name_only_and_matchers_only() {
        assert!(Selector::parse("up").unwrap().matchers.is_empty());
        let s = Selector::parse(r#"{__name__=~"a_.*",job="j"}"#).unwrap();
        assert!(s.name.is_none());
        assert!(s.matches("a_b", &labels(&[("job", "j")])));
        assert!(!s.matches("b_b", &labels(&[("job", "j")])));
        let s = Selector::parse(r#"{x="a\"b\\c"}"#).unwrap();
        assert_eq!(s.matchers[0].value, "a\"b\\c");
    }

    #[test]
    fn errors_name_the_position() {
        assert!(matches!(Selector::parse(""), Err(SelectorError::Empty)));
        assert!(matches!(Selector::parse("{}"), Err(SelectorError::Empty)));
        let e = Selector::parse(r#"x{a="1" b="2"}"#).unwrap_err();
        assert_eq!(
            e,
            SelectorError::Unexpected {
                position: 8,
                expected: "',' or '}'",
                found: "'b'".into()
            }
        );
        assert!(e.to_string().contains("position 8"));
        let e = Selector::parse(r#"x{a=="1"}"#).unwrap_err();
        assert!(matches!(e, SelectorError::Unexpected { position: 4, .. }));
        let e = Selector::parse(r#"x{a~"1"}"#).unwrap_err();
        assert!(matches!(e, SelectorError::Unexpected { position: 3, .. }));
        let e = Selector::parse(r#"x{a="1}"#).unwrap_err();
        assert_eq!(e, SelectorError::UnterminatedString { position: 4 });
        let e = Selector::parse(r#"x{a=~"(", b="c"}"#).unwrap_err();
        assert!(matches!(e, SelectorError::InvalidRegex { position: 5, .. }));
        assert_eq!(e.metric_label(), "selector_regex");
        let e = Selector::parse("x y").unwrap_err();
        assert!(matches!(e, SelectorError::Unexpected { position: 2, .. }));
        let e = Selector::parse(r#"x{1a="1"}"#).unwrap_err();
        assert!(matches!(e, SelectorError::Unexpected { position: 2, .. }));
        let e = Selector::parse(r#"x{a="1""#).unwrap_err();
        assert!(matches!(e, SelectorError::Unexpected { position: 7, .. }));
        assert!(Selector::parse("é").is_err());
        assert!(Selector::parse(r#"x{a="\"#).is_err());
    }
}
