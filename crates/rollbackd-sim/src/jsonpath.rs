//! The JSONPath dialect of Kubernetes (`k8s.io/client-go/util/jsonpath`), as far as printer
//! columns of CustomResourceDefinitions use it: `.spec.agent`, `.items[0].name`,
//! `.metadata.labels['app.kubernetes.io/name']`, `.status.conditions[?(@.type=="Ready")].status`,
//! `[*]`, `.*`, `..name`, unions (`[0,2]`, `['a','b']`) and slices (`[1:3]`, `[-1:]`).
//!
//! Missing keys give no result rather than an error, as with `AllowMissingKeys(true)`,
//! which the API server sets for printer columns.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// A JSONPath that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// A comparison in a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `.name` or `['name']`.
    Field(String),
    /// `['a','b']`.
    Fields(Vec<String>),
    /// `.*` or `[*]`: every value of an object or element of an array.
    Wildcard,
    /// `..name`: every value under that key, at any depth.
    Recursive(String),
    /// `[n]`, `[n,m]` (negative counts from the end).
    Indexes(Vec<i64>),
    /// `[start:end]`, `[start:end:step]`.
    Slice(Option<i64>, Option<i64>, i64),
    /// `[?(@.a.b)]` (`op` None: the path exists) or `[?(@.a op literal)]`.
    Filter(Vec<Step>, Option<(Op, Value)>),
}

/// A parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, what: &str) -> ParseError {
        ParseError(format!(
            "{what} at position {} in {:?}",
            self.pos, self.text
        ))
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// A field name after `.`: up to the next `.`, `[`, or (inside a filter) a space or
    /// comparison.
    fn name(&mut self) -> Result<String, ParseError> {
        let end = self
            .rest()
            .find(|c: char| ".[]()=!<> ,".contains(c))
            .unwrap_or(self.rest().len());
        if end == 0 {
            return Err(self.error("expected a field name"));
        }
        let name = self.rest()[..end].to_string();
        self.pos += end;
        Ok(name)
    }

    fn quoted(&mut self) -> Result<String, ParseError> {
        let quote = self.peek().ok_or_else(|| self.error("expected a quote"))?;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, next)) = chars.next() {
                        out.push(next);
                    }
                }
                c if c == quote => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.error("unterminated string"))
    }

    fn integer(&mut self) -> Result<Option<i64>, ParseError> {
        self.skip_spaces();
        let end = self
            .rest()
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
            .map_or(self.rest().len(), |(i, _)| i);
        if end == 0 {
            return Ok(None);
        }
        let n = self.rest()[..end]
            .parse()
            .map_err(|_| self.error("expected a number"))?;
        self.pos += end;
        self.skip_spaces();
        Ok(Some(n))
    }

    fn literal(&mut self) -> Result<Value, ParseError> {
        self.skip_spaces();
        match self.peek() {
            Some('\'' | '"') => Ok(Value::String(self.quoted()?)),
            _ => {
                let end = self
                    .rest()
                    .find(|c: char| c == ')' || c.is_whitespace())
                    .unwrap_or(self.rest().len());
                let word = &self.rest()[..end];
                let value = match word {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "nil" | "null" => Value::Null,
                    w => serde_json::from_str::<serde_json::Number>(w)
                        .map(Value::Number)
                        .map_err(|_| self.error("expected a literal"))?,
                };
                self.pos += end;
                Ok(value)
            }
        }
    }

    /// Steps until `stop` (end of text, or `)` / a comparison inside a filter).
    fn steps(&mut self, in_filter: bool) -> Result<Vec<Step>, ParseError> {
        let mut steps = Vec::new();
        loop {
            if in_filter {
                self.skip_spaces();
            }
            match self.peek() {
                None => return Ok(steps),
                Some(')' | '=' | '!' | '<' | '>') if in_filter => return Ok(steps),
                Some('.') => {
                    if self.eat("..") {
                        steps.push(Step::Recursive(self.name()?));
                    } else {
                        self.pos += 1;
                        if self.eat("*") {
                            steps.push(Step::Wildcard);
                        } else if self.peek().is_some_and(|c| c != '[') {
                            steps.push(Step::Field(self.name()?));
                        }
                    }
                }
                Some('[') => {
                    self.pos += 1;
                    steps.push(self.bracket()?);
                }
                Some(_) => return Err(self.error("unexpected character")),
            }
        }
    }

    fn bracket(&mut self) -> Result<Step, ParseError> {
        self.skip_spaces();
        let step = match self.peek() {
            Some('*') => {
                self.pos += 1;
                Step::Wildcard
            }
            Some('?') => {
                self.pos += 1;
                if !self.eat("(") {
                    return Err(self.error("expected ( after ?"));
                }
                self.skip_spaces();
                if !self.eat("@") {
                    return Err(self.error("a filter starts with @"));
                }
                let path = self.steps(true)?;
                self.skip_spaces();
                let op = [
                    ("==", Op::Eq),
                    ("!=", Op::Ne),
                    ("<=", Op::Le),
                    (">=", Op::Ge),
                    ("<", Op::Lt),
                    (">", Op::Gt),
                ]
                .into_iter()
                .find(|(s, _)| self.eat(s))
                .map(|(_, op)| op);
                let compare = match op {
                    Some(op) => Some((op, self.literal()?)),
                    None => None,
                };
                self.skip_spaces();
                if !self.eat(")") {
                    return Err(self.error("expected ) to end the filter"));
                }
                Step::Filter(path, compare)
            }
            Some('\'' | '"') => {
                let mut names = vec![self.quoted()?];
                loop {
                    self.skip_spaces();
                    if !self.eat(",") {
                        break;
                    }
                    self.skip_spaces();
                    names.push(self.quoted()?);
                }
                if names.len() == 1 {
                    Step::Field(names.remove(0))
                } else {
                    Step::Fields(names)
                }
            }
            _ => {
                let first = self.integer()?;
                if self.eat(":") {
                    let end = self.integer()?;
                    let step = if self.eat(":") {
                        self.integer()?.unwrap_or(1)
                    } else {
                        1
                    };
                    if step == 0 {
                        return Err(self.error("a slice step cannot be 0"));
                    }
                    Step::Slice(first, end, step)
                } else {
                    let mut indexes = vec![first.ok_or_else(|| self.error("expected an index"))?];
                    while self.eat(",") {
                        indexes.push(
                            self.integer()?
                                .ok_or_else(|| self.error("expected an index"))?,
                        );
                    }
                    Step::Indexes(indexes)
                }
            }
        };
        self.skip_spaces();
        if !self.eat("]") {
            return Err(self.error("expected ]"));
        }
        Ok(step)
    }
}

impl JsonPath {
    /// Parses a path such as `.status.conditions[?(@.type=="Ready")].status` (surrounding
    /// `{}` are allowed, as in `kubectl -o jsonpath`).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let trimmed = text.trim();
        let inner = trimmed
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(trimmed);
        let inner = inner.strip_prefix('$').unwrap_or(inner);
        let mut parser = Parser {
            text: inner,
            pos: 0,
        };
        let steps = parser.steps(false)?;
        Ok(JsonPath { steps })
    }

    /// Every value the path reaches in `root`, in document order.
    pub fn find<'v>(&self, root: &'v Value) -> Vec<&'v Value> {
        walk(&self.steps, vec![root])
    }
}

fn walk<'v>(steps: &[Step], mut current: Vec<&'v Value>) -> Vec<&'v Value> {
    for step in steps {
        current = current.into_iter().flat_map(|v| apply(step, v)).collect();
    }
    current
}

/// `i` counted from the end when negative; None when out of range.
fn index(len: usize, i: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len + i } else { i };
    (0..len)
        .contains(&i)
        .then(|| usize::try_from(i).ok())
        .flatten()
}

fn apply<'v>(step: &Step, v: &'v Value) -> Vec<&'v Value> {
    match step {
        Step::Field(name) => v.get(name).into_iter().collect(),
        Step::Fields(names) => names.iter().filter_map(|n| v.get(n)).collect(),
        Step::Wildcard => match v {
            Value::Object(m) => m.values().collect(),
            Value::Array(a) => a.iter().collect(),
            _ => Vec::new(),
        },
        Step::Recursive(name) => {
            let mut out = Vec::new();
            collect(v, name, &mut out);
            out
        }
        Step::Indexes(is) => match v {
            Value::Array(a) => is
                .iter()
                .filter_map(|i| index(a.len(), *i).map(|i| &a[i]))
                .collect(),
            _ => Vec::new(),
        },
        Step::Slice(start, end, step) => match v {
            Value::Array(a) => slice(a, *start, *end, *step),
            _ => Vec::new(),
        },
        Step::Filter(path, compare) => match v {
            Value::Array(a) => a
                .iter()
                .filter(|elem| {
                    let found = walk(path, vec![*elem]);
                    match compare {
                        None => found.iter().any(|f| !f.is_null()),
                        Some((op, literal)) => found.iter().any(|f| compares(f, *op, literal)),
                    }
                })
                .collect(),
            _ => Vec::new(),
        },
    }
}

fn collect<'v>(v: &'v Value, name: &str, out: &mut Vec<&'v Value>) {
    match v {
        Value::Object(m) => {
            if let Some(found) = m.get(name) {
                out.push(found);
            }
            for child in m.values() {
                collect(child, name, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|child| collect(child, name, out)),
        _ => {}
    }
}

fn slice(a: &[Value], start: Option<i64>, end: Option<i64>, step: i64) -> Vec<&Value> {
    let len = i64::try_from(a.len()).unwrap_or(i64::MAX);
    let clamp = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    let from = start.map_or(0, clamp);
    let to = end.map_or(len, clamp);
    let mut out = Vec::new();
    if step > 0 {
        let mut i = from;
        while i < to {
            if let Some(v) = usize::try_from(i).ok().and_then(|i| a.get(i)) {
                out.push(v);
            }
            i += step;
        }
    }
    out
}

fn compares(found: &Value, op: Op, literal: &Value) -> bool {
    let order = match (found, literal) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) if a == b => Some(Ordering::Equal),
        _ => None,
    };
    match (op, order) {
        (Op::Eq, o) => o == Some(Ordering::Equal),
        (Op::Ne, o) => o != Some(Ordering::Equal),
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (_, None) => false,
    }
}

/// A value as `jsonpath.PrintResults` writes it: strings bare, other scalars in their
/// plain form, objects and arrays as compact JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(path: &str, obj: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap()
            .find(obj)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn fields_indexes_and_missing_keys() {
        let obj = json!({"spec": {"agent": "rollbackd", "steps": [{"n": 1}, {"n": 2}, {"n": 3}]},
                         "metadata": {"labels": {"app.kubernetes.io/name": "web"}}});
        assert_eq!(eval(".spec.agent", &obj), [json!("rollbackd")]);
        assert_eq!(eval("{.spec.agent}", &obj), [json!("rollbackd")]);
        assert_eq!(eval(".spec.steps[1].n", &obj), [json!(2)]);
        assert_eq!(eval(".spec.steps[-1].n", &obj), [json!(3)]);
        assert_eq!(
            eval(".spec.steps[*].n", &obj),
            [json!(1), json!(2), json!(3)]
        );
        assert_eq!(eval(".spec.steps[0,2].n", &obj), [json!(1), json!(3)]);
        assert_eq!(eval(".spec.steps[1:].n", &obj), [json!(2), json!(3)]);
        assert_eq!(eval(".spec.steps[:2].n", &obj), [json!(1), json!(2)]);
        assert_eq!(
            eval(".metadata.labels['app.kubernetes.io/name']", &obj),
            [json!("web")]
        );
        assert!(eval(".status.state", &obj).is_empty());
        assert!(eval(".spec.steps[7].n", &obj).is_empty());
        assert_eq!(eval("..n", &obj), [json!(1), json!(2), json!(3)]);
        assert_eq!(eval(".spec.*", &obj).len(), 2);
    }

    #[test]
    fn filters_pick_list_elements() {
        let obj = json!({"status": {"conditions": [
            {"type": "Progressing", "status": "True", "n": 1},
            {"type": "Ready", "status": "False", "n": 5},
        ]}});
        assert_eq!(
            eval(r#".status.conditions[?(@.type=="Ready")].status"#, &obj),
            [json!("False")]
        );
        assert_eq!(
            eval(
                ".status.conditions[?(@.type == 'Progressing')].status",
                &obj
            ),
            [json!("True")]
        );
        assert_eq!(
            eval(".status.conditions[?(@.n > 2)].type", &obj),
            [json!("Ready")]
        );
        assert_eq!(
            eval(r#".status.conditions[?(@.type!="Ready")].type"#, &obj),
            [json!("Progressing")]
        );
        assert_eq!(eval(".status.conditions[?(@.n)].n", &obj).len(), 2);
    }

    #[test]
    fn bad_paths_are_errors_and_text_is_printed_like_kubectl() {
        assert!(JsonPath::parse(".a[").is_err());
        assert!(JsonPath::parse(".a[?(@.b==)]").is_err());
        assert!(JsonPath::parse(".a[1:2:0]").is_err());
        assert_eq!(text(&json!("x")), "x");
        assert_eq!(text(&json!(3)), "3");
        assert_eq!(text(&json!(2.5)), "2.5");
        assert_eq!(text(&json!({"b": 1, "a": [true]})), r#"{"a":[true],"b":1}"#);
    }
}
