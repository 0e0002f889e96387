//! Reading policy files and directories from disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{Locator, PolicyError, PolicyErrors};
use super::model::Policy;
use super::raw::RawPolicy;
use super::share::share_sections;
use super::validate::validate;

/// Parses and validates one policy from its text.
pub fn parse_policy(file: &Path, source: &str) -> Result<Policy, Vec<PolicyError>> {
    let locator = Locator::new(file, source);
    let raw: RawPolicy = toml::from_str(source).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let field = locator.field_at(span.start);
        let message = e
            .message()
            .trim()
            .replace("expected f64", "expected a number")
            .replace("expected u64", "expected a whole number")
            .replace("expected u32", "expected a whole number")
            .replace("expected u16", "expected a whole number");
        vec![locator.error(span, field, message)]
    })?;
    validate(raw, &locator)
}

/// Loads one file.
pub fn load_file(file: &Path) -> Result<Policy, Vec<PolicyError>> {
    let source = std::fs::read_to_string(file).map_err(|e| {
        vec![PolicyError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse_policy(file, &source)
}

/// Expands paths: a directory stands for its `*.toml` files, sorted.
pub fn policy_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => errors.push(PolicyError {
                    file: path.clone(),
                    line: 0,
                    column: 0,
                    field: "(directory)".into(),
                    message: format!("cannot read: {e}"),
                }),
            }
        } else {
            files.push(path.clone());
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// Loads every policy under `paths`, reporting every problem in every file, and checks
/// that no two files claim the same agent or workload. Identical sections of different
/// files share one allocation.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Policy>, PolicyErrors> {
    let files = policy_files(paths)?;
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        match load_file(file) {
            Ok(p) => policies.push(p),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let mut agents: BTreeMap<&str, &Path> = BTreeMap::new();
    let mut watched: BTreeMap<(String, String), &Path> = BTreeMap::new();
    for p in &policies {
        if let Some(first) = agents.insert(&p.agent.id, &p.source) {
            errors.push(cross_file_error(
                p,
                "agent.id",
                format!(
                    "agent {:?} is also defined in {}",
                    p.agent.id,
                    first.display()
                ),
            ));
        }
        if let Some(w) = p.primary_workload()
            && let Some(first) = watched.insert((w.namespace.clone(), w.name.clone()), &p.source)
        {
            errors.push(cross_file_error(
                p,
                "workloads",
                format!(
                    "workload {}/{} is also the primary workload of {}",
                    w.namespace,
                    w.name,
                    first.display()
                ),
            ));
        }
    }
    if errors.is_empty() {
        share_sections(&mut policies);
        Ok(policies)
    } else {
        Err(PolicyErrors(errors))
    }
}

fn cross_file_error(p: &Policy, field: &str, message: String) -> PolicyError {
    PolicyError {
        file: p.source.clone(),
        line: 1,
        column: 1,
        field: field.into(),
        message,
    }
}
