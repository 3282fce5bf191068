//! The schema registry: the JSON Schemas of `schemas/`, compiled once at load.
//!
//! - Every `*.json` under the folder is a schema, named by its path relative to the folder
//!   without `.json` (`placement-change.v1`, `oep/leave`). `route.schema.json` is the
//!   schema of route files, not a message schema, and is skipped.
//! - JSON Schema 2020-12 unless a schema's `$schema` says otherwise; `format` is asserted,
//!   with the custom formats of [`formats`] (`personnummer`, `organisationsnummer`); an
//!   unknown format name is a load error (a misspelt format would otherwise check nothing).
//! - `$ref` between schemas of the registry works by `$id` or by relative file name
//!   (`"$ref": "common.v1.json"`, `"$ref": "../oep/leave.json#/$defs/x"`): a schema without
//!   `$id` has the base URI `https://knutpunkt.invalid/schemas/<path>.json`. Anything not in
//!   the registry is refused: nothing is fetched from the network or the file system.
//! - A [`Violation`] names the instance path and the kind of failure, never the instance's
//!   value (which may be a personnummer).

pub mod formats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::Value;
use thiserror::Error;

/// Base URI of schemas that have no `$id`; `.invalid` can never be resolved on a network.
const BASE_URI: &str = "https://knutpunkt.invalid/schemas/";

/// The file that holds the route-file schema, not a message schema.
const ROUTE_SCHEMA_FILE: &str = "route.schema.json";

/// Why a schema file could not be loaded. Each names the file and what to do.
#[derive(Debug, Error)]
pub enum SchemaLoadError {
    /// The file or folder could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{}:{line}:{column}: not valid JSON: {reason}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Line of the error, 1-based.
        line: usize,
        /// Column of the error, 1-based.
        column: usize,
        /// What the JSON parser expected.
        reason: String,
    },
    /// The file is JSON but not a valid JSON Schema, or one of its `$ref`s cannot be
    /// resolved within the registry.
    #[error("{}: not a valid JSON Schema{}: {reason}", .path.display(), location(.schema_path))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where in the schema document (JSON Pointer), "" for the root.
        schema_path: String,
        /// What is wrong.
        reason: String,
    },
    /// Two files declare the same `$id`.
    #[error("{}: `$id` {id} is already used by {}; every schema needs its own `$id`", .path.display(), .other.display())]
    DuplicateId {
        /// The file loaded second.
        path: PathBuf,
        /// The duplicated `$id`.
        id: String,
        /// The file loaded first.
        other: PathBuf,
    },
}

fn location(schema_path: &str) -> String {
    if schema_path.is_empty() {
        String::new()
    } else {
        format!(" at {schema_path}")
    }
}

/// One reason why an instance does not match its schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// JSON Pointer to the failing part of the instance, `""` for the root.
    pub instance_path: String,
    /// What is wrong, without the instance's value, e.g. `is not a valid personnummer`.
    pub reason: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.instance_path.is_empty() {
            "(root)"
        } else {
            &self.instance_path
        };
        write!(f, "{path}: {}", self.reason)
    }
}

struct Entry {
    raw: Value,
    validator: Validator,
}

/// The message schemas of a root's `schemas/` folder, compiled and ready to validate.
pub struct SchemaRegistry {
    schemas: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("names", &self.schemas.keys().collect::<Vec<_>>())
            .finish()
    }
}

struct SchemaFile {
    name: String,
    path: PathBuf,
    uri: String,
    value: Value,
}

impl SchemaRegistry {
    /// A registry without schemas.
    pub fn empty() -> SchemaRegistry {
        SchemaRegistry {
            schemas: BTreeMap::new(),
        }
    }

    /// Load and compile every `*.json` under `dir` (recursively). A missing folder gives an
    /// empty registry. All problems are reported, each naming its file.
    pub fn load(dir: &Path) -> Result<SchemaRegistry, Vec<SchemaLoadError>> {
        if !dir.exists() {
            return Ok(SchemaRegistry::empty());
        }
        let mut errors = Vec::new();
        let mut paths = Vec::new();
        collect_json_files(dir, &mut paths, &mut errors);
        paths.sort();

        let mut files = Vec::new();
        for path in paths {
            match read_schema_file(dir, &path) {
                Ok(file) => files.push(file),
                Err(e) => errors.push(e),
            }
        }

        // Every document under its file URI, and also under its `$id` when it has one.
        let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut resources: Vec<(String, Value)> = Vec::new();
        for file in &files {
            resources.push((file.uri.clone(), file.value.clone()));
            if let Some(id) = file.value.get("$id").and_then(Value::as_str) {
                let id = id.trim_end_matches('#').to_owned();
                if let Some(other) = ids.get(&id) {
                    errors.push(SchemaLoadError::DuplicateId {
                        path: file.path.clone(),
                        id,
                        other: other.clone(),
                    });
                } else {
                    ids.insert(id, file.path.clone());
                }
            }
        }
        let registry = match jsonschema::Registry::new()
            .draft(Draft::Draft202012)
            .extend(resources)
            .and_then(|b| b.prepare())
        {
            Ok(r) => r,
            Err(e) => {
                errors.extend(registry_error(dir, &files, &e));
                return Err(errors);
            }
        };

        let mut schemas = BTreeMap::new();
        for file in files {
            let built = jsonschema::options()
                .with_draft(draft_of(&file.value))
                .with_registry(&registry)
                .with_base_uri(file.uri.clone())
                .should_validate_formats(true)
                .should_ignore_unknown_formats(false)
                .with_format(formats::PERSONNUMMER, formats::is_personnummer)
                .with_format(
                    formats::ORGANISATIONSNUMMER,
                    formats::is_organisationsnummer,
                )
                .build(&file.value);
            match built {
                Ok(validator) => {
                    schemas.insert(
                        file.name,
                        Entry {
                            raw: file.value,
                            validator,
                        },
                    );
                }
                Err(e) => errors.push(SchemaLoadError::Invalid {
                    path: file.path,
                    schema_path: e.instance_path().as_str().to_owned(),
                    reason: e.to_string(),
                }),
            }
        }
        if errors.is_empty() {
            Ok(SchemaRegistry { schemas })
        } else {
            Err(errors)
        }
    }

    /// True if a schema of this name was loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.schemas.contains_key(name)
    }

    /// The names of all schemas, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.schemas.keys().map(String::as_str)
    }

    /// The schema document as written (for OpenAPI generation).
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.schemas.get(name).map(|e| &e.raw)
    }

    /// Validate `instance` against the schema `name`. On failure, every violation is
    /// returned, sorted by instance path. An unknown schema name is a single violation
    /// at the root (routes are checked at load, so this means a programming error).
    pub fn validate(&self, name: &str, instance: &Value) -> Result<(), Vec<Violation>> {
        let Some(entry) = self.schemas.get(name) else {
            return Err(vec![Violation {
                instance_path: String::new(),
                reason: format!("no schema named `{name}` is loaded"),
            }]);
        };
        // The valid case is the common one: answer it without collecting errors.
        if entry.validator.is_valid(instance) {
            return Ok(());
        }
        let mut violations: Vec<Violation> = entry
            .validator
            .iter_errors(instance)
            .map(|e| Violation {
                instance_path: e.instance_path().as_str().to_owned(),
                reason: reason(&e),
            })
            .collect();
        if violations.is_empty() {
            return Ok(());
        }
        violations.sort();
        violations.dedup();
        Err(violations)
    }
}

/// Name the files behind a registry error: for an unresolvable reference, the files with a
/// `$ref` to it; otherwise the folder.
fn registry_error(
    dir: &Path,
    files: &[SchemaFile],
    e: &jsonschema::ReferencingError,
) -> Vec<SchemaLoadError> {
    let hint = "only schemas in this folder can be referenced (by `$id` or relative file \
                name); remote references are refused";
    let reason = format!("{e}; {hint}");
    let mut named = Vec::new();
    if let jsonschema::ReferencingError::Unretrievable { uri, .. } = e {
        let target = uri.split('#').next().unwrap_or(uri);
        let last = target.rsplit('/').next().unwrap_or(target);
        for file in files {
            let mut refs = Vec::new();
            refs_in(&file.value, &mut refs);
            let hits = refs.iter().any(|r| {
                let r = r.split('#').next().unwrap_or(r);
                !r.is_empty() && (r == target || r.rsplit('/').next() == Some(last))
            });
            if hits {
                named.push(SchemaLoadError::Invalid {
                    path: file.path.clone(),
                    schema_path: String::new(),
                    reason: reason.clone(),
                });
            }
        }
    }
    if named.is_empty() {
        named.push(SchemaLoadError::Invalid {
            path: dir.to_path_buf(),
            schema_path: String::new(),
            reason,
        });
    }
    named
}

/// Every `$ref` string in a schema document.
fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref" | "$dynamicRef", Value::String(r)) => out.push(r.clone()),
                    _ => refs_in(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// The draft named by `$schema`, 2020-12 when absent or not recognised here (an unknown
/// `$schema` is then reported by the validator's own meta-schema check).
fn draft_of(schema: &Value) -> Draft {
    match schema.get("$schema").and_then(Value::as_str) {
        Some(s) if s.contains("draft-04") => Draft::Draft4,
        Some(s) if s.contains("draft-06") => Draft::Draft6,
        Some(s) if s.contains("draft-07") => Draft::Draft7,
        Some(s) if s.contains("2019-09") => Draft::Draft201909,
        _ => Draft::Draft202012,
    }
}

fn collect_json_files(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<SchemaLoadError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            errors.push(SchemaLoadError::Io {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(source) => {
                errors.push(SchemaLoadError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
                continue;
            }
        };
        let path = entry.path();
        if path.is_dir() {
            collect_json_files(&path, out, errors);
        } else if path.extension().is_some_and(|e| e == "json")
            && path.file_name().is_some_and(|n| n != ROUTE_SCHEMA_FILE)
        {
            out.push(path);
        }
    }
}

fn read_schema_file(dir: &Path, path: &Path) -> Result<SchemaFile, SchemaLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaLoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| SchemaLoadError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    if !value.is_object() && !value.is_boolean() {
        return Err(SchemaLoadError::Invalid {
            path: path.to_path_buf(),
            schema_path: String::new(),
            reason: "a schema must be a JSON object (or true/false)".to_owned(),
        });
    }
    let rel = path.strip_prefix(dir).unwrap_or(path);
    let rel: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let rel = rel.join("/");
    let name = rel.strip_suffix(".json").unwrap_or(&rel).to_owned();
    let uri = format!("{BASE_URI}{}", encode_path(&rel));
    Ok(SchemaFile {
        name,
        path: path.to_path_buf(),
        uri,
        value,
    })
}

/// Percent-encode what may not appear in a URI path (file names are usually plain).
fn encode_path(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A reason text built from the error kind; never contains the instance's value.
/// How a violation of `additionalProperties: false` begins (the names follow).
pub const UNKNOWN_PROPERTIES: &str = "has properties the schema does not allow";

fn reason(e: &ValidationError<'_>) -> String {
    use ValidationErrorKind as K;
    let names = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("\"{}\"", crate::expr::sanitize(n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match e.kind() {
        K::AdditionalItems { limit } => format!("must have at most {limit} items"),
        K::AdditionalProperties { unexpected } => {
            format!("{UNKNOWN_PROPERTIES}: {}", names(unexpected))
        }
        K::AnyOf { .. } => "does not match any of the allowed alternatives (anyOf)".to_owned(),
        K::OneOfNotValid { .. } => "does not match any of the alternatives (oneOf)".to_owned(),
        K::OneOfMultipleValid { .. } => {
            "matches more than one of the alternatives (oneOf)".to_owned()
        }
        K::BacktrackLimitExceeded { .. } | K::RegexEngineFailure { .. } => {
            "could not be checked against the pattern (regex engine limit)".to_owned()
        }
        K::Constant { .. } => "is not the value the schema requires (const)".to_owned(),
        K::Contains => "has no item that matches the schema (contains)".to_owned(),
        K::ContentEncoding { content_encoding } => {
            format!("is not valid {content_encoding} content")
        }
        K::ContentMediaType { content_media_type } => {
            format!("is not valid {content_media_type} content")
        }
        K::FromUtf8 { .. } => "does not decode to UTF-8 text".to_owned(),
        K::Custom { keyword, .. } => format!("fails the `{keyword}` check"),
        K::Enum { .. } => "is not one of the allowed values".to_owned(),
        K::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        K::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        K::Maximum { limit } => format!("must be at most {limit}"),
        K::Minimum { limit } => format!("must be at least {limit}"),
        K::FalseSchema => "is not allowed here (the schema is `false`)".to_owned(),
        K::Format { format } => format!("is not a valid {format}"),
        K::MaxItems { limit } => format!("must have at most {limit} items"),
        K::MinItems { limit } => format!("must have at least {limit} items"),
        K::MaxLength { limit } => format!("must be at most {limit} characters"),
        K::MinLength { limit } => format!("must be at least {limit} characters"),
        K::MaxProperties { limit } => format!("must have at most {limit} properties"),
        K::MinProperties { limit } => format!("must have at least {limit} properties"),
        K::MultipleOf { multiple_of } => format!("must be a multiple of {multiple_of}"),
        K::Not { .. } => "matches a schema it must not match (not)".to_owned(),
        K::Pattern { pattern } => format!("does not match the pattern {pattern}"),
        K::PropertyNames { .. } => "has a property name the schema does not allow".to_owned(),
        K::Required { property } => match property.as_str() {
            Some(p) => format!("is missing the required property \"{p}\""),
            None => format!("is missing the required property {property}"),
        },
        K::Type { kind } => {
            let types: Vec<&str> = match kind {
                jsonschema::error::TypeKind::Single(t) => vec![t.as_str()],
                jsonschema::error::TypeKind::Multiple(set) => {
                    set.into_iter().map(|t| t.as_str()).collect()
                }
            };
            format!("must be of type {}", types.join(" or "))
        }
        K::UnevaluatedItems { .. } => "has items the schema does not allow".to_owned(),
        K::UnevaluatedProperties { unexpected } => {
            format!(
                "has properties the schema does not allow: {}",
                names(unexpected)
            )
        }
        K::UniqueItems => "must not contain duplicate items".to_owned(),
        K::Referencing(_) => "could not be checked: a `$ref` cannot be resolved".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, rel: &str, v: &Value) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }

    fn placement_schema() -> Value {
        json!({
            "$id": "https://schemas.sundsvall.example/placement-change.v1.json",
            "type": "object",
            "required": ["student", "kind", "unit"],
            "properties": {
                "student": {"type": "string", "format": "personnummer"},
                "operator": {"type": "string", "format": "organisationsnummer"},
                "kind": {"enum": ["start", "change", "end"]},
                "unit": {"type": "string", "maxLength": 10},
                "hours": {"type": "integer", "minimum": 0, "maximum": 50}
            },
            "additionalProperties": false
        })
    }

    fn registry() -> (tempfile::TempDir, SchemaRegistry) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "placement-change.v1.json", &placement_schema());
        // Relative `$ref` by file name, no `$id`.
        write(
            dir.path(),
            "oep/common.json",
            &json!({"$defs": {"date": {"type": "string", "format": "date"}}}),
        );
        write(
            dir.path(),
            "oep/leave.json",
            &json!({
                "type": "object",
                "properties": {
                    "from": {"$ref": "common.json#/$defs/date"},
                    "student": {"$ref": "https://schemas.sundsvall.example/placement-change.v1.json#/properties/student"}
                }
            }),
        );
        write(
            dir.path(),
            "route.schema.json",
            &json!({"type": "object", "format": "nonsense"}),
        );
        let reg = SchemaRegistry::load(dir.path()).unwrap();
        (dir, reg)
    }

    #[test]
    fn names_and_raw() {
        let (_dir, reg) = registry();
        let names: Vec<&str> = reg.names().collect();
        assert_eq!(names, ["oep/common", "oep/leave", "placement-change.v1"]);
        assert!(reg.contains("oep/leave"));
        assert!(!reg.contains("route.schema"));
        assert_eq!(reg.raw("placement-change.v1"), Some(&placement_schema()));
    }

    #[test]
    fn valid_instance_passes() {
        let (_dir, reg) = registry();
        // Fictional personnummer and organisationsnummer with valid check digits.
        let ok = json!({"student": "201001011236", "operator": "212000-0142", "kind": "start", "unit": "SK7"});
        assert_eq!(reg.validate("placement-change.v1", &ok), Ok(()));
    }

    #[test]
    fn violations_list_paths_without_values() {
        let (_dir, reg) = registry();
        // Fictional: bad check digit; long unit value; surplus property keyed by a fictional pnr.
        let bad = json!({
            "student": "201001011237",
            "operator": "2120000143",
            "kind": "pause",
            "unit": "Hemliga skolan i Sundsvall",
            "hours": 60,
            "201001011236": true
        });
        let v = reg.validate("placement-change.v1", &bad).unwrap_err();
        let paths: Vec<&str> = v.iter().map(|v| v.instance_path.as_str()).collect();
        assert_eq!(
            paths,
            ["", "/hours", "/kind", "/operator", "/student", "/unit"]
        );
        let text = format!("{v:?}");
        for secret in [
            "201001011237",
            "201001011236",
            "2120000143",
            "Hemliga",
            "pause",
            "60",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let reason = |p: &str| {
            v.iter()
                .find(|x| x.instance_path == p)
                .unwrap()
                .reason
                .clone()
        };
        assert_eq!(reason("/student"), "is not a valid personnummer");
        assert_eq!(reason("/operator"), "is not a valid organisationsnummer");
        assert_eq!(reason("/unit"), "must be at most 10 characters");
        assert_eq!(reason("/kind"), "is not one of the allowed values");
        assert_eq!(reason("/hours"), "must be at most 50");
        assert!(reason("").contains("********-****"), "{}", reason(""));
        assert!(!reason("").contains("20100101"), "{}", reason(""));

        let v = reg
            .validate("placement-change.v1", &json!({"kind": "start"}))
            .unwrap_err();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].reason, "is missing the required property \"student\"");
        assert_eq!(
            v[0].to_string(),
            "(root): is missing the required property \"student\""
        );
        let v = reg
            .validate("placement-change.v1", &json!([1]))
            .unwrap_err();
        assert_eq!(v[0].reason, "must be of type object");
    }

    #[test]
    fn refs_between_schemas() {
        let (_dir, reg) = registry();
        assert_eq!(
            reg.validate(
                "oep/leave",
                &json!({"from": "2025-06-01", "student": "20100101-1236"})
            ),
            Ok(())
        );
        let v = reg
            .validate(
                "oep/leave",
                &json!({"from": "2025-13-01", "student": "201001011237"}),
            )
            .unwrap_err();
        assert_eq!(
            v,
            vec![
                Violation {
                    instance_path: "/from".into(),
                    reason: "is not a valid date".into()
                },
                Violation {
                    instance_path: "/student".into(),
                    reason: "is not a valid personnummer".into()
                },
            ]
        );
    }

    #[test]
    fn remote_refs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "remote.json",
            &json!({"$ref": "https://example.com/schema.json"}),
        );
        let errs = SchemaLoadError_texts(SchemaRegistry::load(dir.path()).unwrap_err());
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("remote.json"), "{}", errs[0]);
    }

    #[allow(non_snake_case)]
    fn SchemaLoadError_texts(errs: Vec<SchemaLoadError>) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn load_errors_name_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("broken.json"),
            "{\n  \"type\": \"object\",,\n}",
        )
        .unwrap();
        write(dir.path(), "bad.json", &json!({"type": "objekt"}));
        write(
            dir.path(),
            "typo.json",
            &json!({"type": "string", "format": "personummer"}),
        );
        write(dir.path(), "list.json", &json!([1, 2]));
        let errs = SchemaLoadError_texts(SchemaRegistry::load(dir.path()).unwrap_err());
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(
            errs.iter()
                .any(|e| e.contains("broken.json:2:") && e.contains("not valid JSON")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("bad.json") && e.contains("not a valid JSON Schema")),
            "{errs:#?}"
        );
        assert!(errs.iter().any(|e| e.contains("typo.json")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("list.json")), "{errs:#?}");
    }

    #[test]
    fn missing_dir_is_empty_and_unknown_name_is_a_violation() {
        let reg = SchemaRegistry::load(Path::new("/nonexistent/knut/schemas")).unwrap();
        assert_eq!(reg.names().count(), 0);
        assert!(SchemaRegistry::empty().validate("x", &json!({})).is_err());
    }

    #[test]
    fn duplicate_ids_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.json",
            &json!({"$id": "https://x.example/s.json"}),
        );
        write(
            dir.path(),
            "b.json",
            &json!({"$id": "https://x.example/s.json"}),
        );
        let errs = SchemaLoadError_texts(SchemaRegistry::load(dir.path()).unwrap_err());
        assert!(
            errs[0].contains("b.json") && errs[0].contains("a.json"),
            "{errs:?}"
        );
    }
}
