//! The runtime: wires a root (routes, adapters, schemas, transforms, `knut.toml`) into a
//! running system — broker topology, one worker per route, endpoints, admin — and shuts it
//! down gracefully.

pub mod catalog;
pub mod effects;
pub mod journal;
pub mod ordered;
pub mod posture;
#[cfg(test)]
mod test_support;
pub mod testing;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::broker::amqp::{AmqpBroker, AmqpOptions};
use crate::broker::embedded::EmbeddedBroker;
use crate::broker::{
    OutletQueue, RouteQueue, SharedBroker, Topology, dead_letter_queue, partition_queues,
    work_queue,
};
use crate::config::{AuthScheme, Config};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::endpoint::Ingress;
use crate::endpoint::http::{AuthCheck, HttpRoute, HttpSettings, Replies};
use crate::endpoint::openapi::AuthKind;
use crate::resources::Resources;
use crate::route::load::{LoadedRoute, load_routes};
use crate::route::model::{From, Plane, StepSpec};
use crate::step::aggregate::{self, Aggregate};
use crate::step::{Context, Pipeline};
use crate::store::Store;
use axum::response::IntoResponse as _;
use effects::LiveEffects;
use journal::Journal;
use worker::RouteWorker;

/// Why the system could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The root's files have errors (each line one problem, with its position).
    #[error("the configuration has errors:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// Something outside failed: a port taken, the store or broker unreachable.
    #[error("{0}")]
    Start(String),
    /// The configuration fails open for its profile (see [`posture`]).
    #[error("refusing to start ({profile} profile):\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Refused {
        /// `production` or `development`.
        profile: &'static str,
        /// Each reason, naming its fix.
        problems: Vec<String>,
    },
}

/// A root's routes and resources, loaded and checked.
pub struct Loaded {
    /// The routes.
    pub routes: Vec<LoadedRoute>,
    /// Schemas, templates, adapters.
    pub resources: Resources,
    /// The auth schemes in force (see [`Config::auth_schemes`]).
    pub auth: BTreeMap<String, AuthScheme>,
    /// Of those, the development schemes trusting the sandbox's test issuer.
    pub development_auth: Vec<String>,
}

/// Load and check every file of a root. All problems are reported together.
pub fn load(root: &Path, config: &Config) -> Result<Loaded, Vec<String>> {
    let sandbox = config.sandbox_enabled().then(|| config.sandbox_origin());
    let resources = Resources::load_with_sandbox(root, sandbox.as_deref());
    let routes = load_routes(root);
    match (resources, routes) {
        (Ok(resources), Ok(routes)) => {
            let named: Vec<&str> = routes
                .iter()
                .filter_map(|lr| match &lr.route.from {
                    From::Http(h) => h.auth.scheme(),
                    _ => None,
                })
                .collect();
            let (auth, development_auth) = config.auth_schemes(named);
            let mut problems = catalog::check(&routes, &resources, &auth);
            if config.profile == crate::config::Profile::Production
                && problems.iter().any(|p| p.contains("unknown auth scheme"))
            {
                problems.push(
                    "(production profile: an auth scheme a route names is never made up; \
                     configure it, or start a development instance with `knut run --dev`)"
                        .into(),
                );
            }
            if problems.is_empty() {
                Ok(Loaded {
                    routes,
                    resources,
                    auth,
                    development_auth,
                })
            } else {
                Err(problems)
            }
        }
        (r, l) => {
            let mut problems = r.err().unwrap_or_default();
            if let Err(d) = l {
                problems.extend(d.iter().map(|d| d.to_string()));
            }
            Err(problems)
        }
    }
}

/// Every step of a route, nested ones included.
pub fn all_steps(steps: &[StepSpec]) -> Vec<&StepSpec> {
    crate::step::with_paths(steps, "steps")
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

/// The broker topology of a set of routes: exchanges from `from.queue` and `publish`, one
/// work queue per route with its bindings (and the partitions of an ordered route). Both
/// planes together, as on one broker (development); see [`plane_topology`].
pub fn topology(routes: &[LoadedRoute]) -> Topology {
    topology_where(routes, |_| true)
}

/// What `plane`'s broker holds of `routes`: the queues of the routes reading it (bridges
/// included) with their bindings, and the exchanges those read and the plane's routes
/// publish to.
pub fn plane_topology(routes: &[LoadedRoute], plane: Plane) -> Topology {
    topology_where(routes, |p| p == plane)
}

/// The queues of `plane`'s outlets with their bindings.
pub fn outlet_queues(outlets: &crate::outlet::Outlets, plane: Plane) -> Vec<OutletQueue> {
    outlets
        .iter()
        .filter(|o| o.plane == plane)
        .map(|o| OutletQueue {
            queue: o.queue.clone(),
            queue_type: o.queue_type,
            bindings: o
                .bindings
                .iter()
                .map(|k| (o.exchange.clone(), k.clone()))
                .collect(),
        })
        .collect()
}

fn topology_where(routes: &[LoadedRoute], on: impl Fn(Plane) -> bool) -> Topology {
    let mut exchanges = BTreeSet::new();
    let mut queues = Vec::new();
    for lr in routes {
        let r = &lr.route;
        if on(r.queue_plane()) {
            let mut bindings = Vec::new();
            if let From::Queue(q) = &r.from {
                exchanges.insert(q.exchange.clone());
                for k in &q.keys {
                    bindings.push((q.exchange.clone(), k.clone()));
                }
            }
            queues.push(RouteQueue {
                route: r.route.clone(),
                bindings,
                partitions: r.ordered_partitions(),
            });
        }
        if on(r.plane) {
            for s in all_steps(&r.steps) {
                if let StepSpec::Publish(p) = s {
                    for t in p.targets() {
                        exchanges.insert(t.exchange.clone());
                    }
                }
            }
        }
    }
    Topology {
        exchanges: exchanges.into_iter().collect(),
        routes: queues,
        outlets: Vec::new(),
    }
}

/// The broker named by the configuration's `broker.url`: RabbitMQ, else embedded.
pub async fn connect_broker(config: &Config) -> Result<SharedBroker, RuntimeError> {
    connect_url(config.broker.url.as_deref(), config, "broker.url").await
}

/// RabbitMQ at `url`, or the embedded broker when there is none.
async fn connect_url(
    url: Option<&str>,
    config: &Config,
    key: &str,
) -> Result<SharedBroker, RuntimeError> {
    match url {
        None | Some("") => {
            tracing::warn!(
                "no {key}: using the embedded broker (in memory, not durable; for development, tests and demos)"
            );
            Ok(Arc::new(EmbeddedBroker::new()))
        }
        Some(url) if url.starts_with("amqp://") || url.starts_with("amqps://") => {
            let opts = AmqpOptions {
                queue_type: config.broker.queue_type,
                // The cluster's other nodes, for a URL on the same broker as broker.url
                // (another plane's vhost); never a different broker's credentials to them.
                nodes: match config.broker.url.as_deref() {
                    Some(main)
                        if crate::broker::amqp::host_of(main)
                            == crate::broker::amqp::host_of(url) =>
                    {
                        config.broker.nodes.clone()
                    }
                    _ => Vec::new(),
                },
                ..AmqpOptions::new(url)
            };
            let broker = AmqpBroker::connect(opts)
                .await
                .map_err(|e| RuntimeError::Start(format!("RabbitMQ ({key}): {e}")))?;
            tracing::info!(key, "connected to RabbitMQ");
            Ok(Arc::new(broker))
        }
        Some(_) => Err(RuntimeError::Start(format!(
            "{key} must start with amqp:// or amqps:// (or be unset for the embedded broker)"
        ))),
    }
}

/// The broker connections of the planes an instance runs.
#[derive(Clone, Default)]
struct Brokers {
    internal: Option<SharedBroker>,
    external: Option<SharedBroker>,
    /// The external vhost as the internal plane's bridge routes read it.
    bridge: Option<SharedBroker>,
}

impl Brokers {
    /// Connect what `routes` need: each plane's own broker, and the bridge connection. In
    /// development an unset external URL shares the internal connection (exchange names
    /// keep the planes apart there; production refuses it, see [`posture`]).
    async fn connect(
        config: &Config,
        planes: &[Plane],
        routes: &[LoadedRoute],
    ) -> Result<Brokers, RuntimeError> {
        let mut b = Brokers::default();
        if planes.contains(&Plane::Internal) {
            b.internal = Some(connect_broker(config).await?);
        }
        if planes.contains(&Plane::External)
            && routes.iter().any(|r| r.route.plane == Plane::External)
        {
            b.external = Some(match (&config.external.broker_url, &b.internal) {
                (Some(url), _) => connect_url(Some(url), config, "external.broker_url").await?,
                (None, Some(shared)) => shared.clone(),
                (None, None) => connect_broker(config).await?,
            });
        }
        if routes.iter().any(posture::is_bridge) {
            b.bridge = Some(match &config.external.bridge_url {
                Some(url) => connect_url(Some(url), config, "external.bridge_url").await?,
                None => match (&b.external, &b.internal) {
                    (Some(e), _) => e.clone(),
                    (None, Some(i)) => i.clone(),
                    (None, None) => connect_broker(config).await?,
                },
            });
        }
        Ok(b)
    }

    /// The broker of `plane`.
    fn of(&self, plane: Plane) -> Option<&SharedBroker> {
        match plane {
            Plane::Internal => self.internal.as_ref(),
            Plane::External => self.external.as_ref(),
        }
    }

    /// Where `lr`'s queue lives (a bridge's: the bridge connection).
    fn queue(&self, lr: &LoadedRoute) -> Option<&SharedBroker> {
        if posture::is_bridge(lr) {
            self.bridge.as_ref()
        } else {
            self.of(lr.route.plane)
        }
    }

    /// Every distinct connection.
    fn all(&self) -> Vec<SharedBroker> {
        let mut out: Vec<SharedBroker> = Vec::new();
        for b in [&self.internal, &self.external, &self.bridge]
            .into_iter()
            .flatten()
        {
            if !out.iter().any(|o| Arc::ptr_eq(o, b)) {
                out.push(b.clone());
            }
        }
        out
    }

    /// Declare on each connection what it holds of `routes`.
    async fn declare(
        &self,
        routes: &[LoadedRoute],
        outlets: &crate::outlet::Outlets,
    ) -> Result<(), RuntimeError> {
        let declare = |broker: &SharedBroker, topology: Topology| {
            let broker = broker.clone();
            async move {
                broker
                    .declare(&topology)
                    .await
                    .map_err(|e| RuntimeError::Start(format!("broker topology: {e}")))
            }
        };
        if let Some(b) = &self.internal {
            let own: Vec<LoadedRoute> = routes
                .iter()
                .filter(|r| r.route.plane == Plane::Internal && !posture::is_bridge(r))
                .cloned()
                .collect();
            let mut own = plane_topology(&own, Plane::Internal);
            own.outlets = outlet_queues(outlets, Plane::Internal);
            declare(b, own).await?;
            // A bridge publishes inward.
            let bridges: Vec<LoadedRoute> = routes
                .iter()
                .filter(|r| posture::is_bridge(r))
                .cloned()
                .collect();
            declare(b, plane_topology(&bridges, Plane::Internal)).await?;
        }
        if let Some(b) = &self.external {
            let own: Vec<LoadedRoute> = routes
                .iter()
                .filter(|r| r.route.plane == Plane::External)
                .cloned()
                .collect();
            let mut own = plane_topology(&own, Plane::External);
            own.outlets = outlet_queues(outlets, Plane::External);
            declare(b, own).await?;
        }
        if let Some(b) = &self.bridge {
            let bridges: Vec<LoadedRoute> = routes
                .iter()
                .filter(|r| posture::is_bridge(r))
                .cloned()
                .collect();
            declare(b, plane_topology(&bridges, Plane::External)).await?;
        }
        Ok(())
    }
}

/// Start the simulated municipal systems on `sandbox.bind`; the OeP simulation pushes to
/// `oep_push`, case management its decision events to `decisions`.
async fn start_sandbox(
    config: &Config,
    oep_push: String,
    decisions: String,
    shutdown: &CancellationToken,
    services: &mut JoinSet<()>,
) -> Result<SocketAddr, RuntimeError> {
    #[cfg(feature = "sandbox")]
    {
        let listener = bind(&config.sandbox.bind, "sandbox").await?;
        let addr = listener
            .local_addr()
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        let sandbox = knut_sandbox::Sandbox::new();
        knut_sandbox::lock(&sandbox.world.oep).push_url = Some(oep_push);
        knut_sandbox::lock(&sandbox.world.errands).push_url = Some(decisions);
        let shutdown = shutdown.clone();
        services.spawn(async move {
            if let Err(e) = sandbox.serve(listener, shutdown).await {
                tracing::error!(error = %e, "sandbox stopped");
            }
        });
        tracing::info!(%addr, "sandbox of simulated municipal systems is running (development only)");
        Ok(addr)
    }
    #[cfg(not(feature = "sandbox"))]
    {
        let _ = (config, oep_push, decisions, shutdown, services);
        Err(RuntimeError::Start(
            "this build has no sandbox (built without the `sandbox` feature); set sandbox.enabled = false".into(),
        ))
    }
}

/// The listeners of one plane of a running Knutpunkt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneAddrs {
    /// The plane.
    pub plane: Plane,
    /// Its ingress.
    pub http: SocketAddr,
    /// Its admin listener.
    pub admin: SocketAddr,
}

/// A running Knutpunkt.
pub struct System {
    /// The broker of the first plane it runs (the internal one, unless only external).
    pub broker: SharedBroker,
    /// The state store.
    pub store: Store,
    /// The first plane's ingress address.
    pub http_addr: SocketAddr,
    /// The first plane's admin address.
    pub admin_addr: SocketAddr,
    /// Every plane's listeners.
    pub planes: Vec<PlaneAddrs>,
    /// The sandbox's address, when the sandbox runs.
    pub sandbox_addr: Option<SocketAddr>,
    /// Ready to take traffic.
    pub ready: Arc<AtomicBool>,
    /// Stops endpoints and workers.
    shutdown: CancellationToken,
    /// Route workers.
    workers: JoinSet<()>,
    /// Endpoints, sweepers and servers.
    services: JoinSet<()>,
    journal_task: tokio::task::JoinHandle<()>,
    journal: Journal,
    brokers: Vec<SharedBroker>,
    /// The ids of the routes it runs.
    route_ids: Vec<String>,
}

fn http_routes(routes: &[LoadedRoute], plane: Plane) -> Vec<HttpRoute> {
    routes
        .iter()
        .filter(|lr| lr.route.plane == plane)
        .filter_map(|lr| HttpRoute::from_route(&lr.route))
        .collect()
}

/// The auth checks of the ingress and their descriptions for OpenAPI, by scheme name.
type AuthSchemes = (BTreeMap<String, AuthCheck>, BTreeMap<String, AuthKind>);

fn auth(schemes: &BTreeMap<String, AuthScheme>, root: &Path) -> Result<AuthSchemes, RuntimeError> {
    let mut checks = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    for (name, scheme) in schemes {
        match scheme {
            AuthScheme::ApiKey { header, key_env } => {
                let key = std::env::var(key_env).map_err(|_| {
                    RuntimeError::Start(format!(
                        "http.auth.{name}: the environment variable {key_env} holding the API key is not set"
                    ))
                })?;
                let check = AuthCheck::ApiKey {
                    header: header.clone(),
                    key,
                };
                kinds.insert(name.clone(), check.kind());
                checks.insert(name.clone(), check);
            }
            AuthScheme::Basic {
                username,
                password_env,
                password_file,
            } => {
                let password = match (password_env, password_file) {
                    (Some(var), _) => std::env::var(var).map_err(|_| {
                        RuntimeError::Start(format!(
                            "http.auth.{name}: the environment variable {var} holding the password is not set"
                        ))
                    })?,
                    (None, Some(file)) => std::fs::read_to_string(root.join(file))
                        .map(|p| p.trim_end_matches(['\r', '\n']).to_string())
                        .map_err(|e| {
                            RuntimeError::Start(format!(
                                "http.auth.{name}: the password file {file} cannot be read: {}",
                                e.kind()
                            ))
                        })?,
                    (None, None) => {
                        return Err(RuntimeError::Start(format!(
                            "http.auth.{name}: give password_env or password_file"
                        )));
                    }
                };
                if password.len() < 12 {
                    return Err(RuntimeError::Start(format!(
                        "http.auth.{name}: the password is shorter than 12 characters; use a long random one"
                    )));
                }
                let check = AuthCheck::Basic {
                    username: username.clone(),
                    password,
                };
                kinds.insert(name.clone(), check.kind());
                checks.insert(name.clone(), check);
            }
            AuthScheme::BearerJwt {
                jwks_url,
                jwks_file,
                issuer,
                audience,
                leeway,
            } => {
                use crate::endpoint::jwt::{JwksSource, JwtVerifier};
                let source = match (jwks_url, jwks_file) {
                    (Some(url), _) => JwksSource::Url(url.clone()),
                    (None, Some(file)) => JwksSource::File(file.into()),
                    (None, None) => {
                        return Err(RuntimeError::Start(format!(
                            "http.auth.{name}: give jwks_url or jwks_file"
                        )));
                    }
                };
                let verifier =
                    JwtVerifier::new(source, issuer.clone(), audience.clone(), *leeway, root)
                        .map_err(|e| RuntimeError::Start(format!("http.auth.{name}: {e}")))?;
                let check = AuthCheck::BearerJwt(Arc::new(verifier));
                kinds.insert(name.clone(), check.kind());
                checks.insert(name.clone(), check);
            }
        }
    }
    Ok((checks, kinds))
}

async fn bind(addr: &SocketAddr, what: &str) -> Result<tokio::net::TcpListener, RuntimeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| RuntimeError::Start(format!("{what}: cannot listen on {addr}: {e}")))
}

impl System {
    /// Start everything the root describes, both planes.
    pub async fn start(root: &Path, config: &Config) -> Result<System, RuntimeError> {
        Self::start_planes(root, config, &[Plane::Internal, Plane::External]).await
    }

    /// Start the routes of `planes` (checked first: see [`posture`]).
    pub async fn start_planes(
        root: &Path,
        config: &Config,
        planes: &[Plane],
    ) -> Result<System, RuntimeError> {
        let Loaded {
            routes,
            resources,
            auth: schemes,
            development_auth,
        } = load(root, config).map_err(RuntimeError::Invalid)?;
        let refused = posture::problems_for(config, &routes, planes, resources.adapters.values());
        if !refused.is_empty() {
            return Err(RuntimeError::Refused {
                profile: config.profile.as_str(),
                problems: refused,
            });
        }
        let routes: Vec<LoadedRoute> = routes
            .into_iter()
            .filter(|r| planes.contains(&r.route.plane))
            .collect();
        let route_ids: Vec<String> = routes.iter().map(|r| r.route.route.clone()).collect();
        // Only the schemes these routes name: a plane's process holds no other plane's
        // secrets.
        let named: BTreeSet<&str> = routes
            .iter()
            .filter_map(|r| match &r.route.from {
                From::Http(h) => h.auth.scheme(),
                _ => None,
            })
            .collect();
        let schemes: BTreeMap<String, AuthScheme> = schemes
            .into_iter()
            .filter(|(name, _)| named.contains(name.as_str()))
            .collect();
        let (auth_checks, auth_kinds) = auth(&schemes, root)?;
        for name in &development_auth {
            tracing::warn!(
                scheme = name,
                issuer = crate::config::SANDBOX_ISSUER,
                "development: auth scheme `{name}` is not configured, so it trusts the sandbox's test issuer (tokens from POST /sandbox/idp/token); configure [http.auth.{name}] for production"
            );
        }

        let store = Store::connect(&config.store_url(root))
            .await
            .map_err(|e| RuntimeError::Start(format!("state store: {e}")))?;
        // The access audit's key (checked by the posture above): in development, without
        // one, the public development key, said once.
        let store = match posture::audit_key(config, &routes, planes, &posture::process_env)
            .map_err(|e| RuntimeError::Refused {
                profile: config.profile.as_str(),
                problems: vec![e],
            })? {
            Some(key) => store.with_audit_key(key),
            None if config.profile == crate::config::Profile::Development => {
                let writers = posture::audit_routes(&routes, planes);
                if !writers.is_empty() {
                    tracing::warn!(
                        variable = config.audit.key_env,
                        "development: {} is not set, so the access audit hashes people with the public development key; set it (at least 32 random bytes) for anything but development",
                        config.audit.key_env
                    );
                }
                store.with_audit_key(crate::store::AuditKey::development())
            }
            None => store,
        };
        let brokers = Brokers::connect(config, planes, &routes).await?;
        brokers.declare(&routes, &resources.outlets).await?;
        let Some(primary) = planes.iter().find_map(|p| brokers.of(*p)).cloned() else {
            return Err(RuntimeError::Start(
                "no plane to run: the chosen plane has no routes".into(),
            ));
        };

        let shutdown = CancellationToken::new();
        let (journal, journal_task) = Journal::start(store.clone());
        let effects_of = |plane: Plane| {
            brokers
                .of(plane)
                .map(|b| Arc::new(LiveEffects::new(b.clone(), resources.client.clone(), root)))
        };
        let effects: BTreeMap<Plane, Arc<LiveEffects>> = planes
            .iter()
            .filter_map(|p| effects_of(*p).map(|e| (*p, e)))
            .collect();
        let mut workers = JoinSet::new();
        let mut services = JoinSet::new();
        let mut infos: BTreeMap<Plane, Vec<admin::RouteInfo>> = BTreeMap::new();
        let missing = |what: &str, lr: &LoadedRoute| {
            RuntimeError::Start(format!(
                "route `{}`: no broker connection for its {what}",
                lr.route.route
            ))
        };

        for lr in &routes {
            let r = &lr.route;
            let queue_broker = brokers
                .queue(lr)
                .ok_or_else(|| missing("queue", lr))?
                .clone();
            let effects = effects
                .get(&r.plane)
                .ok_or_else(|| missing("effects", lr))?;
            let ingress = Ingress::new(queue_broker.clone());
            let pipeline =
                Arc::new(Pipeline::build(&r.steps, "steps", &resources).map_err(|e| {
                    RuntimeError::Invalid(vec![format!("{}: {e}", lr.file.display())])
                })?);
            // Each step and adapter call of the route is journaled in its name.
            let context = Context {
                route: Arc::from(r.route.as_str()),
                effects: Arc::new(journal::JournaledEffects::new(
                    effects.clone(),
                    journal.clone(),
                    Arc::from(r.route.as_str()),
                )),
                store: store.clone(),
            };
            // Aggregators with a timeout get a sweeper.
            for (i, s) in r.steps.iter().enumerate() {
                if let StepSpec::Aggregate(spec) = s {
                    let path = format!("steps[{i}].aggregate");
                    if let Some(timeout) =
                        Aggregate::new(spec, &path).ok().and_then(|a| a.timeout())
                    {
                        services.spawn(sweep_aggregates(
                            r.route.clone(),
                            path,
                            timeout,
                            store.clone(),
                            effects.clone(),
                            shutdown.clone(),
                        ));
                    }
                }
            }
            let worker = RouteWorker {
                pipeline,
                context,
                retry: r.errors.retry.clone(),
                consumer: r.consumer.clone(),
                broker: queue_broker.clone(),
                journal: journal.clone(),
                bridge: r.is_bridge(),
            };
            match (&r.ordered_by, r.ordered_partitions()) {
                (Some(program), Some(partitions)) => {
                    let partitioner =
                        ordered::Partitioner::new(program, partitions).map_err(|e| {
                            RuntimeError::Invalid(vec![format!("{}: {e}", lr.file.display())])
                        })?;
                    workers.spawn(ordered::run(worker, partitioner, shutdown.clone()));
                }
                _ => {
                    workers.spawn(worker.run(shutdown.clone()));
                }
            }
            match &r.from {
                From::File(f) => {
                    services.spawn(crate::endpoint::file::run(
                        r.route.clone(),
                        f.clone(),
                        root.to_path_buf(),
                        ingress.clone(),
                        shutdown.clone(),
                    ));
                }
                From::Timer(t) => {
                    services.spawn(crate::endpoint::timer::run(
                        r.route.clone(),
                        t.clone(),
                        ingress.clone(),
                        shutdown.clone(),
                    ));
                }
                // Polls start once everything else runs (see below).
                From::Http(_) | From::Queue(_) | From::Poll(_) => {}
            }
            infos.entry(r.plane).or_default().push(route_info(lr));
        }

        // Each plane's ingress and admin listeners (the external plane's only when it has
        // routes here).
        let metrics = crate::telemetry::metrics::install();
        let ready = Arc::new(AtomicBool::new(false));
        let admin_auth = Arc::new(
            admin::auth::AdminAuth::from_config(
                &config.admin,
                config.profile,
                root,
                Some(store.clone()),
            )
            .map_err(|e| RuntimeError::Start(e.to_string()))?,
        );
        if !admin_auth.has_credentials() {
            tracing::warn!(
                "admin API: no [admin.keys] or [admin.jwt] configured, so only {} answer",
                config.admin.public.join(", ")
            );
        } else if config.profile == crate::config::Profile::Development
            && config.admin.keys.is_empty()
            && config.admin.jwt.is_none()
        {
            tracing::info!(
                file = admin::auth::DEV_TOKEN_FILE,
                "development: the admin API takes the token in {} (`knut` reads it from there)",
                admin::auth::DEV_TOKEN_FILE
            );
        }
        let all_brokers = brokers.all();
        let mut addrs: Vec<PlaneAddrs> = Vec::new();
        // The sandbox starts after the admin listeners; the console learns its address then.
        let sandbox_cell: Arc<std::sync::OnceLock<SocketAddr>> = Arc::default();
        for &plane in planes {
            let Some(broker) = brokers.of(plane).cloned() else {
                continue;
            };
            let plane_routes: Vec<LoadedRoute> = routes
                .iter()
                .filter(|r| r.route.plane == plane)
                .cloned()
                .collect();
            if plane == Plane::External && plane_routes.is_empty() {
                continue;
            }
            let (http_bind, admin_bind) = match plane {
                Plane::Internal => (config.http.bind, config.admin.bind),
                Plane::External => (config.external.http_bind, config.external.admin_bind),
            };
            let http = http_routes(&plane_routes, plane);
            let replies = if http.iter().any(|h| h.replies) {
                Some(
                    Replies::start(broker.clone(), shutdown.clone())
                        .await
                        .map_err(|e| RuntimeError::Start(format!("reply queue: {e}")))?,
                )
            } else {
                None
            };
            let plane_kinds: BTreeMap<String, AuthKind> = auth_kinds
                .iter()
                .filter(|(name, _)| {
                    http.iter()
                        .any(|h| h.spec.auth.scheme() == Some(name.as_str()))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let openapi = crate::endpoint::openapi::document(
                &http,
                &plane_kinds,
                &resources.schemas,
                &format!("Knutpunkt ({plane} plane)"),
                env!("CARGO_PKG_VERSION"),
            );
            let settings = HttpSettings {
                max_body: config.http.max_body,
                auth: auth_checks.clone(),
                reply_timeout: Duration::from_secs(30),
                request_timeout: config.http.request_timeout,
                rate_limit: config.http.rate_limit,
                refusals: store
                    .has_audit_key()
                    .then(|| crate::endpoint::http::RefusalAudit {
                        store: store.clone(),
                        routes: posture::audit_routes(&routes, &[plane])
                            .into_iter()
                            .map(str::to_string)
                            .collect(),
                    }),
                trust_traceparent: plane == Plane::Internal,
            };
            let router = crate::endpoint::http::router(
                http,
                settings,
                resources.schemas.clone(),
                Ingress::new(broker.clone()),
                replies,
                openapi,
            );
            let what = format!("{plane} ingress");
            let listener = bind(&http_bind, &what).await?;
            let http_addr = listener
                .local_addr()
                .map_err(|e| RuntimeError::Start(e.to_string()))?;
            {
                let shutdown = shutdown.clone();
                services.spawn(async move {
                    if let Err(e) = crate::endpoint::http::serve(listener, router, shutdown).await {
                        tracing::error!(error = %e, "http ingress stopped");
                    }
                });
            }

            // Admin of this plane: its routes, their dead letters.
            let state = admin::AdminState {
                ready: ready.clone(),
                broker_connected: {
                    let all = all_brokers.clone();
                    Arc::new(move || all.iter().all(|b| b.is_connected()))
                },
                routes: Arc::new(std::sync::RwLock::new(
                    infos.get(&plane).cloned().unwrap_or_default(),
                )),
                metrics: metrics.clone(),
            };
            let mut dead_letters =
                admin::dead_letters::DeadLetters::new(broker.clone(), store.clone());
            for lr in plane_routes.iter().filter(|r| posture::is_bridge(r)) {
                if let Some(b) = brokers.queue(lr) {
                    dead_letters = dead_letters.with_route_broker(&lr.route.route, b.clone());
                }
            }
            // The external listener of a process running both planes shows nothing of the
            // internal one: no metrics (one recorder holds both planes' names), no audit.
            let own_process = plane == Plane::Internal || !planes.contains(&Plane::Internal);
            let ingresses: BTreeMap<String, Ingress> = plane_routes
                .iter()
                .filter_map(|lr| {
                    Some((
                        lr.route.route.clone(),
                        Ingress::new(brokers.queue(lr)?.clone()),
                    ))
                })
                .collect();
            let console_dead_letters = dead_letters.clone();
            let mut admin_router = admin::router_with(state, own_process)
                .merge(crate::runtime::send_router(ingresses))
                .merge(admin::dlq::router(
                    dead_letters,
                    plane_routes.iter().map(|r| r.route.route.clone()),
                ));
            admin_router = admin_router.merge(admin::console::router(admin::console::Console {
                plane: plane.to_string(),
                routes: infos.get(&plane).cloned().unwrap_or_default(),
                graph: crate::route::graph::model(&plane_routes),
                dead_letters: console_dead_letters,
                store: store.clone(),
                auth: admin_auth.clone(),
                development: config.profile == crate::config::Profile::Development,
                sandbox: sandbox_cell.clone(),
                secure_cookie: !admin_bind.ip().is_loopback(),
            }));
            if own_process {
                admin_router = admin_router.route(
                    "/api/audit",
                    axum::routing::get(admin::auth::recent).with_state(admin_auth.clone()),
                );
                // A message's journey, from the journal (`knut trace`).
                admin_router = admin_router.merge(admin::trace::router(store.clone()));
            }
            let admin_router = admin_router
                .layer(axum::middleware::from_fn_with_state(
                    admin_auth.clone(),
                    admin::auth::guard,
                ))
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                    |_: Box<dyn std::any::Any + Send>| {
                        tracing::error!("an admin request handler panicked");
                        crate::core::problem::Problem::new(
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            "internal-error",
                            "Internal error",
                            "The admin request could not be completed; see the instance's log.",
                            "",
                        )
                        .into_response()
                    },
                ));
            let what = format!("{plane} admin");
            let admin_listener = bind(&admin_bind, &what).await?;
            let admin_addr = admin_listener
                .local_addr()
                .map_err(|e| RuntimeError::Start(e.to_string()))?;
            {
                let shutdown = shutdown.clone();
                services.spawn(async move {
                    let served = axum::serve(admin_listener, admin_router)
                        .with_graceful_shutdown(async move { shutdown.cancelled().await })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "admin server stopped");
                    }
                });
            }
            addrs.push(PlaneAddrs {
                plane,
                http: http_addr,
                admin: admin_addr,
            });
        }
        let Some(first) = addrs.first().copied() else {
            return Err(RuntimeError::Start("no plane to run".into()));
        };

        let sandbox_addr = if config.sandbox_enabled() {
            // The simulated systems push to the listener that serves the path.
            let serving = |path: &str| {
                let plane = routes
                    .iter()
                    .find(|r| matches!(&r.route.from, From::Http(h) if h.path == path))
                    .map_or(Plane::Internal, |r| r.route.plane);
                let addr = addrs
                    .iter()
                    .find(|a| a.plane == plane)
                    .map_or(first.http, |a| a.http);
                format!("http://{addr}{path}")
            };
            Some(
                start_sandbox(
                    config,
                    serving("/in/oep/flowinstances"),
                    serving("/in/casedata/decisions"),
                    &shutdown,
                    &mut services,
                )
                .await?,
            )
        } else {
            None
        };
        if let Some(addr) = sandbox_addr {
            let _ = sandbox_cell.set(addr);
        }

        {
            let queues: Vec<(SharedBroker, String)> = routes
                .iter()
                .filter_map(|lr| {
                    let b = brokers.queue(lr)?.clone();
                    let rq = RouteQueue {
                        route: lr.route.route.clone(),
                        bindings: Vec::new(),
                        partitions: lr.route.ordered_partitions(),
                    };
                    Some(
                        [work_queue(&rq.route), dead_letter_queue(&rq.route)]
                            .into_iter()
                            .chain(rq.partition_queues())
                            .map(move |q| (b.clone(), q))
                            .collect::<Vec<_>>(),
                    )
                })
                .flatten()
                .collect();
            let shutdown = shutdown.clone();
            services.spawn(async move {
                loop {
                    for (broker, q) in &queues {
                        if let Ok(d) = broker.queue_depth(q).await {
                            crate::telemetry::metrics::queue_depth(q, d);
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            });
        }

        // Poll endpoints start last: their first poll is at once, and the systems they poll
        // (the sandbox, in development) and the metrics recorder must be up by then.
        for lr in &routes {
            if let From::Poll(p) = &lr.route.from {
                let broker = brokers.queue(lr).ok_or_else(|| missing("queue", lr))?;
                services.spawn(crate::endpoint::poll::run(
                    lr.route.route.clone(),
                    p.clone(),
                    resources.client.clone(),
                    store.clone(),
                    Ingress::new(broker.clone()),
                    shutdown.clone(),
                ));
            }
        }

        ready.store(true, Ordering::Release);
        for a in &addrs {
            tracing::info!(plane = %a.plane, http_addr = %a.http, admin_addr = %a.admin, "listening");
        }
        tracing::info!(
            routes = routes.len(),
            broker = primary.kind(),
            profile = config.profile.as_str(),
            "knut is running"
        );
        Ok(System {
            broker: primary,
            store,
            http_addr: first.http,
            admin_addr: first.admin,
            planes: addrs,
            sandbox_addr,
            ready,
            shutdown,
            workers,
            services,
            journal_task,
            journal,
            brokers: all_brokers,
            route_ids,
        })
    }

    /// The listeners of `plane`, when it runs here.
    pub fn plane(&self, plane: Plane) -> Option<PlaneAddrs> {
        self.planes.iter().copied().find(|a| a.plane == plane)
    }

    /// A token cancelled when the system shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stop taking messages, finish the ones in hand (up to `timeout`), close everything.
    pub async fn shutdown(mut self, timeout: Duration) {
        tracing::info!("shutting down: no new messages; finishing those in hand");
        self.ready.store(false, Ordering::Release);
        self.shutdown.cancel();
        let drained = tokio::time::timeout(timeout, async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?timeout,
                unfinished_workers = self.workers.len(),
                "shutdown timeout: abandoning unfinished messages (unacked, so the broker redelivers them)"
            );
            self.workers.abort_all();
        }
        // Every step after the drain is bounded too, and says so when it ran out: a stop
        // that hangs is a stop the platform ends with SIGKILL, mid-write.
        const PHASE: Duration = Duration::from_secs(5);
        let services = tokio::time::timeout(PHASE, async {
            while self.services.join_next().await.is_some() {}
        })
        .await;
        if services.is_err() {
            tracing::warn!(timeout = ?PHASE, "shutdown: endpoints and services did not stop in time; aborted");
        }
        self.services.abort_all();
        self.warn_of_dead_letters_lost().await;
        futures::future::join_all(self.brokers.iter().map(|b| b.close())).await;
        drop(self.journal);
        if tokio::time::timeout(PHASE, self.journal_task)
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?PHASE, "shutdown: the journal did not finish writing in time");
        }
        if tokio::time::timeout(PHASE, self.store.close())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?PHASE, "shutdown: the state store did not close in time (a connection still in use)");
        }
        tracing::info!("stopped");
    }
}

impl System {
    /// On the embedded broker dead letters live in memory: say, route by route, how many
    /// are about to be lost with it (a development instance; production runs on RabbitMQ).
    async fn warn_of_dead_letters_lost(&self) {
        for b in self.brokers.iter().filter(|b| b.kind() == "embedded") {
            for route in &self.route_ids {
                let Ok(n) = b
                    .queue_depth(&crate::broker::dead_letter_queue(route))
                    .await
                else {
                    continue;
                };
                if n > 0 {
                    tracing::warn!(
                        route,
                        dead_letters = n,
                        "the embedded broker stops with dead letters, which are lost with it; \
                         look at them with `knut dlq list` before stopping, or run on RabbitMQ"
                    );
                }
            }
        }
    }
}

fn route_info(lr: &LoadedRoute) -> admin::RouteInfo {
    let r = &lr.route;
    let from = match &r.from {
        From::Http(h) => format!(
            "http {} {}",
            h.methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(","),
            h.path
        ),
        From::Queue(q) => format!("queue {} [{}]", q.exchange, q.keys.join(", ")),
        From::File(f) => format!("file {}/{}", f.dir, f.pattern),
        From::Timer(t) => format!("timer {}", t.cron),
        From::Poll(p) => {
            let when = match (&p.every, &p.cron) {
                (Some(every), _) => format!("every {}", humantime::format_duration(*every)),
                (None, Some(cron)) => format!("cron {cron}"),
                (None, None) => String::new(),
            };
            format!("poll {}.{} {when}", p.adapter, p.list)
        }
    };
    admin::RouteInfo {
        id: r.route.clone(),
        from,
        steps: r.steps.iter().map(|s| s.kind().to_string()).collect(),
        queue: work_queue(&r.route),
        dead_letter_queue: dead_letter_queue(&r.route),
        partition_queues: partition_queues(&r.route, r.ordered_partitions()),
    }
}

/// Complete aggregate groups whose timeout passed, as a completing member does (claim,
/// publish to the route's work queue with `knut-resume-after`, finish): the steps after the
/// aggregator run on the completed message. The completed message's id is derived from the
/// route, the key and when the group opened, so a sweep that died after its claim is
/// repeated by the next under the same claim.
async fn sweep_aggregates(
    route: String,
    path: String,
    timeout: Duration,
    store: Store,
    effects: Arc<dyn crate::core::effects::Effects>,
    shutdown: CancellationToken,
) {
    let every = (timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let Ok(chrono_timeout) = chrono::Duration::from_std(timeout) else {
            return;
        };
        let expired = match store
            .aggregate_expired(&route, chrono::Utc::now() - chrono_timeout)
            .await
        {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(route, error = %e, "aggregate sweep failed");
                continue;
            }
        };
        for (key, opened_at) in expired {
            let name = format!("{route}/{path}/{key}/{}", opened_at.timestamp_micros());
            let mut seed = Envelope::new(JSON, Body::default());
            seed.id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
            let claimant = aggregate::completed_id(&seed, &path, &key).to_string();
            let group = match store
                .aggregate_claim(&route, &key, &claimant, aggregate::stale_before())
                .await
            {
                Ok(Some(g)) => g,
                // Claimed by a completing member (or another instance's sweep).
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(route, error = %e, "aggregate sweep failed");
                    continue;
                }
            };
            let mut m = aggregate::completed(&seed, &path, &group);
            m.causation_id = None;
            if let Err(e) =
                aggregate::complete(effects.as_ref(), &store, &route, &path, &key, m).await
            {
                // Claimed, not finished: the next sweep completes it under the same claim.
                tracing::warn!(route, error = %e.message, "could not send a timed-out aggregate; the next sweep tries again");
            }
        }
    }
}

/// `POST /api/routes/{id}/messages` on the admin port: `knut send` hands a message to a
/// route through the ingress exchange of the broker its queue is on (`ingresses`, by route).
pub fn send_router(ingresses: BTreeMap<String, Ingress>) -> axum::Router {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;

    use crate::core::problem::Problem;

    let handler = move |State(ingresses): State<Arc<BTreeMap<String, Ingress>>>,
                        UrlPath(id): UrlPath<String>,
                        headers: HeaderMap,
                        body: bytes::Bytes| {
        async move {
            let Some(ingress) = ingresses.get(&id) else {
                return Problem::new(
                    StatusCode::NOT_FOUND,
                    "no-such-route",
                    "No such route",
                    format!("there is no route `{id}`: see GET /api/routes"),
                    format!("/api/routes/{id}/messages"),
                )
                .into_response();
            };
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(JSON)
                .to_string();
            let m = Envelope::new(ct, Body::Bytes(body));
            match ingress.accept(&id, &m).await {
                Ok(()) => (
                    StatusCode::ACCEPTED,
                    axum::Json(serde_json::json!({"id": m.id, "correlation_id": m.correlation_id})),
                )
                    .into_response(),
                Err(e) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker-unavailable",
                    "Broker unavailable",
                    format!("{e}; try again later"),
                    format!("/api/routes/{id}/messages"),
                )
                .with_header(header::RETRY_AFTER, "5")
                .into_response(),
            }
        }
    };
    axum::Router::new()
        .route("/api/routes/{id}/messages", axum::routing::post(handler))
        .method_not_allowed_fallback(crate::admin::method_not_allowed)
        .with_state(Arc::new(ingresses))
}

/// Wait for SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `knut run`: start the routes of `planes`, run until a signal, shut down gracefully.
pub async fn run(root: PathBuf, config: Config, planes: Vec<Plane>) -> Result<(), RuntimeError> {
    let system = System::start_planes(&root, &config, &planes).await?;
    signal().await;
    system.shutdown(config.shutdown.timeout).await;
    Ok(())
}
