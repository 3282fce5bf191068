//! STUB (replaced by the route branch).
#![allow(missing_docs, dead_code, unused_variables)]
use crate::route::model::Route;
use std::path::{Path, PathBuf};
#[derive(Default, Debug, Clone)]
pub struct Positions;
#[derive(Debug, Clone)]
pub struct LoadedRoute {
    pub route: Route,
    pub file: PathBuf,
    pub positions: Positions,
}
pub fn load_routes(
    root: &Path,
) -> Result<Vec<LoadedRoute>, Vec<crate::route::diagnostic::Diagnostic>> {
    let mut out = vec![];
    for e in std::fs::read_dir(root.join("routes"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path();
        if p.to_string_lossy().ends_with(".test.yaml") {
            continue;
        }
        let t = std::fs::read_to_string(&p).unwrap_or_default();
        let route: Route = serde_saphyr::from_str(&t).map_err(|err| {
            vec![crate::route::diagnostic::Diagnostic(format!(
                "{}: {err}",
                p.display()
            ))]
        })?;
        out.push(LoadedRoute {
            route,
            file: p,
            positions: Positions,
        });
    }
    Ok(out)
}
pub fn route_json_schema() -> serde_json::Value {
    serde_json::Value::Null
}
