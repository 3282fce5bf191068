//! Resources: what routes refer to by name — schemas, templates, adapters, outlets — loaded once from
//! the root's folders and shared by every route. (What `knut check` checks routes against
//! them is [`crate::runtime::catalog`].)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::adapter::client::AdapterClient;
use crate::adapter::{Adapter, load_adapters};
use crate::outlet::Outlets;
use crate::schema::SchemaRegistry;
use crate::template::Templates;

/// Schemas, templates and adapters of a root.
#[derive(Clone)]
pub struct Resources {
    /// The root folder.
    pub root: PathBuf,
    /// `schemas/`.
    pub schemas: Arc<SchemaRegistry>,
    /// `transforms/`.
    pub templates: Arc<Templates>,
    /// `adapters/`, as defined.
    pub adapters: Arc<std::collections::BTreeMap<String, Adapter>>,
    /// The client that calls them.
    pub client: AdapterClient,
    /// `outlets/`: exchanges and queues consumed outside Knutpunkt.
    pub outlets: Arc<Outlets>,
    /// `settings/<name>.yaml`, by name: what the integration team tunes without touching
    /// routes, read by every jq program of a route as `$settings.<name>`.
    pub settings: Arc<serde_json::Value>,
}

/// The settings files of `root` (`settings/<name>.yaml`) as one object by name.
pub fn load_settings(root: &Path) -> Result<serde_json::Value, Vec<String>> {
    let mut all = serde_json::Map::new();
    let mut errors = Vec::new();
    for path in crate::core::files::yaml_files(&root.join("settings")) {
        let file = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{file}: cannot be read: {e}"));
                continue;
            }
        };
        match serde_saphyr::from_str::<serde_json::Value>(&text) {
            Ok(value) => {
                all.insert(name, value);
            }
            Err(e) => errors.push(format!("{file}: not valid YAML: {e}")),
        }
    }
    match errors.is_empty() {
        true => Ok(serde_json::Value::Object(all)),
        false => Err(errors),
    }
}

impl Resources {
    /// Load every resource under `root`; all problems are returned together.
    pub fn load(root: &Path) -> Result<Resources, Vec<String>> {
        Self::load_with_sandbox(root, None)
    }

    /// Like [`Resources::load`]; with `sandbox` (the running sandbox's origin), adapter
    /// files pointing at the sandbox follow it there (see [`load_adapters`]).
    pub fn load_with_sandbox(root: &Path, sandbox: Option<&str>) -> Result<Resources, Vec<String>> {
        let mut errors = Vec::new();
        let schemas = SchemaRegistry::load(&root.join("schemas")).unwrap_or_else(|e| {
            errors.extend(e.iter().map(|e| e.to_string()));
            SchemaRegistry::empty()
        });
        let templates = match Templates::load(&root.join("transforms")) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };
        let adapters = load_adapters(root, sandbox).unwrap_or_else(|e| {
            errors.extend(e.iter().map(|e| e.to_string()));
            Default::default()
        });
        let outlets = Outlets::load(root).unwrap_or_else(|e| {
            errors.extend(e.iter().map(|e| e.to_string()));
            Outlets::default()
        });
        let settings = load_settings(root).unwrap_or_else(|e| {
            errors.extend(e);
            serde_json::Value::Null
        });
        let client = match AdapterClient::with_templates(
            &adapters,
            templates
                .clone()
                .unwrap_or_else(|| Arc::new(Templates::empty())),
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        match (templates, client) {
            (Some(templates), Some(client)) if errors.is_empty() => Ok(Resources {
                root: root.to_path_buf(),
                schemas: Arc::new(schemas),
                templates,
                adapters: Arc::new(adapters),
                client,
                outlets: Arc::new(outlets),
                settings: Arc::new(settings),
            }),
            _ => Err(errors),
        }
    }
}
