//! The crate's layers, held by a test: no two top-level modules may import each other,
//! directly or round a longer loop. Read from the sources (`use crate::<module>` and
//! `crate::<module>::…` outside comments and test modules), so a new cycle fails
//! `cargo test` with the files that make it.
//!
//! From the ground up, as the imports stand:
//!
//! | layer | modules |
//! |---|---|
//! | core | `core` (envelope, failures, effects, masking) |
//! | foundations | `codec`, `expr`, `jwks`, `telemetry`, `config`, `broker`, `store`, `schema`, `template` |
//! | systems | `adapter`, `outlet`, `resources` |
//! | steps | `step` (one module per step kind, registered in one list) |
//! | routes | `route` (model, loader, checks, graph, reference) |
//! | doors | `endpoint` (http, queue, file, timer, poll) |
//! | operations | `admin` |
//! | wiring | `runtime` (routes → workers, endpoints, admin, the sandbox; route tests) |
//! | command line | `cli` |
//!
//! The sandbox of simulated systems is no layer of this crate: it is the crate
//! `knut-sandbox` (crates/knut-sandbox), which depends on nothing here; `runtime` starts it
//! (the `sandbox` feature), and tests here hold the pieces the two both have in agreement.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules of `src/` and, for each, the others it uses with the files that do.
fn imports(src: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut tops = BTreeSet::new();
    for e in std::fs::read_dir(src).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        match name.strip_suffix(".rs") {
            Some("lib" | "main") => {}
            Some(m) => {
                tops.insert(m.to_string());
            }
            None if e.path().is_dir() => {
                tops.insert(name);
            }
            None => {}
        }
    }
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut files = Vec::new();
    collect(src, &mut files);
    for file in files {
        let rel = file.strip_prefix(src).unwrap_or(&file).to_path_buf();
        let Some(top) = rel.components().next().map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        }) else {
            continue;
        };
        if !tops.contains(&top) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        // Test modules may reach anywhere.
        let code = text
            .find("\n#[cfg(test)]\nmod ")
            .map_or(text.as_str(), |i| &text[..i]);
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name != top && tops.contains(&name) {
                    edges
                        .entry(top.clone())
                        .or_default()
                        .entry(name)
                        .or_default()
                        .insert(rel.display().to_string());
                }
            }
        }
    }
    edges
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The modules that reach `from` again: the loops through it.
fn loops(edges: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(&at).into_iter().flat_map(|m| m.keys()) {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    found.push(cycle);
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    found
}

#[test]
fn the_top_level_modules_import_each_other_in_no_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = imports(&src);
    assert!(
        edges.contains_key("runtime") && edges["runtime"].contains_key("step"),
        "the import reader found nothing: {edges:?}"
    );
    let found = loops(&edges);
    let described: Vec<String> = found
        .iter()
        .take(5)
        .map(|cycle| {
            let hops: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    let files: Vec<&String> = edges[&w[0]][&w[1]].iter().take(3).collect();
                    format!("{} -> {} ({files:?})", w[0], w[1])
                })
                .collect();
            hops.join("; ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "top-level modules import each other in a loop; move what they share down a layer \
         (see src/layers.rs):\n{}",
        described.join("\n")
    );
}

#[test]
fn a_loop_is_found() {
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (a, b) in [
        ("step", "route"),
        ("route", "resources"),
        ("resources", "step"),
    ] {
        edges
            .entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .insert(format!("{a}.rs"));
    }
    edges
        .entry("cli".into())
        .or_default()
        .entry("step".into())
        .or_default();
    let found = loops(&edges);
    assert!(
        found
            .iter()
            .any(|c| c == &["step", "route", "resources", "step"]),
        "{found:?}"
    );
    assert!(found.iter().all(|c| c[0] != "cli"), "{found:?}");
}
