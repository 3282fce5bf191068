//! The `knut` command line: parse arguments, call the library.

pub mod dlq;
pub mod test;

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
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the routes: broker (embedded when no broker.url), endpoints, workers, admin.
    Run,
    /// Check routes, adapters, schemas and transforms; exit 1 on any error.
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
    /// Print a Mermaid flowchart of routes, exchanges and adapters.
    Graph {
        /// Only these routes: ids or glob patterns (`leave-*`), e.g. one flow's routes for
        /// its documentation. Default: every route.
        routes: Vec<String>,
    },
    /// Print the RabbitMQ topology of the routes as definitions JSON (for review and
    /// `rabbitmqctl import_definitions`): exactly what `knut run` declares.
    Topology {
        /// The virtual host to name (default: the one in broker.url, else `/`).
        #[arg(long)]
        vhost: Option<String>,
    },
    /// Print the JSON Schema of route files (schemas/route.schema.json).
    Schema,
    /// Print the version.
    Version,
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

fn load_config(root: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(root).map_err(|e| {
        eprintln!("knut: {e}");
        ExitCode::FAILURE
    })
}

async fn dispatch(cli: Cli) -> ExitCode {
    let root = cli.root;
    match cli.command {
        Command::Version => {
            println!("knut {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run => {
            let config = match load_config(&root) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(e) = crate::telemetry::init(config.log.format, &config.log.level) {
                eprintln!("knut: logging: {e}");
                return ExitCode::FAILURE;
            }
            match crate::runtime::run(root, config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("knut: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check => match load_routes(&root) {
            Ok((_, loaded)) => {
                println!(
                    "ok: {} routes, {} adapters checked",
                    loaded.routes.len(),
                    loaded.resources.adapters.len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Test { path } => test::run(&root, path.as_deref()).await,
        Command::Graph { routes } => match load_routes(&root) {
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
        Command::Topology { vhost } => match load_routes(&root) {
            Ok((config, loaded)) => topology(&config, &loaded, vhost),
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
            let config = match load_config(&root) {
                Ok(c) => c,
                Err(code) => return code,
            };
            send(&config, route, data, file, content_type, admin).await
        }
        Command::Dlq { command } => match load_config(&root) {
            Ok(config) => dlq::run(&config, command).await,
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

/// What to say when the admin API at `admin` cannot be reached.
fn unreachable(admin: &str, e: &reqwest::Error) -> String {
    format!("knut: cannot reach knut at {admin} ({e}); is `knut run` running?")
}

/// The configuration and the checked routes, or the problems printed and a failure code.
fn load_routes(root: &std::path::Path) -> Result<(Config, crate::runtime::Loaded), ExitCode> {
    let config = load_config(root)?;
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

fn topology(config: &Config, loaded: &crate::runtime::Loaded, vhost: Option<String>) -> ExitCode {
    use crate::broker::amqp::definitions;
    let vhost = match (vhost, config.broker.url.as_deref()) {
        (Some(v), _) => v,
        (None, Some(url)) if !url.is_empty() => match definitions::vhost_of(url) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("knut: {e}");
                return ExitCode::FAILURE;
            }
        },
        (None, _) => "/".to_string(),
    };
    let topology = crate::runtime::topology(&loaded.routes);
    let defs = definitions::full_plan(&topology, config.broker.queue_type);
    match serde_json::to_string_pretty(&defs.to_json(&vhost)) {
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
    let resp = admin_client()
        .post(&url)
        .header("content-type", content_type.as_deref().unwrap_or(guessed))
        .body(body)
        .send()
        .await;
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
