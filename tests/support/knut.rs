//! `knut run` as a child process of a test: the same ports and SQLite store
//! (`<root>/data/knut.db`) at every start, its own sandbox off, stderr to
//! `<root>/knut-<run>.log`; stopped with SIGTERM or `kill -9`, and killed when dropped.
//!
//! Use it with `#[path = "support/knut.rs"] mod knut;` next to `support/root.rs` as `root`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One `knut run` over its restarts.
pub struct Knut {
    /// The root it runs.
    pub root: PathBuf,
    /// RabbitMQ, or the embedded broker when `None`.
    pub amqp: Option<String>,
    /// Further environment variables (adapter URLs).
    pub env: Vec<(String, String)>,
    /// The ingress port.
    pub http: u16,
    /// The admin port.
    pub admin: u16,
    /// The external plane's ingress port.
    pub external_http: u16,
    /// The external plane's admin port.
    pub external_admin: u16,
    /// Run with `--dev` (the default); `false` runs the production profile.
    pub dev: bool,
    child: Option<Child>,
    runs: u32,
}

impl Knut {
    /// A knut for `root` on free ports, on RabbitMQ at `amqp` or the embedded broker, with
    /// `env` set; not started.
    pub fn new(root: &Path, amqp: Option<&str>, env: &[(&str, &str)]) -> Knut {
        Knut {
            root: root.to_path_buf(),
            amqp: amqp.map(str::to_string),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            http: super::root::free_port(),
            admin: super::root::free_port(),
            external_http: super::root::free_port(),
            external_admin: super::root::free_port(),
            dev: true,
            child: None,
            runs: 0,
        }
    }

    /// The log of start number `run` (from 1).
    pub fn log(&self, run: u32) -> PathBuf {
        self.root.join(format!("knut-{run}.log"))
    }

    /// Start `knut run` (same ports and store each time) and wait for `/readyz` 200.
    pub async fn start(&mut self, client: &reqwest::Client) {
        assert!(self.child.is_none(), "knut is already running");
        self.runs += 1;
        // The shipped auth schemes set below read OeP's password from the root.
        let password = self.root.join("oep-password");
        if !self.sandboxed() && !password.exists() {
            std::fs::write(&password, super::root::OEP_PASSWORD).expect("oep-password");
        }
        let log = std::fs::File::create(self.log(self.runs)).unwrap();
        let store = self.root.join("data/knut.db");
        let mut command = Command::new(env!("CARGO_BIN_EXE_knut"));
        match &self.amqp {
            Some(url) => command.env("KNUT__BROKER__URL", url),
            None => command.env_remove("KNUT__BROKER__URL"),
        };
        if self.dev {
            command
                .arg("--dev")
                // Tests send faster than any client may: the rate limit is lifted.
                .env("KNUT__HTTP__RATE_LIMIT__PER_SECOND", "100000")
                .env("KNUT__HTTP__RATE_LIMIT__BURST", "100000");
        }
        let child = command
            .arg("--root")
            .arg(&self.root)
            .arg("run")
            .env("KNUT__HTTP__BIND", format!("127.0.0.1:{}", self.http))
            .env("KNUT__ADMIN__BIND", format!("127.0.0.1:{}", self.admin))
            .env(
                "KNUT__EXTERNAL__HTTP_BIND",
                format!("127.0.0.1:{}", self.external_http),
            )
            .env(
                "KNUT__EXTERNAL__ADMIN_BIND",
                format!("127.0.0.1:{}", self.external_admin),
            )
            .env(
                "KNUT__STORE__URL",
                format!("sqlite://{}?mode=rwc", store.display()),
            )
            .env("KNUT__SANDBOX__ENABLED", "false")
            .envs(
                if self.sandboxed() {
                    &[][..]
                } else {
                    super::root::SHIPPED_AUTH_ENV
                }
                .iter()
                .copied(),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("knut starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ready(client).await != Some(200) {
            if Instant::now() > deadline || self.exited().is_some() {
                panic!("knut never became ready:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The admin credential of this development instance (written at its start).
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.root.join("data/admin-token"))
            .map(|t| t.trim().to_string())
            .expect("a development knut writes data/admin-token at start")
    }

    /// True when the test turned the sandbox on (it then serves the auth schemes).
    fn sandboxed(&self) -> bool {
        self.env
            .iter()
            .any(|(k, v)| k == "KNUT__SANDBOX__ENABLED" && v == "true")
    }

    /// The status of `/readyz`, or `None` when it does not answer.
    pub async fn ready(&self, client: &reqwest::Client) -> Option<u16> {
        let url = format!("http://127.0.0.1:{}/readyz", self.admin);
        let resp = client.get(url).send().await.ok()?;
        Some(resp.status().as_u16())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The last 40 lines of the current run's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log(self.runs)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("knut runs");
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        eprintln!("knut killed: {status:?}");
    }

    /// SIGTERM; wait for the exit (at most 60 s: the 30 s grace of `[shutdown] timeout`
    /// for messages in hand, and the bounded steps after it).
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("knut runs");
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                let took = started.elapsed();
                if took > Duration::from_secs(10) {
                    eprintln!("knut took {took:?} to stop:\n{}", self.log_tail());
                }
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "knut did not stop within 60 s of SIGTERM:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Knut {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
