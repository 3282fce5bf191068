//! The files of a root's folders (`adapters/`, `outlets/`, `fragments/`): which YAML files a
//! folder holds, and a YAML error as a person reads it.

use std::path::{Path, PathBuf};

/// The `*.yaml` and `*.yml` files directly in `dir`, sorted; none when `dir` is missing.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

/// A YAML or shape error as `line:column: what`, without the source snippet (it may hold a
/// value of the file); an unknown key with the keys expected and the likely one.
pub fn yaml_error(e: &serde_saphyr::Error) -> String {
    let at = e
        .location()
        .map(|l| format!("{}:{}: ", l.line(), l.column()))
        .unwrap_or_default();
    let mut inner = e;
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = inner
    {
        inner = error;
    }
    if let serde_saphyr::Error::SerdeUnknownField {
        field, expected, ..
    } = inner
    {
        let name = crate::core::suggest::printable_name(field)
            .map(|f| format!(" `{f}`"))
            .unwrap_or_default();
        let mut text = format!(
            "{at}unknown key{name}; expected one of: {}",
            expected.join(", ")
        );
        if let Some(like) = crate::core::suggest::did_you_mean(field, expected) {
            text.push_str(&format!("; did you mean `{like}`?"));
        }
        return text;
    }
    let what = e.without_snippet().to_string();
    // The position is already in front.
    let what = match what.rfind(" at line ") {
        Some(i) if !at.is_empty() => what[..i].to_string(),
        _ => what,
    };
    format!("{at}{what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_yaml_files_sorted_and_none_for_a_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.yml", "c.txt"] {
            std::fs::write(dir.path().join(name), "x: 1\n").unwrap();
        }
        let names: Vec<String> = yaml_files(dir.path())
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);
        assert!(yaml_files(&dir.path().join("missing")).is_empty());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Spec {
        bindings: Vec<String>,
        queue: String,
    }

    #[test]
    fn an_unknown_key_is_positioned_with_the_likely_one() {
        let e = serde_saphyr::from_str::<Spec>("queue: q\nbinding: ['#']\n").unwrap_err();
        assert_eq!(
            yaml_error(&e),
            "2:1: unknown key `binding`; expected one of: bindings, queue; did you mean `bindings`?"
        );
        let e = serde_saphyr::from_str::<Spec>("queue: [1]\nbindings: []\n").unwrap_err();
        let text = yaml_error(&e);
        assert!(text.starts_with("1:"), "{text}");
        assert_eq!(text.matches("line").count(), 0, "one position only: {text}");
    }
}
