//! Cross-reference checks of loaded routes: every schema, template, adapter operation, auth
//! scheme, jq program (`ordered_by` included) and cron expression a route names (its steps
//! and its `from`) must exist and compile; every `publish` must reach a consuming route;
//! `reply` only answers HTTP routes.
//!
//! The resources are looked up through a [`Catalog`], implemented by the runtime.

use super::diagnostic::{Diagnostic, did_you_mean};
use super::load::LoadedRoute;
use super::model::{From, Plane, Route, StepSpec};
use crate::broker::topic;
use crate::step::kind::{CheckCx, Problems};

/// Why an adapter operation was not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogMiss {
    /// There is no adapter of that name.
    #[error("no such adapter")]
    NoAdapter {
        /// The adapters that exist.
        known: Vec<String>,
    },
    /// The adapter exists but has no operation of that name.
    #[error("no such operation")]
    NoOperation {
        /// The adapter's operations.
        known: Vec<String>,
    },
}

/// The resources routes refer to (schemas, templates, adapters, auth schemes) and the
/// compilers of the expressions they contain.
pub trait Catalog {
    /// Is there a schema of this name (`schemas/<name>.json`)?
    fn has_schema(&self, name: &str) -> bool;
    /// All schema names.
    fn schema_names(&self) -> Vec<String>;
    /// Is there a template of this name (under `transforms/`)?
    fn has_template(&self, name: &str) -> bool;
    /// All template names.
    fn template_names(&self) -> Vec<String>;
    /// Does `adapter` exist and have `operation`?
    fn adapter_operation(&self, adapter: &str, operation: &str) -> Result<(), CatalogMiss>;
    /// Is there an auth scheme of this name? `none` is always known.
    fn has_auth(&self, name: &str) -> bool;
    /// All auth scheme names.
    fn auth_names(&self) -> Vec<String>;
    /// Compile a jq program; the error says why it does not compile.
    fn compile_jq(&self, program: &str) -> Result<(), String>;
    /// Read and compile the jq program of a file under `transforms/`.
    fn jq_file(&self, file: &str) -> Result<(), String>;
    /// Parse a cron expression; the error says why it is not valid.
    fn check_cron(&self, expr: &str) -> Result<(), String>;
    /// The outlets (`outlets/<name>.yaml`): exchanges a system outside Knutpunkt consumes.
    fn outlets(&self) -> Vec<OutletBinding> {
        Vec::new()
    }
}

/// An outlet as `knut check` sees it.
#[derive(Debug, Clone)]
pub struct OutletBinding {
    /// The outlet's name.
    pub name: String,
    /// The plane whose broker holds it.
    pub plane: Plane,
    /// Its exchange.
    pub exchange: String,
    /// Its queue's routing key patterns.
    pub bindings: Vec<String>,
    /// Its file, relative to the root.
    pub file: String,
}

/// Every step of `route` with its YAML path (`steps[1]`, `steps[2].choice.when[0].steps[0]`,
/// `steps[2].choice.otherwise[1]`), in file order, branches included.
pub fn steps_with_paths(route: &Route) -> Vec<(String, &StepSpec)> {
    crate::step::with_paths(&route.steps, "steps")
}

/// Check the cross-references of `routes` against `catalog`; empty when all is well.
pub fn check(routes: &[LoadedRoute], catalog: &dyn Catalog) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let outlets = catalog.outlets();
    // (the plane whose broker holds the binding, exchange, key pattern)
    let mut bindings: Vec<(Plane, &str, &str)> = routes
        .iter()
        .filter_map(|r| match &r.route.from {
            From::Queue(q) => Some((r.route.queue_plane(), q)),
            _ => None,
        })
        .flat_map(|(p, q)| {
            q.keys
                .iter()
                .map(move |k| (p, q.exchange.as_str(), k.as_str()))
        })
        .collect();
    for o in &outlets {
        bindings.extend(
            o.bindings
                .iter()
                .map(|k| (o.plane, o.exchange.as_str(), k.as_str())),
        );
    }
    for r in routes {
        if let From::Queue(q) = &r.route.from
            && let Some(o) = outlets.iter().find(|o| o.exchange == q.exchange)
        {
            out.push(r.diagnostic(
                "from.queue.exchange",
                format!(
                    "exchange `{}` is outlet `{}`'s ({}): a system outside Knutpunkt reads it \
                     in its own format, so no route consumes it; publish to another exchange \
                     for Knutpunkt's routes",
                    q.exchange, o.name, o.file
                ),
            ));
        }
    }
    planes(routes, &mut out);
    for r in routes {
        let mut c = Checker {
            r,
            catalog,
            out: &mut out,
            bindings: &bindings,
        };
        c.from();
        if let Some(program) = &r.route.ordered_by {
            c.jq("ordered_by", program);
        }
        for (path, step) in steps_with_paths(&r.route) {
            let at = format!("{path}.{}", step.kind());
            step.behaviour().check(&at, &mut c);
        }
    }
    out
}

/// The planes' rules: a bridge reads the external plane from an internal route and
/// validates before any side effect; an exchange belongs to one plane.
fn planes(routes: &[LoadedRoute], out: &mut Vec<Diagnostic>) {
    for r in routes {
        let From::Queue(q) = &r.route.from else {
            continue;
        };
        match (r.route.plane, q.plane) {
            (_, None) => {}
            (own, Some(read)) if own == read => {}
            (Plane::External, Some(Plane::Internal)) => out.push(r.diagnostic(
                "from.queue.plane",
                "an external route cannot read the internal plane: nothing flows outward \
                 through the broker; the only way across is a bridge, an internal route \
                 reading the external plane",
            )),
            (_, Some(_)) => {
                if r.route.ordered_by.is_some() {
                    out.push(r.diagnostic(
                        "ordered_by",
                        "a bridge cannot be ordered: its partition queues would live on the \
                         external plane; order the messages in a route after the bridge",
                    ));
                }
                // A bridge: a `validate` against a schema before anything else happens.
                let first_effect = r.route.steps.iter().enumerate().find(|(_, s)| {
                    !matches!(
                        s,
                        StepSpec::XmlToJson(_)
                            | StepSpec::CsvToJson(_)
                            | StepSpec::ExcelToJson(_)
                            | StepSpec::FixedToJson(_)
                            | StepSpec::Transform(_)
                            | StepSpec::Set(_)
                            | StepSpec::Filter(_)
                            | StepSpec::Log(_)
                    )
                });
                match first_effect {
                    Some((_, StepSpec::Validate(_))) => {}
                    Some((i, _)) => out.push(
                        r.diagnostic(
                            &format!("steps[{i}]"),
                            "a bridge (reading the external plane) must check what crosses: \
                             put a `validate` step before this one",
                        )
                        .with_expected("`- validate: { schema: <name> }`"),
                    ),
                    None => out.push(
                        r.diagnostic(
                            "steps",
                            "a bridge (reading the external plane) must check what crosses: it \
                             needs a `validate` step",
                        )
                        .with_expected("`- validate: { schema: <name> }`"),
                    ),
                }
            }
        }
    }
    // Exchange → (plane, the route that puts it there).
    let mut owner: std::collections::BTreeMap<&str, (Plane, &LoadedRoute)> = Default::default();
    for r in routes {
        let mut uses: Vec<(Plane, &str, String)> = Vec::new();
        if let From::Queue(q) = &r.route.from {
            uses.push((
                r.route.queue_plane(),
                &q.exchange,
                "from.queue.exchange".into(),
            ));
        }
        for (path, step) in steps_with_paths(&r.route) {
            if let StepSpec::Publish(p) = step {
                let many = matches!(p, crate::step::publish::PublishSpec::Many(_));
                for (j, t) in p.targets().iter().enumerate() {
                    let at = if many {
                        format!("{path}.publish[{j}].exchange")
                    } else {
                        format!("{path}.publish.exchange")
                    };
                    uses.push((r.route.plane, &t.exchange, at));
                }
            }
        }
        for (plane, exchange, at) in uses {
            match owner.get(exchange) {
                None => {
                    owner.insert(exchange, (plane, r));
                }
                Some((p, _)) if *p == plane => {}
                Some((p, first)) => out.push(r.diagnostic(
                    &at,
                    format!(
                        "exchange `{exchange}` is on the {p} plane (route `{}`), and this route \
                         uses it on the {plane} plane: an exchange belongs to one plane; to \
                         carry messages inward, a bridge reads it with `from.queue.plane: \
                         external` and publishes to an exchange of its own plane",
                        first.route.route
                    ),
                )),
            }
        }
    }
}

struct Checker<'a> {
    r: &'a LoadedRoute,
    catalog: &'a dyn Catalog,
    out: &'a mut Vec<Diagnostic>,
    /// (the plane whose broker holds the binding, exchange, key pattern)
    bindings: &'a [(Plane, &'a str, &'a str)],
}

impl Problems for Checker<'_> {
    fn problem(&mut self, path: &str, message: String, expected: Option<&str>) {
        let mut d = self.r.diagnostic(path, message);
        if let Some(e) = expected {
            d = d.with_expected(e);
        }
        self.out.push(d);
    }
}

impl CheckCx for Checker<'_> {
    fn schema(&mut self, path: &str, name: &str) {
        if !self.catalog.has_schema(name) {
            let known = self.catalog.schema_names();
            let d = self
                .r
                .diagnostic(
                    path,
                    format!("unknown schema `{name}`: there is no schemas/{name}.json"),
                )
                .with_choices(name, &known);
            self.push(d);
        }
    }

    fn template(&mut self, path: &str, name: &str) {
        if !self.catalog.has_template(name) {
            let known = self.catalog.template_names();
            let d = self
                .r
                .diagnostic(
                    path,
                    format!("unknown template `{name}`: there is no transforms/{name}"),
                )
                .with_choices(name, &known);
            self.push(d);
        }
    }

    fn jq_file(&mut self, path: &str, file: &str) {
        if let Err(why) = self.catalog.jq_file(file) {
            let d = self.r.diagnostic(path, why);
            self.push(d);
        }
    }

    fn jq(&mut self, path: &str, program: &str) {
        if let Err(why) = self.catalog.compile_jq(program) {
            let d = self
                .r
                .diagnostic(path, format!("the jq program does not compile: {why}"));
            self.push(d);
        }
    }

    fn adapter(&mut self, path: &str, field: &str, adapter: &str, operation: &str) -> bool {
        match self.catalog.adapter_operation(adapter, operation) {
            Ok(()) => true,
            Err(CatalogMiss::NoAdapter { known }) => {
                let d = self
                    .r
                    .diagnostic(
                        &format!("{path}.adapter"),
                        format!("unknown adapter `{adapter}`: there is no adapters/{adapter}.yaml"),
                    )
                    .with_choices(adapter, &known);
                self.push(d);
                false
            }
            Err(CatalogMiss::NoOperation { known }) => {
                let d = self
                    .r
                    .diagnostic(
                        &format!("{path}.{field}"),
                        format!("adapter `{adapter}` has no operation `{operation}`"),
                    )
                    .with_choices(operation, &known);
                self.push(d);
                true
            }
        }
    }

    fn publish(&mut self, path: &str, exchange: &str, key: &str) {
        let shape = match crate::step::publish::key_shape(key) {
            Ok(s) => s,
            Err(why) => {
                let d = self.r.diagnostic(&format!("{path}.key"), why);
                self.push(d);
                return;
            }
        };
        let plane = self.r.route.plane;
        let consumed = self.bindings.iter().any(|(p, x, pattern)| {
            *p == plane && *x == exchange && topic::may_match(pattern, &shape)
        });
        if consumed {
            return;
        }
        let known: Vec<String> = self
            .bindings
            .iter()
            .filter(|(p, x, _)| *p == plane && *x == exchange)
            .map(|(_, _, k)| k.to_string())
            .collect();
        let mut d = self.r.diagnostic(
            &format!("{path}.key"),
            format!(
                "nothing consumes `{key}` on exchange `{exchange}` of the {plane} plane: no \
                 route's `from.queue` there binds a matching key, so the broker would refuse it"
            ),
        );
        if known.is_empty() {
            d = d.with_expected(format!(
                "a route with `from: {{queue: {{exchange: {exchange}, keys: [...]}}}}`"
            ));
        } else {
            d = d
                .with_expected(format!(
                    "a key matching one of the bindings: {}",
                    known.join(", ")
                ))
                .with_suggestion(did_you_mean(key, &known));
        }
        self.push(d);
    }

    fn starts_from_http(&self) -> bool {
        matches!(self.r.route.from, From::Http(_))
    }
}

impl Checker<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.out.push(d);
    }

    fn from(&mut self) {
        match &self.r.route.from {
            From::Http(h) => {
                if let Some(scheme) = h.auth.scheme()
                    && !self.catalog.has_auth(scheme)
                {
                    let mut known = self.catalog.auth_names();
                    if !known.iter().any(|k| k == "none") {
                        known.push("none".into());
                    }
                    let d = self
                        .r
                        .diagnostic(
                            "from.http.auth",
                            format!(
                                "unknown auth scheme `{scheme}`: define it as [http.auth.{scheme}] in knut.toml"
                            ),
                        )
                        .with_choices(scheme, &known);
                    self.push(d);
                }
                if let Some(s) = &h.schema {
                    self.schema("from.http.schema", s);
                }
            }
            From::Timer(t) => {
                if let Err(why) = self.catalog.check_cron(&t.cron) {
                    let d = self
                        .r
                        .diagnostic(
                            "from.timer.cron",
                            format!("the cron expression is not valid: {why}"),
                        )
                        .with_expected("5 or 6 fields, e.g. `0 6 * * 1-5`");
                    self.push(d);
                }
            }
            From::Poll(p) => {
                if let Some(cron) = &p.cron
                    && let Err(why) = self.catalog.check_cron(cron)
                {
                    let d = self
                        .r
                        .diagnostic(
                            "from.poll.cron",
                            format!("the cron expression is not valid: {why}"),
                        )
                        .with_expected("5 or 6 fields, e.g. `*/5 * * * *`");
                    self.push(d);
                }
                let known = self.adapter("from.poll", "list", &p.adapter, &p.list);
                if let Some(fetch) = p.fetch.as_ref().filter(|_| known) {
                    self.adapter("from.poll", "fetch", &p.adapter, fetch);
                }
                self.jq("from.poll.items", &p.items);
                self.jq("from.poll.id", &p.id);
                if let Some(w) = &p.watermark {
                    self.jq("from.poll.watermark", w);
                }
            }
            From::Queue(_) | From::File(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::route::load::load_route_str;

    /// A small catalog: schemas, templates, adapters with operations, auth schemes; jq
    /// programs containing `!!` and cron expressions not of 5 fields do not compile.
    struct TestCatalog;

    impl Catalog for TestCatalog {
        fn has_schema(&self, name: &str) -> bool {
            self.schema_names().iter().any(|n| n == name)
        }
        fn schema_names(&self) -> Vec<String> {
            vec!["placement-change.v1".into(), "leave.v1".into()]
        }
        fn has_template(&self, name: &str) -> bool {
            self.template_names().iter().any(|n| n == name)
        }
        fn template_names(&self) -> Vec<String> {
            vec!["casedata/errand.json.tera".into()]
        }
        fn adapter_operation(&self, adapter: &str, operation: &str) -> Result<(), CatalogMiss> {
            let ops: &[&str] = match adapter {
                "elevregister" => &["update-placement", "get-student"],
                "casedata" => &["create-errand"],
                _ => {
                    return Err(CatalogMiss::NoAdapter {
                        known: vec!["casedata".into(), "elevregister".into()],
                    });
                }
            };
            if ops.contains(&operation) {
                Ok(())
            } else {
                Err(CatalogMiss::NoOperation {
                    known: ops.iter().map(|s| s.to_string()).collect(),
                })
            }
        }
        fn has_auth(&self, name: &str) -> bool {
            name == "none" || name == "portal"
        }
        fn auth_names(&self) -> Vec<String> {
            vec!["portal".into()]
        }
        fn jq_file(&self, file: &str) -> Result<(), String> {
            if file == "mapping.jq" {
                Ok(())
            } else {
                Err(format!("cannot read transforms/{file}"))
            }
        }

        fn compile_jq(&self, program: &str) -> Result<(), String> {
            if program.contains("!!") {
                Err("unexpected token".into())
            } else {
                Ok(())
            }
        }
        fn check_cron(&self, expr: &str) -> Result<(), String> {
            if expr.split_whitespace().count() == 5 {
                Ok(())
            } else {
                Err("wrong number of fields".into())
            }
        }
    }

    fn route(file: &str, text: &str) -> LoadedRoute {
        match load_route_str(Path::new(file), text) {
            Ok(r) => r,
            Err(d) => panic!("{d:?}"),
        }
    }

    const CONSUMER: &str = "\
route: audit
from:
  queue: { exchange: school.events, keys: ['placement.*', 'grade.#'] }
steps:
  - log: { message: seen }
";

    #[test]
    fn a_consistent_set_is_clean() {
        let good = "\
route: placement-change
from:
  http: { path: /p, auth: portal, schema: placement-change.v1 }
steps:
  - validate: { schema: placement-change.v1 }
  - enrich: { adapter: elevregister, operation: get-student, into: student }
  - to: { adapter: elevregister, operation: update-placement }
  - transform: { template: casedata/errand.json.tera }
  - publish: { exchange: school.events, key: placement.changed }
  - publish:
      - { exchange: school.events, key: grade.final.signed }
  - reply: {}
";
        let routes = [
            route("routes/a.yaml", good),
            route("routes/b.yaml", CONSUMER),
        ];
        assert_eq!(check(&routes, &TestCatalog), vec![]);
    }

    #[test]
    fn verify_signature_needs_compiling_programs_and_one_key_source() {
        let text = "\
route: signed
from:
  queue: { exchange: school.events, keys: [catalogue.assembled] }
steps:
  - verify_signature:
      jws: '.signature !!'
      payload: .document
      keys: { adapter: elevregister, operation: signing-keyz }
      signer: '!!'
  - verify_signature:
      jws: .signature
      payload: .document
      keys: { adapter: elevregister, file: keys.json }
  - verify_signature:
      jws: .signature
      payload: .document
      keys: { file: keys.json }
";
        let routes = [route("routes/signed.yaml", text)];
        let diags = check(&routes, &TestCatalog);
        let paths: Vec<&str> = diags.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "steps[0].verify_signature.jws",
                "steps[0].verify_signature.signer",
                "steps[0].verify_signature.keys.operation",
                "steps[1].verify_signature.keys",
            ],
            "{diags:#?}"
        );
        assert!(
            diags[3]
                .to_string()
                .contains("either `adapter` with `operation`, or `file`")
        );
        let d = &diags[2];
        assert_eq!((d.line, d.column), (8, 49), "{d}");
    }

    #[test]
    fn catches_each_reference_kind_with_positions_and_suggestions() {
        let bad = "\
route: bad
from:
  http: { path: /p, auth: portl, schema: placement-change.v2 }
steps:
  - validate: { schema: leav.v1 }
  - transform: { template: casedata/erand.json.tera }
  - to: { adapter: elevregistr, operation: update-placement }
  - enrich: { adapter: elevregister, operation: update-placment, into: x }
  - set: { headers: { unit: '.a !! .b' } }
  - choice:
      when:
        - jq: '!!'
          steps:
            - filter: { jq: '!! x' }
      otherwise:
        - split: { jq: '.x[] !!', scope: all }
  - aggregate: { correlation: '!!', complete: { when: '!!' } }
  - idempotent: { key: '!!' }
  - log: { message: m, jq: '!!' }
  - to: { file: { dir: out, name: '!!' } }
  - transform: { jq: '!!' }
  - publish: { exchange: school.events, key: placment.changed }
";
        let routes = [
            route("routes/bad.yaml", bad),
            route("routes/audit.yaml", CONSUMER),
        ];
        let diags = check(&routes, &TestCatalog);
        let by_path = |p: &str| {
            diags
                .iter()
                .find(|d| d.path == p)
                .unwrap_or_else(|| panic!("no diagnostic at {p}: {diags:#?}"))
        };
        let d = by_path("from.http.auth");
        assert_eq!(
            (d.line, d.column, d.suggestion.as_deref()),
            (3, 27, Some("portal"))
        );
        let d = by_path("from.http.schema");
        assert_eq!(d.suggestion.as_deref(), Some("placement-change.v1"));
        let d = by_path("steps[0].validate.schema");
        assert_eq!(
            (d.line, d.column, d.suggestion.as_deref()),
            (5, 25, Some("leave.v1"))
        );
        let d = by_path("steps[1].transform.template");
        assert_eq!(d.suggestion.as_deref(), Some("casedata/errand.json.tera"));
        let d = by_path("steps[2].to.adapter");
        assert_eq!(
            (d.line, d.column, d.suggestion.as_deref()),
            (7, 20, Some("elevregister"))
        );
        let d = by_path("steps[3].enrich.operation");
        assert_eq!(d.suggestion.as_deref(), Some("update-placement"));
        assert!(
            d.to_string()
                .contains("adapter `elevregister` has no operation `update-placment`")
        );
        for p in [
            "steps[4].set.headers.unit",
            "steps[5].choice.when[0].jq",
            "steps[5].choice.when[0].steps[0].filter.jq",
            "steps[5].choice.otherwise[0].split.jq",
            "steps[6].aggregate.correlation",
            "steps[6].aggregate.complete.when",
            "steps[7].idempotent.key",
            "steps[8].log.jq",
            "steps[9].to.file.name",
            "steps[10].transform.jq",
        ] {
            assert!(by_path(p).message.contains("does not compile"), "{p}");
        }
        let d = by_path("steps[5].choice.when[0].steps[0].filter.jq");
        assert_eq!((d.line, d.column), (14, 29));
        let d = by_path("steps[11].publish.key");
        assert!(
            d.message
                .starts_with("nothing consumes `placment.changed` on exchange `school.events`")
        );
        assert!(d.message.contains("the broker would refuse it"));
        assert_eq!(d.line, 22);
        assert_eq!(diags.len(), 17, "{diags:#?}");
    }

    #[test]
    fn the_route_language_constructs_are_checked_with_positions() {
        let bad = "\
route: lang
from:
  http: { path: /p, auth: portal }
steps:
  - enrich: { adapter: casedata, operation: create-errand, with: '{a: .x !!}', into: e }
  - call: { adapter: casedta, operation: create-errand, into: c }
  - to: { adapter: casedata, operation: create-errand, with: '!!' }
  - transform: { jq_file: mapings.jq }
  - reply: { problem: { status: 200, type: no such thing, title: t, detail: '{.a !!}' } }
  - transform: { jq: '.', jq_file: mapping.jq }
";
        // The file's shape problems stop the loader; the references are checked on the
        // route as read.
        let lr = LoadedRoute {
            route: serde_saphyr::from_str(bad).expect("reads"),
            file: "routes/lang.yaml".into(),
            positions: crate::route::load::Positions::of(bad),
            includes: Vec::new(),
        };
        let mut diags = check(&[lr], &TestCatalog);
        // The file's own checks (shapes) come from the loader.
        diags.extend(
            crate::route::load::load_route_str(std::path::Path::new("routes/lang.yaml"), bad)
                .err()
                .unwrap_or_default(),
        );
        let at = |p: &str| {
            diags
                .iter()
                .find(|d| d.path == p)
                .unwrap_or_else(|| panic!("no diagnostic at {p}: {diags:#?}"))
        };
        let d = at("steps[0].enrich.with");
        assert!(d.message.contains("does not compile"), "{d}");
        assert_eq!(d.line, 5);
        let d = at("steps[1].call.adapter");
        assert_eq!(d.suggestion.as_deref(), Some("casedata"));
        assert_eq!(at("steps[2].to.with").line, 7);
        let d = at("steps[3].transform.jq_file");
        assert!(
            d.message.contains("cannot read transforms/mapings.jq"),
            "{d}"
        );
        assert!(
            at("steps[4].reply.problem.status")
                .message
                .contains("4xx or 5xx")
        );
        assert!(
            at("steps[4].reply.problem.type")
                .message
                .contains("without spaces")
        );
        assert!(
            at("steps[4].reply.problem.detail")
                .message
                .contains("compile")
        );
        assert!(
            at("steps[5].transform")
                .message
                .contains("exactly one of `jq`, `jq_file` and `template`")
        );
    }

    #[test]
    fn publish_needs_a_matching_binding_on_the_same_exchange() {
        let publisher = |key: &str, exchange: &str| {
            route(
                "routes/p.yaml",
                &format!(
                    "route: p\nfrom:\n  timer: {{cron: '0 6 * * 1-5'}}\nsteps:\n  - publish: {{exchange: {exchange}, key: {key}}}\n"
                ),
            )
        };
        let consumer = route("routes/c.yaml", CONSUMER);
        for (key, exchange, ok) in [
            ("placement.ended", "school.events", true),
            ("placement.ended.late", "school.events", false),
            ("grade", "school.events", true),
            ("grade.a.b", "school.events", true),
            ("placement.ended", "other.events", false),
        ] {
            let diags = check(&[publisher(key, exchange), consumer.clone()], &TestCatalog);
            assert_eq!(diags.is_empty(), ok, "{key} on {exchange}: {diags:#?}");
        }
    }

    /// A catalog with one outlet: `legacy.transport`, bound `decision.#` on the internal plane.
    struct OutletCatalog;

    impl Catalog for OutletCatalog {
        fn has_schema(&self, name: &str) -> bool {
            TestCatalog.has_schema(name)
        }
        fn schema_names(&self) -> Vec<String> {
            TestCatalog.schema_names()
        }
        fn has_template(&self, name: &str) -> bool {
            TestCatalog.has_template(name)
        }
        fn template_names(&self) -> Vec<String> {
            TestCatalog.template_names()
        }
        fn adapter_operation(&self, adapter: &str, operation: &str) -> Result<(), CatalogMiss> {
            TestCatalog.adapter_operation(adapter, operation)
        }
        fn has_auth(&self, name: &str) -> bool {
            TestCatalog.has_auth(name)
        }
        fn auth_names(&self) -> Vec<String> {
            TestCatalog.auth_names()
        }
        fn compile_jq(&self, program: &str) -> Result<(), String> {
            TestCatalog.compile_jq(program)
        }
        fn jq_file(&self, file: &str) -> Result<(), String> {
            TestCatalog.jq_file(file)
        }
        fn check_cron(&self, expr: &str) -> Result<(), String> {
            TestCatalog.check_cron(expr)
        }
        fn outlets(&self) -> Vec<OutletBinding> {
            vec![OutletBinding {
                name: "skolskjuts-legacy".into(),
                plane: Plane::Internal,
                exchange: "legacy.transport".into(),
                bindings: vec!["decision.#".into()],
                file: "outlets/skolskjuts-legacy.yaml".into(),
            }]
        }
    }

    #[test]
    fn an_outlet_binds_keys_and_no_route_consumes_its_exchange() {
        let publisher = |key: &str| {
            route(
                "routes/p.yaml",
                &format!(
                    "route: p\nfrom:\n  timer: {{cron: '0 6 * * 1-5'}}\nsteps:\n  - publish: {{exchange: legacy.transport, key: {key}}}\n"
                ),
            )
        };
        assert_eq!(
            check(&[publisher("decision.granted")], &OutletCatalog),
            vec![]
        );
        let diags = check(&[publisher("beslut.granted")], &OutletCatalog);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert!(diags[0].message.contains("nothing consumes"), "{diags:#?}");
        assert!(
            format!("{diags:?}").contains("decision.#"),
            "the outlet's binding is suggested: {diags:#?}"
        );
        let reader = route(
            "routes/r.yaml",
            "route: r\nfrom:\n  queue: { exchange: legacy.transport, keys: ['decision.#'] }\nsteps:\n  - filter: { jq: 'true' }\n",
        );
        let diags = check(&[reader], &OutletCatalog);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(
            diags[0].message,
            "exchange `legacy.transport` is outlet `skolskjuts-legacy`'s \
             (outlets/skolskjuts-legacy.yaml): a system outside Knutpunkt reads it in its own \
             format, so no route consumes it; publish to another exchange for Knutpunkt's routes"
        );
        assert_eq!(diags[0].path, "from.queue.exchange");
    }

    #[test]
    fn poll_names_operations_programs_and_cron_with_positions() {
        let good = "\
route: p
from:
  poll:
    adapter: casedata
    list: create-errand
    fetch: create-errand
    every: 1m
    items: '.errands[]'
    id: .id
    watermark: .updated
";
        assert_eq!(check(&[route("routes/p.yaml", good)], &TestCatalog), vec![]);
        let bad = "\
route: p
from:
  poll:
    adapter: casedata
    list: create-erand
    fetch: get-errand
    cron: '0 6 * *'
    items: '.errands[] !!'
    id: '!!'
    watermark: '!!'
";
        let diags = check(&[route("routes/p.yaml", bad)], &TestCatalog);
        let paths: Vec<&str> = diags.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "from.poll.cron",
                "from.poll.list",
                "from.poll.fetch",
                "from.poll.items",
                "from.poll.id",
                "from.poll.watermark"
            ]
        );
        assert_eq!((diags[1].line, diags[1].column), (5, 11));
        assert!(diags[1].message.contains("has no operation `create-erand`"));
        assert_eq!(diags[1].suggestion.as_deref(), Some("create-errand"));
        assert_eq!((diags[3].line, diags[3].column), (8, 12));
        // An unknown adapter is reported once, not again for `fetch`.
        let unknown = bad.replace("adapter: casedata", "adapter: oepp");
        let diags = check(&[route("routes/p.yaml", &unknown)], &TestCatalog);
        assert_eq!(
            diags
                .iter()
                .filter(|d| d.path.starts_with("from.poll.adapter"))
                .count(),
            1
        );
        assert!(!diags.iter().any(|d| d.path == "from.poll.fetch"));
    }

    #[test]
    fn ordered_by_must_compile_and_is_positioned() {
        let text = "route: o\nfrom:\n  http: {path: /o, auth: none}\nordered_by: '.student !!'\n";
        let diags = check(&[route("routes/o.yaml", text)], &TestCatalog);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        let d = &diags[0];
        assert_eq!((d.path.as_str(), d.line, d.column), ("ordered_by", 4, 13));
        assert!(d.message.contains("does not compile"), "{d}");
        assert!(
            d.to_string()
                .starts_with("routes/o.yaml:4:13: ordered_by: the jq program does not compile"),
            "{d}"
        );
        let good = "route: o\nfrom:\n  http: {path: /o, auth: none}\nordered_by: .student\n";
        assert_eq!(check(&[route("routes/o.yaml", good)], &TestCatalog), vec![]);
    }

    #[test]
    fn reply_only_in_http_routes_and_cron_is_checked() {
        let r = route(
            "routes/t.yaml",
            "route: t\nfrom:\n  timer: {cron: '0 6 * *'}\nsteps:\n  - reply: {status: 200}\n",
        );
        let diags = check(&[r], &TestCatalog);
        let paths: Vec<&str> = diags.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["from.timer.cron", "steps[0].reply"]);
        assert_eq!((diags[1].line, diags[1].column), (5, 12));
    }
}
