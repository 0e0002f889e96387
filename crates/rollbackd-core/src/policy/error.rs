//! Policy errors that name the file, the line and the field, like `promtool check`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The policy file (or directory, when it cannot be read).
    pub file: PathBuf,
    /// 1-based line of the problem; 0 when the file cannot be read.
    pub line: usize,
    /// 1-based column of the problem; 0 when the file cannot be read.
    pub column: usize,
    /// The field at fault, e.g. `matrix[2].when[0].signal`.
    pub field: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.field,
            self.message
        )
    }
}

/// Every problem found in a set of policy files.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of one file to line and column numbers.
#[derive(Debug, Clone)]
pub struct Locator<'a> {
    file: &'a Path,
    source: &'a str,
}

impl<'a> Locator<'a> {
    /// A locator over `source`, read from `file`.
    pub fn new(file: &'a Path, source: &'a str) -> Self {
        Self { file, source }
    }

    /// The file being located in.
    pub fn file(&self) -> &Path {
        self.file
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, column)
    }

    /// An error at a span.
    pub fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> PolicyError {
        let (line, column) = self.line_col(span.start);
        PolicyError {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field a TOML deserialization error points at: the key written before the
    /// offending value, prefixed by the enclosing `[table]` header.
    pub fn field_at(&self, offset: usize) -> String {
        let offset = offset.min(self.source.len());
        let line_start = self.source[..offset].rfind('\n').map_or(0, |nl| nl + 1);
        let before_on_line = &self.source[line_start..offset];
        let key = before_on_line
            .rfind('=')
            .map(|eq| before_on_line[..eq].trim_end())
            .and_then(|lhs| {
                lhs.rsplit(|c: char| c == '{' || c == ',' || c.is_whitespace())
                    .next()
                    .filter(|k| !k.is_empty())
            })
            .or_else(|| {
                // an unknown-key error points at the key itself
                let rest = &self.source[offset..];
                rest.split(|c: char| c == '=' || c.is_whitespace())
                    .next()
                    .filter(|k| !k.is_empty())
            });
        let table = self.source[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.split('#').next().unwrap_or(l).trim().to_string());
        match (table, key) {
            (Some(table), Some(key)) => format!("{table} {key}"),
            (Some(table), None) => table,
            (None, Some(key)) => key.to_string(),
            (None, None) => "(document)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_fields() {
        let source =
            "[agent]\nid = \"x\"\n\n[[matrix]]\nwhen = [{ signal = \"a\", above = \"high\" }]\n";
        let locator = Locator::new(Path::new("p.toml"), source);
        let offset = source.find("\"high\"").unwrap();
        assert_eq!(locator.line_col(offset).0, 5);
        assert_eq!(locator.field_at(offset), "[[matrix]] above");
        let key_offset = source.find("id =").unwrap();
        assert_eq!(locator.field_at(key_offset), "[agent] id");
    }
}
