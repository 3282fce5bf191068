//! The runtime: wires a root (routes, adapters, schemas, transforms, `knut.toml`) into a
//! running system — broker topology, one worker per route, endpoints, admin — and shuts it
//! down gracefully.

pub mod dlq;
pub mod effects;
pub mod journal;
pub mod ordered;
#[cfg(test)]
mod test_support;
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
    RouteQueue, SharedBroker, Topology, dead_letter_queue, partition_queues, work_queue,
};
use crate::config::{AuthScheme, Config};
use crate::endpoint::Ingress;
use crate::endpoint::http::{AuthCheck, HttpRoute, HttpSettings, Replies};
use crate::endpoint::openapi::AuthKind;
use crate::envelope::{Body, Envelope, JSON};
use crate::resources::Resources;
use crate::route::load::{LoadedRoute, load_routes};
use crate::route::model::{From, StepSpec};
use crate::step::aggregate::{Aggregate, RESUME_AFTER};
use crate::step::{Context, Pipeline};
use crate::store::Store;
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
    let resources = Resources::load(root);
    let routes = load_routes(root);
    match (resources, routes) {
        (Ok(resources), Ok(routes)) => {
            let named: Vec<&str> = routes
                .iter()
                .filter_map(|lr| match &lr.route.from {
                    From::Http(h) => Some(h.auth.as_str()),
                    _ => None,
                })
                .collect();
            let (auth, development_auth) = config.auth_schemes(named);
            let problems = crate::resources::check(&routes, &resources, &auth);
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

fn walk_steps<'a>(steps: &'a [StepSpec], f: &mut dyn FnMut(&'a StepSpec)) {
    for s in steps {
        f(s);
        if let StepSpec::Choice(c) = s {
            for w in &c.when {
                walk_steps(&w.steps, f);
            }
            walk_steps(&c.otherwise, f);
        }
    }
}

/// Every step of a route, nested ones included.
pub fn all_steps(steps: &[StepSpec]) -> Vec<&StepSpec> {
    let mut out = Vec::new();
    walk_steps(steps, &mut |s| out.push(s));
    out
}

/// The broker topology of a set of routes: exchanges from `from.queue` and `publish`, one
/// work queue per route with its bindings (and the partitions of an ordered route).
pub fn topology(routes: &[LoadedRoute]) -> Topology {
    let mut exchanges = BTreeSet::new();
    let mut queues = Vec::new();
    for lr in routes {
        let r = &lr.route;
        let mut bindings = Vec::new();
        if let From::Queue(q) = &r.from {
            exchanges.insert(q.exchange.clone());
            for k in &q.keys {
                bindings.push((q.exchange.clone(), k.clone()));
            }
        }
        for s in all_steps(&r.steps) {
            if let StepSpec::Publish(p) = s {
                for t in p.targets() {
                    exchanges.insert(t.exchange.clone());
                }
            }
        }
        queues.push(RouteQueue {
            route: r.route.clone(),
            bindings,
            partitions: r.ordered_partitions(),
        });
    }
    Topology {
        exchanges: exchanges.into_iter().collect(),
        routes: queues,
    }
}

/// The broker named by the configuration: RabbitMQ for an `amqp://` URL, else embedded.
pub async fn connect_broker(config: &Config) -> Result<SharedBroker, RuntimeError> {
    match config.broker.url.as_deref() {
        None | Some("") => {
            tracing::warn!(
                "no broker.url: using the embedded broker (in memory, not durable; for development, tests and demos)"
            );
            Ok(Arc::new(EmbeddedBroker::new()))
        }
        Some(url) if url.starts_with("amqp://") || url.starts_with("amqps://") => {
            let opts = AmqpOptions {
                queue_type: config.broker.queue_type,
                ..AmqpOptions::new(url)
            };
            let broker = AmqpBroker::connect(opts)
                .await
                .map_err(|e| RuntimeError::Start(format!("RabbitMQ: {e}")))?;
            tracing::info!("connected to RabbitMQ");
            Ok(Arc::new(broker))
        }
        Some(_) => Err(RuntimeError::Start(
            "broker.url must start with amqp:// or amqps:// (or be unset for the embedded broker)"
                .into(),
        )),
    }
}

/// Start the simulated municipal systems on `sandbox.bind`; the OeP simulation pushes to
/// the OeP ingress on `http_addr`, case management its decision events.
async fn start_sandbox(
    config: &Config,
    http_addr: SocketAddr,
    shutdown: &CancellationToken,
    services: &mut JoinSet<()>,
) -> Result<SocketAddr, RuntimeError> {
    let listener = bind(&config.sandbox.bind, "sandbox").await?;
    let addr = listener
        .local_addr()
        .map_err(|e| RuntimeError::Start(e.to_string()))?;
    let sandbox = crate::sandbox::Sandbox::new();
    crate::sandbox::lock(&sandbox.world.oep).push_url =
        Some(format!("http://{http_addr}/in/oep/flowinstances"));
    crate::sandbox::lock(&sandbox.world.errands).push_url =
        Some(format!("http://{http_addr}/in/casedata/decisions"));
    let shutdown = shutdown.clone();
    services.spawn(async move {
        if let Err(e) = sandbox.serve(listener, shutdown).await {
            tracing::error!(error = %e, "sandbox stopped");
        }
    });
    tracing::info!(%addr, "sandbox of simulated municipal systems is running (development only)");
    Ok(addr)
}

/// A running Knutpunkt.
pub struct System {
    /// The broker.
    pub broker: SharedBroker,
    /// The state store.
    pub store: Store,
    /// The ingress port's address.
    pub http_addr: SocketAddr,
    /// The admin port's address.
    pub admin_addr: SocketAddr,
    /// The sandbox's address, when `sandbox.enabled`.
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
}

fn http_routes(routes: &[LoadedRoute]) -> Vec<HttpRoute> {
    routes
        .iter()
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
    /// Start everything the root describes.
    pub async fn start(root: &Path, config: &Config) -> Result<System, RuntimeError> {
        let Loaded {
            routes,
            resources,
            auth: schemes,
            development_auth,
        } = load(root, config).map_err(RuntimeError::Invalid)?;
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
        let broker = connect_broker(config).await?;
        broker
            .declare(&topology(&routes))
            .await
            .map_err(|e| RuntimeError::Start(format!("broker topology: {e}")))?;

        let shutdown = CancellationToken::new();
        let (journal, journal_task) = Journal::start(store.clone());
        let effects = Arc::new(LiveEffects::new(
            broker.clone(),
            resources.client.clone(),
            root,
        ));
        let ingress = Ingress::new(broker.clone());
        let mut workers = JoinSet::new();
        let mut services = JoinSet::new();
        let mut infos = Vec::new();

        for lr in &routes {
            let r = &lr.route;
            let pipeline =
                Arc::new(Pipeline::build(&r.steps, "steps", &resources).map_err(|e| {
                    RuntimeError::Invalid(vec![format!("{}: {e}", lr.file.display())])
                })?);
            let context = Context {
                route: Arc::from(r.route.as_str()),
                effects: effects.clone(),
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
                            ingress.clone(),
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
                broker: broker.clone(),
                journal: journal.clone(),
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
            infos.push(route_info(lr));
        }

        // HTTP ingress.
        let http = http_routes(&routes);
        let replies = if http.iter().any(|h| h.replies) {
            Some(
                Replies::start(broker.clone(), shutdown.clone())
                    .await
                    .map_err(|e| RuntimeError::Start(format!("reply queue: {e}")))?,
            )
        } else {
            None
        };
        let openapi = crate::endpoint::openapi::document(
            &http,
            &auth_kinds,
            &resources.schemas,
            "Knutpunkt",
            env!("CARGO_PKG_VERSION"),
        );
        let settings = HttpSettings {
            max_body: config.http.max_body,
            auth: auth_checks,
            reply_timeout: Duration::from_secs(30),
        };
        let router = crate::endpoint::http::router(
            http,
            settings,
            resources.schemas.clone(),
            ingress.clone(),
            replies,
            openapi,
        );
        let listener = bind(&config.http.bind, "http ingress").await?;
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

        let sandbox_addr = if config.sandbox.enabled {
            Some(start_sandbox(config, http_addr, &shutdown, &mut services).await?)
        } else {
            None
        };

        // Admin.
        let ready = Arc::new(AtomicBool::new(false));
        let state = admin::AdminState {
            ready: ready.clone(),
            broker_connected: {
                let b = broker.clone();
                Arc::new(move || b.is_connected())
            },
            routes: Arc::new(std::sync::RwLock::new(infos)),
            metrics: admin::metrics::install(),
        };
        let admin_router = admin::router(state)
            .merge(crate::runtime::send_router(ingress.clone(), &routes))
            .merge(admin::dlq::router(
                dlq::DeadLetters::new(broker.clone(), store.clone()),
                routes.iter().map(|r| r.route.route.clone()),
            ));
        let admin_listener = bind(&config.admin.bind, "admin").await?;
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
        {
            let broker = broker.clone();
            let queues: Vec<String> = topology(&routes)
                .routes
                .iter()
                .flat_map(|rq| {
                    [work_queue(&rq.route), dead_letter_queue(&rq.route)]
                        .into_iter()
                        .chain(rq.partition_queues())
                })
                .collect();
            let shutdown = shutdown.clone();
            services.spawn(async move {
                loop {
                    for q in &queues {
                        if let Ok(d) = broker.queue_depth(q).await {
                            admin::metrics::queue_depth(q, d);
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
                services.spawn(crate::endpoint::poll::run(
                    lr.route.route.clone(),
                    p.clone(),
                    resources.client.clone(),
                    store.clone(),
                    ingress.clone(),
                    shutdown.clone(),
                ));
            }
        }

        ready.store(true, Ordering::Release);
        tracing::info!(%http_addr, %admin_addr, routes = routes.len(), broker = broker.kind(), "knut is running");
        Ok(System {
            broker,
            store,
            http_addr,
            admin_addr,
            sandbox_addr,
            ready,
            shutdown,
            workers,
            services,
            journal_task,
            journal,
        })
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
                "shutdown timeout: abandoning unfinished messages (unacked, so the broker redelivers them)"
            );
            self.workers.abort_all();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.services.join_next().await.is_some() {}
        })
        .await;
        self.services.abort_all();
        self.broker.close().await;
        drop(self.journal);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.journal_task).await;
        self.store.close().await;
        tracing::info!("stopped");
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

/// Complete aggregate groups whose timeout passed: each goes through the route's work
/// queue with `knut-resume-after`, so the steps after the aggregator run on it.
async fn sweep_aggregates(
    route: String,
    path: String,
    timeout: Duration,
    store: Store,
    ingress: Ingress,
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
        let keys = match store
            .aggregate_expired(&route, chrono::Utc::now() - chrono_timeout)
            .await
        {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(route, error = %e, "aggregate sweep failed");
                continue;
            }
        };
        for key in keys {
            let group = match store.aggregate_take(&route, &key).await {
                Ok(Some(g)) => g,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(route, error = %e, "aggregate sweep failed");
                    continue;
                }
            };
            let mut m = Envelope::new(
                JSON,
                Body::Json(serde_json::json!({"key": group.key, "items": group.items})),
            );
            m.headers.insert(RESUME_AFTER.into(), path.clone());
            if let Err(e) = ingress.accept(&route, &m).await {
                // Put the items back so the next sweep tries again.
                tracing::warn!(route, error = %e, "could not send a timed-out aggregate; keeping it");
                for (i, item) in group.items.iter().enumerate() {
                    let id = m.derive(&format!("restore/{i}"), Body::default(), JSON).id;
                    let _ = store.aggregate_add(&route, &group.key, id, item).await;
                }
            }
        }
    }
}

/// `POST /api/routes/{id}/messages` on the admin port: `knut send` hands a message to a
/// route through the ingress exchange.
pub fn send_router(ingress: Ingress, routes: &[LoadedRoute]) -> axum::Router {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;

    use crate::endpoint::problem::Problem;

    let known: Arc<BTreeSet<String>> =
        Arc::new(routes.iter().map(|r| r.route.route.clone()).collect());
    let handler = move |State(ingress): State<Ingress>,
                        UrlPath(id): UrlPath<String>,
                        headers: HeaderMap,
                        body: bytes::Bytes| {
        let known = known.clone();
        async move {
            if !known.contains(&id) {
                return Problem::new(
                    StatusCode::NOT_FOUND,
                    "no-such-route",
                    "No such route",
                    format!("there is no route `{id}`: see GET /api/routes"),
                    format!("/api/routes/{id}/messages"),
                )
                .into_response();
            }
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
        .with_state(ingress)
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

/// `knut run`: start, run until a signal, shut down gracefully.
pub async fn run(root: PathBuf, config: Config) -> Result<(), RuntimeError> {
    let system = System::start(&root, &config).await?;
    signal().await;
    system.shutdown(config.shutdown.timeout).await;
    Ok(())
}
