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
//! Use it from a test binary with `#[path = "support/rabbit.rs"] mod rabbit;` (or add
//! `pub mod rabbit;` to `tests/support/mod.rs`).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// How long a node may take to accept AMQP connections (about 5–15 s on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The private node of this test binary.
pub struct Node {
    /// Erlang node name, `knut-test-<pid>@localhost`.
    pub name: String,
    /// AMQP port on 127.0.0.1.
    pub port: u16,
    /// The temporary folder holding the node's data, logs and config.
    pub dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Node {
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
        let mut ctl = node.command(CTL);
        ctl.args(["-n", &node.name])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = tokio::task::spawn_blocking(move || ctl.output())
            .await
            .expect("rabbitmqctl task")
            .unwrap_or_else(|e| panic!("rabbitmqctl {}: {e}", args.join(" ")));
        assert!(
            out.status.success(),
            "rabbitmqctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    format!("amqp://guest:guest@127.0.0.1:{}/{name}", node.port)
}

/// Stop the private node (as a broker outage). Panics when tests use `KNUT_TEST_AMQP_URL`.
pub async fn stop_node() {
    let node = private_node()
        .await
        .expect("stop_node needs the private node: unset KNUT_TEST_AMQP_URL");
    let mut ctl = node.command(CTL);
    ctl.args(["-n", &node.name, "stop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = tokio::task::spawn_blocking(move || ctl.status())
        .await
        .expect("rabbitmqctl task");
    assert!(
        matches!(status, Ok(s) if s.success()),
        "rabbitmqctl could not stop node {}: see {}",
        node.name,
        node.dir.join("log").display()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while port_open(node.port) {
        assert!(Instant::now() < deadline, "node {} did not stop", node.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Start the private node again (same name, ports and data) and wait until it accepts AMQP.
pub async fn start_node() {
    let node = private_node()
        .await
        .expect("start_node needs the private node: unset KNUT_TEST_AMQP_URL");
    spawn_server(node).unwrap_or_else(|e| panic!("{e}"));
    wait_ready(node).await.unwrap_or_else(|e| panic!("{e}"));
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
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
    std::fs::create_dir_all(dir.join("mnesia"))
        .and_then(|_| std::fs::create_dir_all(dir.join("log")))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let port = free_port()?;
    let mut dist_port = free_port()?;
    while dist_port == port {
        dist_port = free_port()?;
    }
    let name = format!("knut-test-{pid}@localhost");
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
        ("HOME".to_string(), d("")),
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
    let node = Node {
        name,
        port,
        dir,
        env,
    };
    spawn_watchdog(&node, pid)?;
    spawn_server(&node)?;
    wait_ready(&node).await?;
    Ok(node)
}

/// The node runs in a session of its own, detached from the test process (which does not
/// wait for it); its output goes to `server.log` in the node's folder.
fn spawn_server(node: &Node) -> Result<(), String> {
    let log = node.dir.join("server.log");
    let status = node
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

/// Stops the node and removes its folder once the test process `parent` is gone.
fn spawn_watchdog(node: &Node, parent: u32) -> Result<(), String> {
    let script = r#"
        parent="$1"; node="$2"; dir="$3"; ctl="$4"
        while kill -0 "$parent" 2>/dev/null; do sleep 1; done
        "$ctl" -n "$node" stop >/dev/null 2>&1
        if [ -f "$dir/rabbitmq.pid" ]; then kill -9 "$(cat "$dir/rabbitmq.pid")" 2>/dev/null; fi
        rm -rf "$dir"
    "#;
    let watchdog = format!(
        r#"setsid sh -c '{}' watchdog "$0" "$1" "$2" "$3" >/dev/null 2>&1 </dev/null &"#,
        script.replace('\'', r"'\''")
    );
    let status = node
        .command("sh")
        .arg("-c")
        .arg(watchdog)
        .arg(parent.to_string())
        .arg(&node.name)
        .arg(&node.dir)
        .arg(CTL)
        .status()
        .map_err(|e| format!("cannot start the node's watchdog: {e}"))?;
    if !status.success() {
        return Err("the node's watchdog did not start".into());
    }
    Ok(())
}

async fn wait_ready(node: &Node) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if port_open(node.port) {
            let props = lapin::ConnectionProperties::default();
            if let Ok(Ok(conn)) = tokio::time::timeout(
                Duration::from_secs(5),
                lapin::Connection::connect(&node.url(), props),
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
                node.name,
                node.port,
                START_TIMEOUT.as_secs(),
                node.dir.join("server.log").display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
