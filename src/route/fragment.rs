//! Route fragments: shared steps in `fragments/<name>.yaml`, put into routes by their
//! `include: <name>` steps (see [`crate::step::include`]).
//!
//! ```yaml
//! fragment: operator-owns-unit
//! description: 403 unless the school unit is the calling operator's
//! steps:
//!   - …
//! ```
//! A fragment file is read with positions like a route file, its steps linted on their
//! own; the cross-reference checks run for each route that includes it, and report in the
//! fragment's file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::diagnostic::{Diagnostic, did_you_mean};
use super::load::{LoadedRoute, Positions, from_yaml_error, lint_steps, relative};
use super::model::StepSpec;

/// A fragment file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FragmentFile {
    /// Its name: the file's name without `.yaml`.
    fragment: String,
    /// What it does, for people.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    /// Its steps.
    steps: Vec<StepSpec>,
}

/// A fragment read from its file, with the positions of its values.
#[derive(Debug, Clone)]
pub struct LoadedFragment {
    /// The fragment's name.
    pub name: String,
    /// The file it came from, relative to the root.
    pub file: PathBuf,
    /// Positions of the file's values by YAML path.
    pub positions: Positions,
    /// Its steps (its own `include`s resolved when it is put into a route).
    pub steps: Vec<StepSpec>,
}

impl LoadedFragment {
    fn diagnostic(&self, yaml_path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(
            self.file.clone(),
            self.positions.locate(yaml_path),
            yaml_path,
            message,
        )
    }
}

/// Every `fragments/*.yaml` under `root`, by name.
pub fn load_fragments(
    root: &Path,
) -> Result<BTreeMap<String, Arc<LoadedFragment>>, Vec<Diagnostic>> {
    let dir = root.join("fragments");
    let mut out = BTreeMap::new();
    let mut diags = Vec::new();
    for path in crate::core::files::yaml_files(&dir) {
        let rel = relative(root, &path);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::new(
                    rel,
                    (0, 0),
                    "",
                    format!("cannot read the fragment: {e}"),
                ));
                continue;
            }
        };
        let positions = Positions::of(&text);
        let file: FragmentFile = match serde_saphyr::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                diags.push(from_yaml_error(&rel, &positions, &e));
                continue;
            }
        };
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let loaded = LoadedFragment {
            name: file.fragment.clone(),
            file: rel,
            positions,
            steps: file.steps,
        };
        if loaded.name != stem {
            diags.push(loaded.diagnostic(
                "fragment",
                format!(
                    "the fragment is named `{}` but its file `{stem}.yaml`: name the file after \
                     the fragment",
                    loaded.name
                ),
            ));
            continue;
        }
        lint_steps(
            &|p, m| loaded.diagnostic(p, m),
            "steps",
            &loaded.steps,
            &mut diags,
        );
        out.insert(loaded.name.clone(), Arc::new(loaded));
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Put each route's included fragments in (recursively); the problems: an unknown
/// fragment, a fragment including itself.
pub fn resolve(
    routes: &mut [LoadedRoute],
    fragments: &BTreeMap<String, Arc<LoadedFragment>>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for r in routes.iter_mut() {
        let mut includes = Vec::new();
        let mut steps = std::mem::take(&mut r.route.steps);
        let mut problems: Vec<(String, String, Option<String>)> = Vec::new();
        fill(
            &mut steps,
            "steps",
            fragments,
            &mut Vec::new(),
            &mut includes,
            &mut problems,
        );
        r.route.steps = steps;
        r.includes = includes;
        for (path, message, suggestion) in problems {
            let mut d = r.diagnostic(&path, message);
            if suggestion.is_some() {
                d = d.with_suggestion(suggestion);
            }
            diags.push(d);
        }
    }
    diags
}

/// Fill the `include` steps of `steps` (at `base`); `stack` holds the fragments being
/// filled, to find one that includes itself.
fn fill(
    steps: &mut [StepSpec],
    base: &str,
    fragments: &BTreeMap<String, Arc<LoadedFragment>>,
    stack: &mut Vec<String>,
    includes: &mut Vec<(String, Arc<LoadedFragment>)>,
    problems: &mut Vec<(String, String, Option<String>)>,
) {
    for (i, step) in steps.iter_mut().enumerate() {
        let at = format!("{base}[{i}].{}", step.kind());
        match step {
            StepSpec::Include(inc) => {
                if stack.contains(&inc.fragment) {
                    problems.push((
                        at,
                        format!(
                            "fragment `{}` includes itself ({} → {}): a fragment may include \
                             others, never itself",
                            inc.fragment,
                            stack.join(" → "),
                            inc.fragment
                        ),
                        None,
                    ));
                    continue;
                }
                let Some(f) = fragments.get(&inc.fragment) else {
                    let known: Vec<String> = fragments.keys().cloned().collect();
                    problems.push((
                        at,
                        format!(
                            "unknown fragment `{}`: there is no fragments/{}.yaml",
                            inc.fragment, inc.fragment
                        ),
                        did_you_mean(&inc.fragment, &known),
                    ));
                    continue;
                };
                inc.steps = f.steps.clone();
                inc.resolved = true;
                includes.push((format!("{at}."), f.clone()));
                stack.push(inc.fragment.clone());
                fill(
                    &mut inc.steps,
                    &format!("{at}.steps"),
                    fragments,
                    stack,
                    includes,
                    problems,
                );
                stack.pop();
            }
            StepSpec::Choice(c) => {
                for (j, w) in c.when.iter_mut().enumerate() {
                    fill(
                        &mut w.steps,
                        &format!("{at}.when[{j}].steps"),
                        fragments,
                        stack,
                        includes,
                        problems,
                    );
                }
                fill(
                    &mut c.otherwise,
                    &format!("{at}.otherwise"),
                    fragments,
                    stack,
                    includes,
                    problems,
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::load::load_routes;

    fn root(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        dir
    }

    const ROUTE: &str =
        "route: r\nfrom:\n  queue: { exchange: x, keys: [k] }\nsteps:\n  - include: checks\n";

    #[test]
    fn a_fragment_is_put_in_and_reported_in_its_own_file() {
        let dir = root(&[
            ("routes/r.yaml", ROUTE),
            (
                "fragments/checks.yaml",
                "fragment: checks\nsteps:\n  - filter: { jq: '.ok' }\n  - include: inner\n",
            ),
            (
                "fragments/inner.yaml",
                "fragment: inner\nsteps:\n  - log: { message: inner }\n",
            ),
        ]);
        let routes = load_routes(dir.path()).expect("loads");
        let paths: Vec<String> = crate::step::with_paths(&routes[0].route.steps, "steps")
            .into_iter()
            .map(|(p, s)| format!("{p}.{}", s.kind()))
            .collect();
        assert_eq!(
            paths,
            [
                "steps[0].include",
                "steps[0].include.steps[0].filter",
                "steps[0].include.steps[1].include",
                "steps[0].include.steps[1].include.steps[0].log",
            ]
        );
        // A problem inside a nested fragment is placed in that fragment's file.
        let d = routes[0].diagnostic("steps[0].include.steps[1].include.steps[0].log", "x");
        assert_eq!(d.file, PathBuf::from("fragments/inner.yaml"));
        assert_eq!((d.line, d.path.as_str()), (3, "steps[0].log"));
        assert!(d.message.contains("included by route `r`"), "{}", d.message);
    }

    #[test]
    fn unknown_and_self_including_fragments_are_named() {
        let dir = root(&[
            ("routes/r.yaml", ROUTE),
            (
                "fragments/check.yaml",
                "fragment: check\nsteps:\n  - include: check\n",
            ),
        ]);
        let err = load_routes(dir.path()).expect_err("refused");
        let text: Vec<String> = err.iter().map(ToString::to_string).collect();
        let text = text.join("\n");
        assert!(text.contains("unknown fragment `checks`"), "{text}");
        assert!(text.contains("did you mean `check`"), "{text}");
        assert!(text.contains("routes/r.yaml:5:"), "{text}");
        let dir = root(&[
            ("routes/r.yaml", &ROUTE.replace("checks", "check")),
            (
                "fragments/check.yaml",
                "fragment: check\nsteps:\n  - include: check\n",
            ),
        ]);
        let err = load_routes(dir.path()).expect_err("refused");
        let text = err
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("includes itself (check → check)"), "{text}");
        assert!(text.contains("fragments/check.yaml:3:"), "{text}");
    }

    #[test]
    fn a_fragment_file_is_checked_like_a_route_file() {
        let dir = root(&[
            ("routes/r.yaml", ROUTE),
            (
                "fragments/checks.yaml",
                "fragment: checks\nsteps:\n  - filtr: { jq: '.ok' }\n",
            ),
        ]);
        let err = load_routes(dir.path()).expect_err("refused");
        let text = err
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("fragments/checks.yaml:3:"), "{text}");
        assert!(text.contains("did you mean `filter`"), "{text}");
        let dir = root(&[
            ("routes/r.yaml", ROUTE),
            ("fragments/checks.yaml", "fragment: other\nsteps: []\n"),
        ]);
        let err = load_routes(dir.path()).expect_err("refused");
        assert!(
            err[0]
                .to_string()
                .contains("name the file after the fragment")
        );
    }
}
