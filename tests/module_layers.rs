//! The daemon's module tree keeps its arrows one way: no two top-level modules of `src/`
//! import each other, directly or through others, and no two files of one directory do.
//! (The crates' own boundaries are the compiler's: see the workspace's Cargo.toml.)
//!
//! References are read from the source text: `crate::module` anywhere outside a file's
//! `#[cfg(test)]` part, and `super::file` between the files of one directory.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text before its first `#[cfg(test)]` (tests may use anything).
fn production_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Every `prefix<ident>` in `text`, e.g. the `x` of `crate::x::y`.
fn idents_after(text: &str, prefix: &str) -> BTreeSet<String> {
    text.match_indices(prefix)
        .filter(|(i, _)| {
            // not part of a longer path such as `rollbackd_core::policy`
            !text[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
        })
        .map(|(i, _)| {
            text[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// The strongly connected components of more than one node (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for to in w.graph.get(v).into_iter().flatten() {
            let Some((to, _)) = w.graph.get_key_value(to) else {
                continue;
            };
            let to = to.as_str();
            if !w.index.contains_key(to) {
                visit(w, to);
                let l = w.low[v].min(w.low[to]);
                w.low.insert(v, l);
            } else if w.stack.contains(&to) {
                let l = w.low[v].min(w.index[to]);
                w.low.insert(v, l);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            while let Some(top) = w.stack.pop() {
                component.push(top.to_string());
                if top == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut w = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn top_level_modules_form_no_cycle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(src()).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let mut uses = idents_after(&production_text(file), "crate::");
        uses.remove(&module);
        graph.entry(module).or_default().extend(uses);
    }
    assert!(graph.len() > 15, "read {} modules", graph.len());
    assert!(
        graph["daemon"].contains("api"),
        "the daemon composes the API"
    );
    let found = cycles(&graph);
    assert!(found.is_empty(), "modules importing each other: {found:?}");
}

#[test]
fn files_of_one_directory_form_no_cycle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut dirs: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        dirs.entry(file.parent().unwrap().to_path_buf())
            .or_default()
            .push(file);
    }
    let mut checked = 0;
    for (dir, files) in dirs {
        let names: BTreeSet<String> = files
            .iter()
            .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|n| n != "mod" && n != "lib" && n != "main")
            .collect();
        // `crate::cluster::undo` names the file `undo` of `src/cluster/` too
        let module_path = dir
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .replace('/', "::");
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            if !names.contains(&name) {
                continue;
            }
            let text = production_text(file);
            let mut uses = idents_after(&text, "super::");
            if !module_path.is_empty() {
                uses.extend(idents_after(&text, &format!("crate::{module_path}::")));
            }
            uses.retain(|u| names.contains(u) && *u != name);
            graph.insert(name, uses);
            checked += 1;
        }
        let found = cycles(&graph);
        assert!(
            found.is_empty(),
            "files of {} importing each other: {found:?}",
            dir.display()
        );
    }
    assert!(checked > 100, "read {checked} files");
}
