//! A RabbitMQ broker for integration tests.
//!
//! [`amqp_url`] gives the URL every RabbitMQ test uses:
//! - `KNUT_TEST_AMQP_URL`, when set (tests then use unique names only, and fault tests that
//!   stop the broker are skipped: see [`private_node`]);
//! - otherwise a private RabbitMQ node, started once per test binary: node name
//!   `knut-test-<pid>@localhost`, its own AMQP and distribution ports, and its database,
//!   logs, config, plugin list and `HOME` (so its own Erlang cookie) in a temporary folder.
//!   It never touches the machine's own broker (`rabbit@localhost` on port 5672).
//!
//! **Stopping it**: statics are not dropped when a test binary ends, so a watchdog shell,
//! started with the node in a session of its own, polls the test process every second;
//! once that process is gone (passed, failed, panicked or killed) the watchdog stops the
//! node with `rabbitmqctl stop` (and `kill -9` if that did not work) and removes the
//! folder. [`stop_node`] and [`start_node`] stop and start the same node (same data) for
//! fault tests.
//!
//! The pieces that launch a node ([`Node::create`], [`spawn_watchdog`], [`Node::start`],
//! [`Node::stop`]) are public so that `support/cluster.rs` can start several nodes that
//! share one Erlang cookie and join them into a cluster.
//!
//! Use it from a test binary with `#[path = "support/rabbit.rs"] mod rabbit;` (or add
//! `pub mod rabbit;` to `tests/support/mod.rs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

pub const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
pub const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// How long a node may take to accept AMQP connections (about 5–15 s on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `rabbitmqctl stop` may take until the node's process is gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A private RabbitMQ node: this test binary's own (see [`private_node`]) or one of a
/// cluster's (see `support/cluster.rs`).
pub struct Node {
    /// Erlang node name, such as `knut-test-<pid>@localhost`.
    pub name: String,
    /// AMQP port on 127.0.0.1.
    pub port: u16,
    /// The temporary folder holding the node's data, logs and config.
    pub dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Node {
    /// A node named `name` (`<tag>@localhost`) with its data, logs and config in `dir`
    /// (created now) and `HOME` at `home`, on free AMQP and distribution ports; not started.
    ///
    /// Erlang reads its cookie from `$HOME/.erlang.cookie` (and creates one there if there is
    /// none), in the node as in `rabbitmqctl`: a lone node gets `home = dir`, so a cookie of
    /// its own; nodes that are to form a cluster share one `home` holding the cookie they
    /// must agree on. The machine's own cookie (`/var/lib/rabbitmq`) is never read.
    pub fn create(name: String, dir: PathBuf, home: &Path) -> Result<Node, String> {
        std::fs::create_dir_all(dir.join("mnesia"))
            .and_then(|_| std::fs::create_dir_all(dir.join("log")))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let port = free_port()?;
        let dist_port = free_port()?;
        write(&dir.join("enabled_plugins"), "[].\n")?;
        write(
            &dir.join("rabbitmq.conf"),
            &format!(
                "listeners.tcp.default = 127.0.0.1:{port}\n\
                 loopback_users.guest = true\n\
                 log.console = false\n\
                 log.file.level = info\n"
            ),
        )?;
        // An empty env file, so that /etc/rabbitmq/rabbitmq-env.conf (the shared node's) is not read.
        write(&dir.join("rabbitmq-env.conf"), "")?;
        let d = |sub: &str| dir.join(sub).display().to_string();
        let env = vec![
            ("HOME".to_string(), home.display().to_string()),
            ("RABBITMQ_NODENAME".to_string(), name.clone()),
            (
                "RABBITMQ_NODE_IP_ADDRESS".to_string(),
                "127.0.0.1".to_string(),
            ),
            ("RABBITMQ_NODE_PORT".to_string(), port.to_string()),
            ("RABBITMQ_DIST_PORT".to_string(), dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE".to_string(), d("mnesia")),
            ("RABBITMQ_LOG_BASE".to_string(), d("log")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE".to_string(),
                d("enabled_plugins"),
            ),
            ("RABBITMQ_CONFIG_FILE".to_string(), d("rabbitmq.conf")),
            ("RABBITMQ_CONF_ENV_FILE".to_string(), d("rabbitmq-env.conf")),
            ("RABBITMQ_PID_FILE".to_string(), d("rabbitmq.pid")),
            ("ERL_EPMD_ADDRESS".to_string(), "127.0.0.1".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        Ok(Node {
            name,
            port,
            dir,
            env,
        })
    }

    /// The AMQP URL of the node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `rabbitmqctl -n <node>` for this node.
    pub fn ctl(&self) -> Command {
        let mut c = self.command(CTL);
        c.args(["-n", &self.name]);
        c
    }

    /// Runs `rabbitmqctl -n <node> <args>` off the async runtime: its stdout, or an error
    /// naming the command with its output.
    pub async fn run_ctl(&self, args: &[&str]) -> Result<String, String> {
        let what = format!("rabbitmqctl -n {} {}", self.name, args.join(" "));
        let mut ctl = self.ctl();
        ctl.args(args).stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || ctl.output())
            .await
            .map_err(|e| format!("{what}: {e}"))?
            .map_err(|e| format!("{what}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts the node (again: same name, ports and data) and waits until it accepts AMQP.
    pub async fn start(&self) {
        self.spawn().unwrap_or_else(|e| panic!("{e}"));
        self.wait_ready().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the node with `rabbitmqctl stop` (as a broker outage) and waits until its port
    /// is closed and its process is gone, so that a restart finds its data free.
    pub async fn stop(&self) {
        let pid = std::fs::read_to_string(self.dir.join("rabbitmq.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let mut ctl = self.ctl();
        ctl.arg("stop").stdout(Stdio::null()).stderr(Stdio::null());
        let status = tokio::task::spawn_blocking(move || ctl.status())
            .await
            .expect("rabbitmqctl task");
        assert!(
            matches!(status, Ok(s) if s.success()),
            "rabbitmqctl could not stop node {}: see {}",
            self.name,
            self.dir.join("log").display()
        );
        let deadline = Instant::now() + STOP_TIMEOUT;
        while port_open(self.port) || pid.is_some_and(process_alive) {
            assert!(Instant::now() < deadline, "node {} did not stop", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts the node's server in a session of its own, detached from the test process
    /// (which does not wait for it); its output goes to `server.log` in the node's folder.
    pub fn spawn(&self) -> Result<(), String> {
        let log = self.dir.join("server.log");
        let status = self
            .command("sh")
            .arg("-c")
            .arg(r#"setsid "$0" >>"$1" 2>&1 </dev/null &"#)
            .arg(SERVER)
            .arg(&log)
            .status()
            .map_err(|e| format!("cannot start {SERVER}: {e}"))?;
        if !status.success() {
            return Err(format!("{SERVER} did not start: see {}", log.display()));
        }
        Ok(())
    }

    /// Waits until the node accepts an AMQP connection as `guest`.
    pub async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if port_open(self.port) {
                let props = lapin::ConnectionProperties::default();
                if let Ok(Ok(conn)) = tokio::time::timeout(
                    Duration::from_secs(5),
                    lapin::Connection::connect(&self.url(), props),
                )
                .await
                {
                    let _ = conn.close(200, "ready".into()).await;
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the private RabbitMQ node {} did not accept AMQP on port {} within {} s: see {}",
                    self.name,
                    self.port,
                    START_TIMEOUT.as_secs(),
                    self.dir.join("server.log").display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear();
        c.env("PATH", std::env::var("PATH").unwrap_or_default());
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }
}

static NODE: OnceCell<Node> = OnceCell::const_new();

/// The AMQP URL for tests: `KNUT_TEST_AMQP_URL`, or this binary's private node (started on
/// first use).
pub async fn amqp_url() -> String {
    if let Ok(url) = std::env::var("KNUT_TEST_AMQP_URL") {
        return url;
    }
    node().await.url()
}

/// This binary's private node, or `None` when `KNUT_TEST_AMQP_URL` names a broker (which
/// tests must not stop).
pub async fn private_node() -> Option<&'static Node> {
    if std::env::var("KNUT_TEST_AMQP_URL").is_ok() {
        return None;
    }
    Some(node().await)
}

async fn node() -> &'static Node {
    NODE.get_or_init(|| async {
        match launch().await {
            Ok(node) => node,
            Err(e) => panic!("{e}"),
        }
    })
    .await
}

/// A virtual host of its own on the private node (created now, `guest` may use it) and its
/// URL, so that several `knut` processes with the same routes can run side by side without
/// sharing queues. With `KNUT_TEST_AMQP_URL` set, that URL is returned as it is (the tests
/// using it then share its virtual host).
pub async fn vhost_url(name: &str) -> String {
    if let Ok(url) = std::env::var("KNUT_TEST_AMQP_URL") {
        return url;
    }
    let node = node().await;
    for args in [
        vec!["add_vhost", name],
        vec!["set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
    ] {
        if let Err(e) = node.run_ctl(&args).await {
            panic!("{e}");
        }
    }
    format!("amqp://guest:guest@127.0.0.1:{}/{name}", node.port)
}

/// Stop the private node (as a broker outage). Panics when tests use `KNUT_TEST_AMQP_URL`.
pub async fn stop_node() {
    private_node()
        .await
        .expect("stop_node needs the private node: unset KNUT_TEST_AMQP_URL")
        .stop()
        .await;
}

/// Start the private node again (same name, ports and data) and wait until it accepts AMQP.
pub async fn start_node() {
    private_node()
        .await
        .expect("start_node needs the private node: unset KNUT_TEST_AMQP_URL")
        .start()
        .await;
}

/// A free port on 127.0.0.1, never one this process handed out before: the port is free
/// only until someone binds it, and the nodes of a cluster pick several before any starts.
pub fn free_port() -> Result<u16, String> {
    Ok(super::root::free_port())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Whether process `pid` still runs (a zombie, which only waits to be reaped, does not).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn launch() -> Result<Node, String> {
    if !Path::new(SERVER).exists() {
        return Err(format!(
            "RabbitMQ tests need a broker: set KNUT_TEST_AMQP_URL=amqp://user:pass@host:port/vhost, \
             or install RabbitMQ so that {SERVER} exists (Debian/Ubuntu: \
             `apt-get install rabbitmq-server`; the tests start a private node of their own)"
        ));
    }
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("knut-rabbit-{pid}-{}", free_port()?));
    let node = Node::create(format!("knut-test-{pid}@localhost"), dir.clone(), &dir)?;
    spawn_watchdog(pid, &[&node], &node.dir)?;
    node.spawn()?;
    node.wait_ready().await?;
    Ok(node)
}

/// Stops `nodes` and removes `dir` (which holds their folders) once the test process
/// `parent` is gone. Each node is stopped with `rabbitmqctl stop`, all at once, and killed
/// with `kill -9` if its pid file is still there afterwards. Start it before the nodes, so
/// that a test that fails while they start leaves nothing behind either.
pub fn spawn_watchdog(parent: u32, nodes: &[&Node], dir: &Path) -> Result<(), String> {
    let first = nodes.first().ok_or("a watchdog needs a node")?;
    let script = r#"
        parent="$1"; dir="$2"; ctl="$3"; shift 3
        while kill -0 "$parent" 2>/dev/null; do sleep 1; done
        stop_one() {
            "$ctl" -n "$1" stop >/dev/null 2>&1
            if [ -f "$2" ]; then kill -9 "$(cat "$2")" 2>/dev/null; fi
        }
        while [ $# -ge 2 ]; do stop_one "$1" "$2" & shift 2; done
        wait
        rm -rf "$dir"
    "#;
    let watchdog = format!(
        r#"setsid sh -c '{}' watchdog "$@" >/dev/null 2>&1 </dev/null &"#,
        script.replace('\'', r"'\''")
    );
    // All nodes share the first one's `HOME` (cookie) when there are several.
    let mut sh = first.command("sh");
    sh.arg("-c")
        .arg(watchdog)
        .arg("sh")
        .arg(parent.to_string())
        .arg(dir)
        .arg(CTL);
    for node in nodes {
        sh.arg(&node.name).arg(node.dir.join("rabbitmq.pid"));
    }
    let status = sh
        .status()
        .map_err(|e| format!("cannot start the node's watchdog: {e}"))?;
    if !status.success() {
        return Err("the node's watchdog did not start".into());
    }
    Ok(())
}
