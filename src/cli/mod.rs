//! The `knut` command line: parse arguments, call the library.

pub mod dlq;
pub mod test;
pub mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// Knutpunkt — integration middleware for the school platform of Sundsvalls kommun.
#[derive(Debug, Parser)]
#[command(name = "knut", version, about, long_about = None)]
pub struct Cli {
    /// The folder holding knut.toml (optional) and adapters/, routes/, transforms/, schemas/.
    #[arg(long, global = true, default_value = ".", env = "KNUT_ROOT")]
    pub root: PathBuf,
    /// The development profile: the sandbox runs, the embedded broker may, and auth
    /// schemes the configuration lacks trust the sandbox's test issuer. Without it (or
    /// `profile = "development"` in knut.toml) production rules hold and are checked first.
    #[arg(long, global = true)]
    pub dev: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the routes: broker, endpoints, workers, admin (production rules unless --dev).
    Run {
        /// Which plane's routes to run: `internal`, `external` or `all` (both, each on its
        /// own broker connection and listeners).
        #[arg(long, value_enum, default_value_t = PlaneArg::All)]
        plane: PlaneArg,
    },
    /// Check routes, adapters, schemas and transforms, and (unless --dev) the production
    /// rules `knut run` enforces; exit 1 on any error.
    Check,
    /// Run the route tests (`*.test.yaml` under routes/, or PATH); exit 1 on any failure.
    Test {
        /// A test file or folder (default: routes/).
        path: Option<PathBuf>,
    },
    /// Send a message to a route of a running knut (through its admin API).
    Send {
        /// The route id.
        route: String,
        /// The body, inline.
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        /// The body, from a file (`-` for standard input).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Content type of the body (default: from the file's extension, else application/json).
        #[arg(long)]
        content_type: Option<String>,
        /// Admin address of the running knut (default: admin.bind of the configuration).
        #[arg(long)]
        admin: Option<String>,
    },
    /// The dead letters of a route of a running knut: list, show, replay, discard.
    Dlq {
        /// What to do.
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// A message's journey through a running knut, from its journal: every hop, step,
    /// adapter call, retry and dead letter in time order. ID is a correlation id or a
    /// business key's value (an OeP FlowInstanceID, an errand number; `name=value` for one
    /// key), which finds every correlation id of the case.
    Trace {
        /// A correlation id (UUID) or a business key's value.
        id: String,
        /// Print the journey as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Admin address of the running knut (default: admin.bind of the configuration).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Print a Mermaid flowchart of routes, exchanges and adapters.
    Graph {
        /// Only these routes: ids or glob patterns (`leave-*`), e.g. one flow's routes for
        /// its documentation. Default: every route.
        routes: Vec<String>,
    },
    /// Print the RabbitMQ topology of the routes as definitions JSON (for review and
    /// `rabbitmqctl import_definitions`): exactly what `knut run` declares, per plane — the
    /// vhosts, the users (no passwords) and their least-privilege permissions.
    Topology {
        /// The internal plane's virtual host (default: the one in broker.url, else `/`).
        #[arg(long)]
        vhost: Option<String>,
        /// The external plane's virtual host (default: the one in external.broker_url,
        /// else `knut-external`).
        #[arg(long)]
        external_vhost: Option<String>,
        /// The internal plane's user (default: the one in broker.url, else
        /// `knut-internal`).
        #[arg(long)]
        internal_user: Option<String>,
        /// The external plane's user (default: the one in external.broker_url, else
        /// `knut-external`).
        #[arg(long)]
        external_user: Option<String>,
    },
    /// Print the JSON Schema of route files (schemas/route.schema.json).
    Schema,
    /// Print the version.
    Version,
}

/// `--plane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlaneArg {
    /// Internal routes (bridges included).
    Internal,
    /// External routes.
    External,
    /// Both planes in one process.
    All,
}

impl PlaneArg {
    /// The planes this choice runs.
    pub fn planes(self) -> Vec<crate::route::model::Plane> {
        use crate::route::model::Plane;
        match self {
            PlaneArg::Internal => vec![Plane::Internal],
            PlaneArg::External => vec![Plane::External],
            PlaneArg::All => vec![Plane::Internal, Plane::External],
        }
    }
}

/// Run the command line; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("knut: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(dispatch(cli))
}

fn load_config(root: &std::path::Path, dev: bool) -> Result<Config, ExitCode> {
    let mut config = Config::load(root).map_err(|e| {
        eprintln!("knut: {e}");
        ExitCode::FAILURE
    })?;
    if dev {
        config.profile = crate::config::Profile::Development;
    }
    Ok(config)
}

async fn dispatch(cli: Cli) -> ExitCode {
    let root = cli.root;
    let dev = cli.dev;
    match cli.command {
        Command::Version => {
            println!("knut {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run { plane } => {
            let config = match load_config(&root, dev) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(e) =
                crate::telemetry::init(config.log.format, &config.log.level, &config.telemetry)
            {
                eprintln!("knut: logging: {e}");
                return ExitCode::FAILURE;
            }
            let ran = crate::runtime::run(root, config, plane.planes()).await;
            // The spans still queued go out before the process ends.
            crate::telemetry::otel::shutdown().await;
            match ran {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("knut: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check => match load_routes(&root, dev) {
            Ok((config, loaded)) => {
                let refused = crate::runtime::posture::problems(
                    &config,
                    &loaded.routes,
                    loaded.resources.adapters.values(),
                );
                for p in &refused {
                    eprintln!("{p}");
                }
                if !refused.is_empty() {
                    eprintln!(
                        "{} problem(s) found: `knut run` would refuse to start ({} profile)",
                        refused.len(),
                        config.profile.as_str()
                    );
                    return ExitCode::FAILURE;
                }
                println!(
                    "ok: {} routes, {} adapters checked ({} profile)",
                    loaded.routes.len(),
                    loaded.resources.adapters.len(),
                    config.profile.as_str()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Test { path } => test::run(&root, path.as_deref()).await,
        // A drawing needs no credentials: routes load as for development.
        Command::Graph { routes } => match load_routes(&root, true) {
            Ok((_, loaded)) => {
                let patterns: Result<Vec<glob::Pattern>, _> =
                    routes.iter().map(|r| glob::Pattern::new(r)).collect();
                let Ok(patterns) = patterns else {
                    eprintln!(
                        "knut graph: a route pattern is not a glob pattern (use `*`, `?`, `[…]`)"
                    );
                    return ExitCode::from(2);
                };
                let chosen: Vec<_> = loaded
                    .routes
                    .iter()
                    .filter(|r| {
                        patterns.is_empty() || patterns.iter().any(|p| p.matches(&r.route.route))
                    })
                    .cloned()
                    .collect();
                if chosen.is_empty() {
                    eprintln!("knut graph: no route matches {}", routes.join(" "));
                    return ExitCode::FAILURE;
                }
                print!("{}", crate::route::graph::mermaid(&chosen));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Topology {
            vhost,
            external_vhost,
            internal_user,
            external_user,
        } => match load_routes(&root, true) {
            // Like a drawing, the topology needs no credentials.
            Ok((config, loaded)) => topology(
                &config,
                &loaded,
                Names {
                    vhost,
                    external_vhost,
                    internal_user,
                    external_user,
                },
            ),
            Err(code) => code,
        },
        Command::Schema => {
            let schema = crate::route::load::route_json_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Send {
            route,
            data,
            file,
            content_type,
            admin,
        } => {
            let config = match load_config(&root, dev) {
                Ok(c) => c,
                Err(code) => return code,
            };
            send(&config, &root, route, data, file, content_type, admin).await
        }
        Command::Dlq { command } => match load_config(&root, dev) {
            Ok(config) => dlq::run(&config, &root, command).await,
            Err(code) => code,
        },
        Command::Trace { id, json, admin } => match load_config(&root, dev) {
            Ok(config) => trace::run(&config, &root, &id, json, admin).await,
            Err(code) => code,
        },
    }
}

/// The admin address to talk to: `--admin`, else `admin.bind` of the configuration.
fn admin_address(config: &Config, admin: Option<String>) -> String {
    admin.unwrap_or_else(|| config.admin.bind.to_string())
}

/// An HTTP client for the admin API of a running knut.
fn admin_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `request` to the admin API at `admin` with the credential: `KNUT_ADMIN_TOKEN`, else the
/// development token of the root — that one only to an admin API on this machine.
fn authorized(
    request: reqwest::RequestBuilder,
    root: &std::path::Path,
    admin: &str,
) -> reqwest::RequestBuilder {
    use crate::admin::auth::{dev_token, env_token};
    let local = admin
        .rsplit_once(':')
        .is_some_and(|(host, _)| crate::adapter::is_loopback_host(host));
    match env_token().or_else(|| local.then(|| dev_token(root)).flatten()) {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// What to say when the admin API at `admin` cannot be reached.
fn unreachable(admin: &str, e: &reqwest::Error) -> String {
    format!("knut: cannot reach knut at {admin} ({e}); is `knut run` running?")
}

/// The configuration and the checked routes, or the problems printed and a failure code.
fn load_routes(
    root: &std::path::Path,
    dev: bool,
) -> Result<(Config, crate::runtime::Loaded), ExitCode> {
    let config = load_config(root, dev)?;
    match crate::runtime::load(root, &config) {
        Ok(loaded) => Ok((config, loaded)),
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            Err(ExitCode::FAILURE)
        }
    }
}

/// The vhosts and users `knut topology` names.
struct Names {
    vhost: Option<String>,
    external_vhost: Option<String>,
    internal_user: Option<String>,
    external_user: Option<String>,
}

fn topology(config: &Config, loaded: &crate::runtime::Loaded, names: Names) -> ExitCode {
    use crate::broker::amqp::definitions::{self, PlaneDefinitions};
    use crate::route::model::Plane;
    let vhost_or = |given: Option<String>, url: Option<&str>, default: &str| match (given, url) {
        (Some(v), _) => Ok(v),
        (None, Some(url)) if !url.is_empty() => definitions::vhost_of(url),
        (None, _) => Ok(default.to_string()),
    };
    let user_or = |given: Option<String>, url: Option<&str>, default: &str| {
        given
            .or_else(|| url.and_then(definitions::user_of))
            .unwrap_or_else(|| default.to_string())
    };
    let internal_vhost = vhost_or(names.vhost, config.broker.url.as_deref(), "/");
    let external_vhost = vhost_or(
        names.external_vhost,
        config.external.broker_url.as_deref(),
        "knut-external",
    );
    let (internal_vhost, external_vhost) = match (internal_vhost, external_vhost) {
        (Ok(i), Ok(e)) => (i, e),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("knut: {e}");
            return ExitCode::FAILURE;
        }
    };
    let routes = &loaded.routes;
    let own = |plane: Plane| -> Vec<crate::route::load::LoadedRoute> {
        routes
            .iter()
            .filter(|r| r.route.plane == plane && !r.route.is_bridge())
            .cloned()
            .collect()
    };
    let bridges: Vec<crate::route::load::LoadedRoute> = routes
        .iter()
        .filter(|r| r.route.is_bridge())
        .cloned()
        .collect();
    let qt = config.broker.queue_type;
    // The internal vhost: the internal routes, and what the bridges publish inward.
    let with_outlets = |mut t: crate::broker::Topology, plane: Plane| {
        t.outlets = crate::runtime::outlet_queues(&loaded.resources.outlets, plane);
        t
    };
    let mut internal = definitions::full_plan(
        &with_outlets(
            crate::runtime::plane_topology(&own(Plane::Internal), Plane::Internal),
            Plane::Internal,
        ),
        qt,
    );
    internal.merge(&definitions::plan(
        &crate::runtime::plane_topology(&bridges, Plane::Internal),
        qt,
    ));
    let internal = PlaneDefinitions {
        vhost: internal_vhost,
        user: user_or(
            names.internal_user,
            config.broker.url.as_deref(),
            "knut-internal",
        ),
        definitions: internal,
    };
    let external_routes = own(Plane::External);
    let external = (!external_routes.is_empty() || !bridges.is_empty()).then(|| PlaneDefinitions {
        vhost: external_vhost,
        user: user_or(
            names.external_user,
            config.external.broker_url.as_deref(),
            "knut-external",
        ),
        definitions: definitions::full_plan(
            &with_outlets(
                crate::runtime::plane_topology(&external_routes, Plane::External),
                Plane::External,
            ),
            qt,
        ),
    });
    let bridge = (!bridges.is_empty()).then(|| {
        definitions::full_plan(
            &crate::runtime::plane_topology(&bridges, Plane::External),
            qt,
        )
    });
    let bridge_ids: Vec<String> = bridges.iter().map(|r| r.route.route.clone()).collect();
    let defs = definitions::planes_json(&internal, external.as_ref(), bridge.as_ref(), &bridge_ids);
    match serde_json::to_string_pretty(&defs) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("knut: cannot render the topology: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn send(
    config: &Config,
    root: &std::path::Path,
    route: String,
    data: Option<String>,
    file: Option<PathBuf>,
    content_type: Option<String>,
    admin: Option<String>,
) -> ExitCode {
    let (body, guessed) = match (data, &file) {
        (Some(d), _) => (d.into_bytes(), "application/json"),
        (None, Some(f)) if f.as_os_str() == "-" => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf) {
                eprintln!("knut: cannot read standard input: {e}");
                return ExitCode::FAILURE;
            }
            (buf, "application/json")
        }
        (None, Some(f)) => match std::fs::read(f) {
            Ok(b) => {
                let ct = match f.extension().and_then(|e| e.to_str()) {
                    Some("xml") => "application/xml",
                    Some("csv") => "text/csv",
                    _ => "application/json",
                };
                (b, ct)
            }
            Err(e) => {
                eprintln!("knut: cannot read {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        },
        (None, None) => {
            eprintln!("knut: give the body with --data '<json>' or --file <path>");
            return ExitCode::FAILURE;
        }
    };
    let admin = admin_address(config, admin);
    let url = format!("http://{admin}/api/routes/{route}/messages");
    let request = admin_client()
        .post(&url)
        .header("content-type", content_type.as_deref().unwrap_or(guessed))
        .body(body);
    let resp = authorized(request, root, &admin).send().await;
    match resp {
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            println!("{text}");
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{}", unreachable(&admin, &e));
            ExitCode::FAILURE
        }
    }
}
