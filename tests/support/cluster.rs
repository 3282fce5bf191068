//! A RabbitMQ cluster of private nodes for integration tests (node outages, quorum queues).
//!
//! [`Cluster::start`] starts `count` nodes the way `support/rabbit.rs` starts its one:
//! node names `knut-cl-<pid>-<k>-<i>@localhost`, their own AMQP and distribution ports, and
//! their database, logs, config and plugin list in folders of their own, here
//! `node-<i>` in one temporary folder per cluster. It never touches the machine's own
//! broker (`rabbit@localhost` on port 5672) nor its cookie.
//!
//! **Cookie**: nodes only talk to each other (and `rabbitmqctl` to them) when they share an
//! Erlang cookie. Erlang reads it from `$HOME/.erlang.cookie`, so every node of a cluster,
//! and every `rabbitmqctl` for it, gets the cluster folder's `home` as `HOME`, where a random
//! cookie is written (mode 0400, or Erlang refuses it) before any node starts.
//! (`RABBITMQ_ERLANG_COOKIE` is deprecated in RabbitMQ 3.10.)
//!
//! **Joining**: all nodes boot at once; then nodes 1, 2, … join node 0 one after the other
//! (`stop_app`, `join_cluster`, `start_app`), since a node joins by resetting its own
//! database and copying the cluster's. On a two-core machine the three nodes take about 8 s
//! to boot and each join 2 s.
//!
//! **Stopping it**: as for the single node, a watchdog shell started before the nodes stops
//! them all once the test process is gone, and removes the cluster's folder.
//!
//! **Restarts**: a stopped node may start again while another node runs (it syncs with it).
//! Stopping *all* nodes and starting them again is not supported here: the node stopped last
//! must then start first, and the others wait for it (up to 5 minutes) before they boot.
//!
//! Quorum queues declared without `x-quorum-initial-group-size` get a replica on every node
//! of a three-node cluster (the default group size is `quorum_cluster_size`, 3).
//!
//! Use it from a test binary next to `support/rabbit.rs`, which it builds on:
//!
//! ```ignore
//! #[path = "support/rabbit.rs"]
//! mod rabbit;
//! #[path = "support/cluster.rs"]
//! mod cluster;
//! ```

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::rabbit::{Node, SERVER, free_port, port_open, spawn_watchdog};

/// How long a (re)started node may take to show every running node as its peer.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);

/// Private RabbitMQ nodes joined into one cluster.
pub struct Cluster {
    /// The nodes; node 0 is the one the others joined.
    pub nodes: Vec<Node>,
    /// The temporary folder holding the shared `home` and each node's folder.
    pub dir: PathBuf,
}

impl Cluster {
    /// `count` private nodes joined into one cluster (node 0 first, then 1, 2, … join it),
    /// all started and accepting AMQP, `guest` allowed on 127.0.0.1. Stopped and removed by
    /// a watchdog when the test process ends. Panics when RabbitMQ is not installed or a
    /// node does not start or join.
    pub async fn start(count: usize) -> Cluster {
        match launch(count).await {
            Ok(cluster) => cluster,
            Err(e) => panic!("{e}"),
        }
    }

    /// Every node's AMQP URL (vhost `/`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Stop node `i` (as an outage: `rabbitmqctl stop`) and wait until its port is closed
    /// and its process is gone.
    pub async fn stop(&self, i: usize) {
        self.nodes[i].stop().await;
    }

    /// Start node `i` again (same name, ports and data) and wait until it accepts AMQP and
    /// sees every other running node as a running member of its cluster.
    pub async fn start_node(&self, i: usize) {
        self.nodes[i].start().await;
        if let Err(e) = self.wait_clustered(i).await {
            panic!("{e}\n{}", self.status());
        }
    }

    /// `rabbitmqctl cluster_status` as the first running node sees it (for diagnostics).
    pub fn status(&self) -> String {
        let Some(node) = self.nodes.iter().find(|n| port_open(n.port)) else {
            return "no node of the cluster is running".into();
        };
        match node.ctl().arg("cluster_status").output() {
            Ok(out) => strip_ansi(&format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => format!("rabbitmqctl -n {} cluster_status: {e}", node.name),
        }
    }

    /// Waits until node `i` counts every node whose AMQP port is open (itself included) as a
    /// running member of its cluster.
    async fn wait_clustered(&self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let up: Vec<&str> = self
                .nodes
                .iter()
                .filter(|n| port_open(n.port))
                .map(|n| n.name.as_str())
                .collect();
            let running = running_nodes(node).await;
            match &running {
                Ok(running) if up.iter().all(|n| running.iter().any(|r| r == n)) => {
                    return Ok(());
                }
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "node {} did not see the running nodes {up:?} in its cluster within {} s \
                         ({running:?}): see {}",
                        node.name,
                        CLUSTER_TIMEOUT.as_secs(),
                        node.dir.join("log").display()
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}

/// The running nodes of `node`'s cluster, as `node` sees them.
async fn running_nodes(node: &Node) -> Result<Vec<String>, String> {
    let out = node
        .run_ctl(&["cluster_status", "--formatter", "json", "--quiet"])
        .await?;
    let json: serde_json::Value = serde_json::from_str(out.trim())
        .map_err(|e| format!("cluster_status of {} is not JSON ({e}): {out}", node.name))?;
    let names = json["running_nodes"].as_array().ok_or_else(|| {
        format!(
            "cluster_status of {} has no running_nodes: {out}",
            node.name
        )
    })?;
    Ok(names
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect())
}

async fn launch(count: usize) -> Result<Cluster, String> {
    assert!(count >= 1, "a cluster needs at least one node");
    if !Path::new(SERVER).exists() {
        return Err(format!(
            "RabbitMQ cluster tests need RabbitMQ installed so that {SERVER} exists \
             (Debian/Ubuntu: `apt-get install rabbitmq-server`; the tests start private nodes \
             of their own)"
        ));
    }
    // Several clusters may be started by one test binary.
    static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
    let k = CLUSTERS.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("knut-cluster-{pid}-{}", free_port()?));
    let home = dir.join("home");
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    write_cookie(&home)?;
    let nodes = (0..count)
        .map(|i| {
            Node::create(
                format!("knut-cl-{pid}-{k}-{i}@localhost"),
                dir.join(format!("node-{i}")),
                &home,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    spawn_watchdog(pid, &nodes.iter().collect::<Vec<_>>(), &dir)?;
    // Boot them all at once, which is quicker than one after the other even on two cores.
    for node in &nodes {
        node.spawn()?;
    }
    for node in &nodes {
        node.wait_ready().await?;
    }
    let seed = &nodes[0].name;
    for node in &nodes[1..] {
        for args in [
            vec!["stop_app"],
            vec!["join_cluster", seed.as_str()],
            vec!["start_app"],
        ] {
            node.run_ctl(&args).await?;
        }
        node.wait_ready().await?;
    }
    let cluster = Cluster { nodes, dir };
    for i in 0..count {
        if let Err(e) = cluster.wait_clustered(i).await {
            return Err(format!("{e}\n{}", cluster.status()));
        }
    }
    Ok(cluster)
}

/// A random Erlang cookie in `home/.erlang.cookie`, readable by its owner only (Erlang
/// refuses a cookie file others may read).
fn write_cookie(home: &Path) -> Result<(), String> {
    let path = home.join(".erlang.cookie");
    let cookie = format!("{:032x}", rand::random::<u128>());
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&path)
        .and_then(|mut f| f.write_all(cookie.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `text` without terminal colour codes (`rabbitmqctl` prints its headings in bold even
/// into a pipe).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
