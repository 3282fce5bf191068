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
/// value of the file).
pub fn yaml_error(e: &serde_saphyr::Error) -> String {
    let at = e
        .location()
        .map(|l| format!("{}:{}: ", l.line(), l.column()))
        .unwrap_or_default();
    format!("{at}{}", e.without_snippet())
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
}
