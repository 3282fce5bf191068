//! The reference pages `docs/reference/steps.md` and `docs/reference/endpoints.md`,
//! generated from the route schema (itself generated from each step kind's and endpoint
//! kind's spec and its doc comments) and illustrated with real uses from route files that
//! `knut test` runs. A test holds the committed pages to what this generates, so the
//! reference cannot drift from the code: `KNUT_UPDATE_DOCS=1 cargo test --lib
//! route::reference` rewrites them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

/// A use of a step or endpoint kind in a route file: where, and the lines.
#[derive(Debug, Clone)]
pub struct Example {
    /// The file, relative to the repository (`routes/case-open.yaml`).
    pub file: String,
    /// Line of the first quoted line (1-based).
    pub line: usize,
    /// The lines, as written.
    pub text: String,
}

/// The first use of `- <kind>:` (a step) or `<kind>:` under `from:` (an endpoint) in
/// `text`: that line and the more indented lines after it, at most 24.
pub fn find_example(file: &str, text: &str, kind: &str, endpoint: bool) -> Option<Example> {
    let lines: Vec<&str> = text.lines().collect();
    let mut in_from = false;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if endpoint {
            if line.starts_with("from:") {
                in_from = true;
                continue;
            }
            if indent == 0 && !line.is_empty() {
                in_from = false;
            }
            if !(in_from && indent > 0 && trimmed.starts_with(&format!("{kind}:"))) {
                continue;
            }
        } else if !trimmed.starts_with(&format!("- {kind}:")) {
            continue;
        }
        let mut end = i + 1;
        while end < lines.len() && end - i < 24 {
            let l = lines[end];
            let t = l.trim_start();
            let deeper = (l.len() - t.len()) > indent || (!endpoint && t.is_empty());
            if t.is_empty() || !deeper {
                break;
            }
            end += 1;
        }
        let text = lines[i..end]
            .iter()
            .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
            .collect::<Vec<_>>()
            .join("\n");
        return Some(Example {
            file: file.to_string(),
            line: i + 1,
            text,
        });
    }
    None
}

/// The kinds of a `oneOf` of one-key objects (`StepSpec`, `From`): (kind, description,
/// name of the spec's definition).
fn kinds(schema: &Value, def: &str) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    for v in schema["$defs"][def]["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some((kind, spec)) = v["properties"].as_object().and_then(|p| p.iter().next()) else {
            continue;
        };
        let description = v["description"].as_str().unwrap_or("").to_string();
        out.push((kind.clone(), description, ref_name(spec)));
    }
    out
}

fn ref_name(v: &Value) -> Option<String> {
    v["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .map(str::to_string)
}

/// A schema's type as a reader says it: `string`, `list of PublishTarget`, `Column`.
fn type_text(v: &Value) -> String {
    if let Some(name) = ref_name(v) {
        return format!("[{name}](#{})", name.to_ascii_lowercase());
    }
    if let Some(c) = v.get("const") {
        return format!("`{c}`");
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(variants) = v[key].as_array() {
            let texts: Vec<String> = variants
                .iter()
                .filter(|x| x["type"] != "null")
                .map(type_text)
                .collect();
            return texts.join(" or ");
        }
    }
    match &v["type"] {
        Value::String(t) if t == "array" => format!("list of {}", type_text(&v["items"])),
        Value::String(t) if t == "object" => match v.get("additionalProperties") {
            Some(a) if a.is_object() => format!("map of {}", type_text(a)),
            _ => "object".into(),
        },
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    }
}

/// One line of a description in a table cell.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The definitions `v` refers to (directly), in order of appearance.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(name) = ref_name(v) {
                out.push(name);
            }
            for x in map.values() {
                refs(x, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// A definition: its description and its keys (or its variants).
fn definition(out: &mut String, schema: &Value, name: &str, level: &str) {
    let def = &schema["$defs"][name];
    let _ = writeln!(out, "{level} {name}\n");
    if let Some(d) = def["description"].as_str() {
        let _ = writeln!(out, "{}\n", d.trim());
    }
    if let Some(props) = def["properties"].as_object() {
        let required: BTreeSet<&str> = def["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(out, "| key | type | required | |\n|---|---|---|---|");
        for (key, p) in props {
            let _ = writeln!(
                out,
                "| `{key}` | {} | {} | {} |",
                type_text(p),
                if required.contains(key.as_str()) {
                    "yes"
                } else {
                    ""
                },
                cell(p["description"].as_str().unwrap_or(""))
            );
        }
        let _ = writeln!(out);
    } else if let Some(variants) = def["anyOf"].as_array().or(def["oneOf"].as_array()) {
        let _ = writeln!(out, "One of:\n");
        for v in variants {
            let _ = writeln!(
                out,
                "- {}: {}",
                type_text(v),
                cell(v["description"].as_str().unwrap_or(""))
            );
        }
        let _ = writeln!(out);
    } else {
        let _ = writeln!(out, "Type: {}\n", type_text(def));
    }
}

/// A page of kinds: each with its description, its keys, the definitions they use, and an
/// example from a tested route file.
fn page(
    schema: &Value,
    def: &str,
    title: &str,
    intro: &str,
    example: &dyn Fn(&str) -> Option<Example>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {title}\n\n<!-- Generated from the route schema by `KNUT_UPDATE_DOCS=1 cargo test --lib \
         route::reference`; a test fails when it is not current. Do not edit by hand. -->\n\n{intro}\n"
    );
    let all = kinds(schema, def);
    let _ = writeln!(out, "| kind | |\n|---|---|");
    for (kind, description, _) in &all {
        let _ = writeln!(out, "| [`{kind}`](#{kind}) | {} |", cell(description));
    }
    let _ = writeln!(out);
    let mut shown: BTreeSet<String> = BTreeSet::new();
    for (kind, description, spec) in &all {
        let _ = writeln!(out, "## {kind}\n\n{}\n", description.trim());
        if let Some(spec) = spec {
            let mut used = Vec::new();
            refs(&schema["$defs"][spec], &mut used);
            definition(&mut out, schema, spec, "###");
            let mut queue = used;
            while let Some(name) = queue.first().cloned() {
                queue.remove(0);
                if name == *spec || !shown.insert(name.clone()) {
                    continue;
                }
                // Step lists (branches) are the page itself.
                if name == "StepSpec" {
                    continue;
                }
                let mut more = Vec::new();
                refs(&schema["$defs"][&name], &mut more);
                queue.extend(more);
                definition(&mut out, schema, &name, "###");
            }
        }
        match example(kind) {
            Some(e) => {
                let _ = writeln!(
                    out,
                    "Example, from [`{}`](../../{}) (line {}):\n\n```yaml\n{}\n```\n",
                    e.file, e.file, e.line, e.text
                );
            }
            None => {
                let _ = writeln!(out, "(No route file uses `{kind}` yet.)\n");
            }
        }
    }
    out
}

/// `docs/reference/steps.md`.
pub fn steps_page(schema: &Value, example: &dyn Fn(&str) -> Option<Example>) -> String {
    page(
        schema,
        "StepSpec",
        "Step kinds",
        "Every step a route's `steps:` may hold: one key naming the kind (an Enterprise \
         Integration Pattern), its options under it. `knut check` holds a route to these keys \
         and types, with file, line, column and a suggestion; `schemas/route.schema.json` is \
         the same reference for an editor. Each example is quoted from a route file that `knut \
         test` runs.",
        example,
    )
}

/// `docs/reference/endpoints.md`.
pub fn endpoints_page(schema: &Value, example: &dyn Fn(&str) -> Option<Example>) -> String {
    page(
        schema,
        "From",
        "Endpoint kinds",
        "Where a route's messages come from: `from:` holds exactly one of these keys. Each \
         example is quoted from a route file that `knut test` runs.",
        example,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Route files in the order examples are looked for: the shipped routes and fragments
    /// first, then the route tests' own root — a route only when it has its test file
    /// (`<name>.test.yaml`); fragments are run by the routes including them.
    fn route_files(repo: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for dir in ["routes", "fragments", "tests/roots/steps/routes"] {
            let mut files: Vec<_> = std::fs::read_dir(repo.join(dir))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "yaml")
                        && !p.to_string_lossy().ends_with(".test.yaml")
                        && (dir == "fragments" || p.with_extension("test.yaml").exists())
                })
                .collect();
            files.sort();
            for p in files {
                let rel = p.strip_prefix(repo).unwrap_or(&p).display().to_string();
                out.push((rel, std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
        out
    }

    #[test]
    fn finds_a_step_and_an_endpoint_with_their_lines() {
        let text = "route: r\nfrom:\n  queue: { exchange: x, keys: [a] }\nsteps:\n  - enrich:\n      adapter: a\n      operation: b\n  - reply: { status: 200 }\n";
        let e = find_example("routes/r.yaml", text, "enrich", false).unwrap();
        assert_eq!(e.line, 5);
        assert_eq!(e.text, "- enrich:\n    adapter: a\n    operation: b");
        let e = find_example("routes/r.yaml", text, "queue", true).unwrap();
        assert_eq!(
            (e.line, e.text.as_str()),
            (3, "queue: { exchange: x, keys: [a] }")
        );
        assert!(find_example("routes/r.yaml", text, "split", false).is_none());
    }

    #[test]
    fn committed_reference_pages_are_current() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let schema = crate::route::load::route_json_schema();
        let files = route_files(repo);
        let files = &files;
        let example = |endpoint: bool| {
            move |kind: &str| {
                files
                    .iter()
                    .find_map(|(f, t)| find_example(f, t, kind, endpoint))
            }
        };
        let pages = [
            (
                "docs/reference/steps.md",
                steps_page(&schema, &example(false)),
            ),
            (
                "docs/reference/endpoints.md",
                endpoints_page(&schema, &example(true)),
            ),
        ];
        for (file, generated) in pages {
            let path = repo.join(file);
            if std::env::var_os("KNUT_UPDATE_DOCS").is_some() {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &generated).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "{file} is not the page generated from the step and endpoint specs; regenerate \
                 it with `KNUT_UPDATE_DOCS=1 cargo test --lib route::reference` and commit it"
            );
        }
    }

    #[test]
    fn every_step_kind_has_an_example_in_a_tested_route_file() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let schema = crate::route::load::route_json_schema();
        let files = route_files(repo);
        for (kind, _, _) in kinds(&schema, "StepSpec") {
            assert!(
                files
                    .iter()
                    .any(|(f, t)| find_example(f, t, &kind, false).is_some()),
                "no route file uses step kind `{kind}`: add one to tests/roots/steps/routes \
                 (with its test), so the reference shows it"
            );
        }
    }
}
