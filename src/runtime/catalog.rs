//! What `knut check` checks route references against: the root's resources (schemas,
//! templates, adapters), the configured auth schemes, and the endpoints' own syntax (cron,
//! HTTP paths). The runtime is where these meet, so the catalog lives here and the route
//! checks ([`crate::route::check`]) know only the [`Catalog`] trait.

use std::collections::BTreeMap;

use crate::adapter::client::LookupMiss;
use crate::config::AuthScheme;
use crate::expr::Program;
use crate::resources::Resources;
use crate::route::check::{Catalog, CatalogMiss, OutletBinding};
use crate::route::load::LoadedRoute;

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

    fn jq_file(&self, file: &str) -> Result<(), String> {
        let src = crate::step::transform::read_jq_file(&self.resources.root, file)?;
        Program::compile(&src)
            .map(|_| ())
            .map_err(|e| format!("the jq program in transforms/{file} does not compile: {e}"))
    }

    fn check_cron(&self, expr: &str) -> Result<(), String> {
        crate::endpoint::timer::parse_cron(expr).map(|_| ())
    }

    fn outlets(&self) -> Vec<OutletBinding> {
        self.resources
            .outlets
            .iter()
            .map(|o| OutletBinding {
                name: o.name.clone(),
                plane: o.plane,
                exchange: o.exchange.clone(),
                bindings: o.bindings.clone(),
                file: o.file.clone(),
            })
            .collect()
    }
}

/// Check the routes' references against the resources and the configured auth schemes, and
/// the settings files against their schemas.
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
        .chain(&crate::route::settings::check(
            &resources.root,
            &resources.schemas,
        ))
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
