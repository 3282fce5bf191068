//! Settings files (`settings/<name>.yaml`), checked against their schema
//! (`schemas/settings/<name>.json`, when the root has one) by `knut check` and at start:
//! a mistyped key, a value of the wrong kind or a missing one is reported like a route's
//! problem — file, line, column, the YAML path and, for a key the schema does not know, the
//! closest one it does. A settings file without a schema is read as it is.

use std::path::Path;

use serde_json::Value;

use super::diagnostic::Diagnostic;
use super::load::Positions;
use crate::schema::SchemaRegistry;

/// The name of the schema a settings file `name` is checked against.
pub fn schema_name(name: &str) -> String {
    format!("settings/{name}")
}

/// Every problem of the root's settings files that have a schema.
pub fn check(root: &Path, schemas: &SchemaRegistry) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for path in crate::core::files::yaml_files(&root.join("settings")) {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let schema = schema_name(name);
        if !schemas.contains(&schema) {
            continue;
        }
        let file = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        // A file that cannot be read or is not YAML is reported where settings are loaded.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(value) = serde_saphyr::from_str::<Value>(&text) else {
            continue;
        };
        out.extend(problems(&file, &text, &value, &schema, schemas));
    }
    out
}

/// The violations of one settings document, placed in its text.
fn problems(
    file: &Path,
    text: &str,
    value: &Value,
    schema: &str,
    schemas: &SchemaRegistry,
) -> Vec<Diagnostic> {
    let Err(violations) = schemas.validate(schema, value) else {
        return Vec::new();
    };
    let positions = Positions::of(text);
    let raw = schemas.raw(schema).unwrap_or(&Value::Null);
    let mut out = Vec::new();
    for v in violations {
        let segments: Vec<String> = v
            .instance_path
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let at = yaml_path(&segments);
        let known = known_keys(raw, &segments);
        // `additionalProperties: false`: the keys the schema does not know, each placed.
        let extra = v.reason.starts_with(crate::schema::UNKNOWN_PROPERTIES);
        let unknown: Vec<&String> = match value.pointer(&v.instance_path) {
            Some(Value::Object(map)) if extra && !known.is_empty() => {
                map.keys().filter(|k| !known.contains(k)).collect()
            }
            _ => Vec::new(),
        };
        if unknown.is_empty() {
            out.push(Diagnostic::new(
                file,
                positions.locate(&at),
                at.clone(),
                v.reason,
            ));
            continue;
        }
        // A key the schema does not know: at the key, with the closest known one.
        for key in unknown {
            let mut path = segments.clone();
            path.push(key.clone());
            let key_at = yaml_path(&path);
            let written = positions
                .keys(&at)
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, line, column)| (*line, *column));
            out.push(
                Diagnostic::new(
                    file,
                    written.unwrap_or_else(|| positions.locate(&key_at)),
                    key_at,
                    format!("`{key}` is not a setting here"),
                )
                .with_choices(key, &known),
            );
        }
    }
    out
}

/// `ages.guardian.min`, `reports.x.recipients[0]` from JSON Pointer segments.
fn yaml_path(segments: &[String]) -> String {
    let mut out = String::new();
    for s in segments {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && !out.is_empty() {
            // An index into a list; a mapping key of digits (`"136"`) is written as a key
            // by the YAML positions too, so both are looked up.
            out.push_str(&format!("[{s}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(s);
        }
    }
    out
}

/// The property names the schema knows at `segments` (following `properties`,
/// `additionalProperties` and `items`).
fn known_keys(schema: &Value, segments: &[String]) -> Vec<String> {
    let mut node = schema;
    for s in segments {
        node = match (
            node.get("properties").and_then(|p| p.get(s)),
            node.get("additionalProperties").filter(|a| a.is_object()),
            node.get("items").filter(|i| i.is_object()),
        ) {
            (Some(p), _, _) => p,
            (None, Some(a), _) => a,
            (None, None, Some(i)) => i,
            _ => return Vec::new(),
        };
    }
    node.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, SchemaRegistry) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("settings")).expect("mkdir");
        std::fs::write(
            dir.path().join("settings/demo.json"),
            r#"{"type": "object", "additionalProperties": false, "required": ["ages"],
                "properties": {
                  "ages": {"type": "object", "additionalProperties": false,
                           "properties": {"guardian": {"type": "object",
                               "properties": {"min": {"type": "integer"}}}}},
                  "reports": {"type": "object", "additionalProperties": {"type": "object",
                      "additionalProperties": false,
                      "properties": {"recipients": {"type": "array", "items": {"type": "string"}}}}}}}"#,
        )
        .expect("schema");
        let schemas = SchemaRegistry::load(dir.path()).expect("schemas");
        (dir, schemas)
    }

    fn check_text(text: &str) -> Vec<String> {
        let (_dir, schemas) = registry();
        let value: Value = serde_saphyr::from_str(text).expect("YAML");
        problems(
            Path::new("settings/demo.yaml"),
            text,
            &value,
            "settings/demo",
            &schemas,
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn a_valid_file_has_no_problems() {
        assert!(check_text("ages:\n  guardian: { min: 20 }\n").is_empty());
    }

    #[test]
    fn a_mistyped_key_is_placed_and_a_known_one_suggested() {
        let got = check_text("ages:\n  guardain: { min: 20 }\nreports:\n  x:\n    recipent: []\n");
        assert!(
            got.iter().any(|p| p.starts_with(
                "settings/demo.yaml:2:3: ages.guardain: `guardain` is not a setting here"
            ) && p.contains("did you mean `guardian`?")),
            "{got:?}"
        );
        assert!(
            got.iter().any(
                |p| p.starts_with("settings/demo.yaml:5:5: reports.x.recipent:")
                    && p.contains("did you mean `recipients`?")
            ),
            "{got:?}"
        );
    }

    #[test]
    fn a_wrong_kind_of_value_and_a_missing_key_are_named() {
        let got =
            check_text("ages:\n  guardian: { min: twenty }\nreports:\n  x:\n    recipients: [1]\n");
        assert!(
            got.iter()
                .any(|p| p.starts_with("settings/demo.yaml:2:20: ages.guardian.min:")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|p| p.starts_with("settings/demo.yaml:5:18: reports.x.recipients[0]:")),
            "{got:?}"
        );
        let got = check_text("reports: {}\n");
        assert!(got.iter().any(|p| p.contains("ages")), "{got:?}");
    }
}
