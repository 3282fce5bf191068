//! Resources: what routes refer to by name — schemas, templates, adapters — loaded once from
//! the root's folders and shared by every route.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::adapter::client::{AdapterClient, LookupMiss};
use crate::adapter::{Adapter, load_adapters};
use crate::config::AuthScheme;
use crate::expr::Program;
use crate::route::check::{Catalog, CatalogMiss};
use crate::route::load::LoadedRoute;
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
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };
        let adapters = load_adapters(root, sandbox).unwrap_or_else(|e| {
            errors.extend(e.iter().map(|e| e.to_string()));
            Default::default()
        });
        let client = match AdapterClient::new(&adapters) {
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
                templates: Arc::new(templates),
                adapters: Arc::new(adapters),
                client,
            }),
            _ => Err(errors),
        }
    }
}

/// What `knut check` checks route references against: the resources and the auth
/// schemes of the configuration.
pub struct CheckCatalog<'a> {
    /// The root's resources.
    pub resources: &'a Resources,
    /// Names of `[http.auth.<name>]` schemes.
    pub auth: Vec<String>,
}

impl Catalog for CheckCatalog<'_> {
    fn has_schema(&self, name: &str) -> bool {
        self.resources.schemas.contains(name)
    }

    fn schema_names(&self) -> Vec<String> {
        self.resources.schemas.names().map(str::to_string).collect()
    }

    fn has_template(&self, name: &str) -> bool {
        self.resources.templates.contains(name)
    }

    fn template_names(&self) -> Vec<String> {
        self.resources
            .templates
            .names()
            .map(str::to_string)
            .collect()
    }

    fn adapter_operation(&self, adapter: &str, operation: &str) -> Result<(), CatalogMiss> {
        self.resources
            .client
            .lookup(adapter, operation)
            .map_err(|miss| match miss {
                LookupMiss::NoAdapter { known } => CatalogMiss::NoAdapter { known },
                LookupMiss::NoOperation { known } => CatalogMiss::NoOperation { known },
            })
    }

    fn has_auth(&self, name: &str) -> bool {
        name == "none" || self.auth.iter().any(|a| a == name)
    }

    fn auth_names(&self) -> Vec<String> {
        std::iter::once("none".to_string())
            .chain(self.auth.iter().cloned())
            .collect()
    }

    fn compile_jq(&self, program: &str) -> Result<(), String> {
        Program::compile(program)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn check_cron(&self, expr: &str) -> Result<(), String> {
        crate::endpoint::timer::parse_cron(expr).map(|_| ())
    }
}

/// Check the routes' references against the resources and the configured auth schemes.
pub fn check(
    routes: &[LoadedRoute],
    resources: &Resources,
    auth: &BTreeMap<String, AuthScheme>,
) -> Vec<String> {
    let catalog = CheckCatalog {
        resources,
        auth: auth.keys().cloned().collect(),
    };
    let mut problems: Vec<String> = crate::route::check::check(routes, &catalog)
        .iter()
        .map(ToString::to_string)
        .collect();
    for lr in routes {
        if let crate::route::model::From::Http(h) = &lr.route.from
            && let Err(e) = crate::endpoint::http::check_path(&h.path)
        {
            problems.push(lr.diagnostic("from.http.path", e).to_string());
        }
    }
    problems
}
