//! `knut run` as a process: ready, serving, logs masked, graceful on SIGTERM.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::root::{copy_root, free_port};

fn get(url: &str) -> Option<(u16, String)> {
    // A tiny blocking HTTP/1.1 GET, enough for health checks.
    use std::io::Write;
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf))
}

fn post_json(url: &str, body: &str) -> Option<u16> {
    use std::io::Write;
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn knut_run_serves_masks_personnummer_and_stops_on_sigterm() {
    let root = copy_root();
    std::fs::write(
        root.path().join("routes/log-everything.yaml"),
        r#"
route: log-everything
from: { http: { path: /in/test/log, auth: none, format: json } }
steps:
  - log: { message: "received", jq: "." }
  - log: { message: "literal 20130412-2383 in a route file" }
"#,
    )
    .unwrap();
    let (http, admin, external_admin) = (free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_knut"))
        .arg("--root")
        .arg(root.path())
        .args(["run", "--dev"])
        .env("KNUT__HTTP__BIND", format!("127.0.0.1:{http}"))
        .env("KNUT__ADMIN__BIND", format!("127.0.0.1:{admin}"))
        .env(
            "KNUT__EXTERNAL__HTTP_BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "KNUT__EXTERNAL__ADMIN_BIND",
            format!("127.0.0.1:{external_admin}"),
        )
        .env_remove("KNUT__SANDBOX__ENABLED")
        .env("KNUT__SANDBOX__BIND", format!("127.0.0.1:{}", free_port()))
        // The shipped OeP poll route polls nothing outside this test (a refused connection).
        .env("KNUT_ADAPTER_OEP_URL", "http://127.0.0.1:9/sandbox/oep")
        .env("KNUT__LOG__FORMAT", "json")
        .env_remove("KNUT__BROKER__URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("knut starts");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = get(&format!("http://127.0.0.1:{admin}/readyz")) {
            break;
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("knut never became ready:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        get(&format!("http://127.0.0.1:{admin}/healthz")).map(|r| r.0),
        Some(200)
    );
    // The admin API itself needs the credential (`knut` reads the development token), on
    // both planes' listeners.
    for path in [
        "/api/routes",
        "/api/routes/oep-flowinstance-normalise/dlq",
        "/api/audit",
        "/nothing-here",
    ] {
        assert_eq!(
            get(&format!("http://127.0.0.1:{admin}{path}")).map(|r| r.0),
            Some(401),
            "{path}"
        );
    }
    assert_eq!(
        get(&format!("http://127.0.0.1:{external_admin}/api/routes")).map(|r| r.0),
        Some(401)
    );
    // The external listener shows nothing of the internal plane: no metrics, no audit.
    assert_eq!(
        get(&format!("http://127.0.0.1:{external_admin}/metrics")).map(|r| r.0),
        Some(404),
        "not served on the external listener of a process running both planes"
    );

    let body = r#"{"civicNo":"20130412-2383","short":"130412-2383","centenarian":"130412+2383","digits":"201304122383","ten":"1304122383","note":"Tilda"}"#;
    assert_eq!(
        post_json(&format!("http://127.0.0.1:{http}/in/test/log"), body),
        Some(202)
    );
    std::thread::sleep(Duration::from_millis(500));

    // `knut send` hands a message to a route through the admin API (the route's plane's;
    // the credential is the development token the instance wrote).
    let sent = Command::new(env!("CARGO_BIN_EXE_knut"))
        .arg("--root")
        .arg(root.path())
        .args(["send", "oep-flowinstance-in", "--file"])
        .arg(support::root::repo().join("tests/fixtures/oep/leave-application-latin1.xml"))
        .args(["--admin", &format!("127.0.0.1:{external_admin}")])
        .env_remove("KNUT_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "knut send: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(String::from_utf8_lossy(&sent.stdout).contains("correlation_id"));
    let file = root.path().join("data/out/applications/oep-412-90017.json");
    let waited = Instant::now();
    while !file.exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the sent export never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let unknown = Command::new(env!("CARGO_BIN_EXE_knut"))
        .arg("--root")
        .arg(root.path())
        .args([
            "send",
            "no-such-route",
            "--data",
            "{}",
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stdout).contains("no route"));

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "knut did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful exit: {status:?}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("received"), "the log step ran:\n{err}");
    assert!(err.contains("Tilda"), "other data stays readable:\n{err}");
    for pnr in [
        "20130412-2383",
        "130412-2383",
        "130412+2383",
        "201304122383",
        "1304122383",
    ] {
        assert!(
            !err.contains(pnr),
            "personnummer {pnr} leaked into the log:\n{err}"
        );
    }
}

/// `knut run` with its sandbox, as a developer starts it: the incoming leave applications
/// of the (simulated) OeP are polled at start and archived. (The flows themselves are in
/// `tests/flows.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandboxed_oep_is_polled_at_start() {
    let root = copy_root();
    let (http, admin, sandbox) = (free_port(), free_port(), free_port());
    let base = format!("http://127.0.0.1:{sandbox}/sandbox");
    let mut child = Command::new(env!("CARGO_BIN_EXE_knut"))
        .arg("--root")
        .arg(root.path())
        .args(["run", "--dev"])
        .env("KNUT__HTTP__BIND", format!("127.0.0.1:{http}"))
        .env("KNUT__ADMIN__BIND", format!("127.0.0.1:{admin}"))
        .env(
            "KNUT__EXTERNAL__HTTP_BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "KNUT__EXTERNAL__ADMIN_BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("KNUT__SANDBOX__BIND", format!("127.0.0.1:{sandbox}"))
        .env("KNUT_ADAPTER_OEP_URL", format!("{base}/oep"))
        .env_remove("KNUT__BROKER__URL")
        .env_remove("KNUT__SANDBOX__ENABLED")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("knut starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("http://127.0.0.1:{admin}/readyz")).map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "knut never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The shipped poll route polled the sandbox's OeP at start: its two incoming leave
    // applications (family 412) were fetched and archived, the decided one was not.
    let archived = root.path().join("data/out/applications");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut names: Vec<String> = std::fs::read_dir(&archived)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        if names == ["oep-412-5000.json", "oep-412-5001.json"] {
            break;
        }
        assert!(Instant::now() < deadline, "polled applications: {names:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().ok();
    child.wait().ok();
}

/// Run `knut run` over `root` with `args` and `env` until it exits (at most 30 s): its exit
/// status and standard error.
fn refused(root: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_knut"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("KNUT__HTTP__BIND", format!("127.0.0.1:{}", free_port()))
        .env("KNUT__ADMIN__BIND", format!("127.0.0.1:{}", free_port()))
        .env(
            "KNUT__EXTERNAL__HTTP_BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "KNUT__EXTERNAL__ADMIN_BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("KNUT__SANDBOX__BIND", format!("127.0.0.1:{}", free_port()))
        .env_remove("KNUT__BROKER__URL")
        .env_remove("KNUT__SANDBOX__ENABLED")
        .env_remove("KNUT__PROFILE")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("knut starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("knut did not refuse to start: it is still running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    (status.success(), err)
}

/// Production is the default, and it fails closed: each fail-open setting is refused at
/// start with the fix named, before anything listens or is accepted.
#[test]
fn production_refuses_to_start_when_anything_fails_open() {
    let root = copy_root();
    // The shipped root as it is, no knut.toml: no broker, sandbox adapters, the shipped
    // routes' auth schemes unconfigured.
    let (ok, err) = refused(root.path(), &["run"], &[]);
    assert!(!ok);
    assert!(err.contains("production"), "{err}");
    // (the auth schemes are named first: the files' check)
    assert!(err.contains("[http.auth.operators]"), "{err}");

    // The schemes configured: what is left is each fail-open setting, with its fix.
    let mut env: Vec<(&str, &str)> = support::root::SHIPPED_AUTH_ENV.to_vec();
    env.push(("KNUT__SANDBOX__ENABLED", "true"));
    env.push(("KNUT_ADAPTER_OEP_URL", "http://127.0.0.1:8090/sandbox/oep"));
    let (ok, err) = refused(root.path(), &["run"], &env);
    assert!(!ok);
    for fix in [
        "refusing to start (production profile)",
        "`sandbox.enabled = true`",
        "KNUT__BROKER__URL",
        "KNUT_ADAPTER_OEP_URL",
        "KNUT__EXTERNAL__BROKER_URL",
        "KNUT__EXTERNAL__BRIDGE_URL",
        "knut run --dev",
    ] {
        assert!(err.contains(fix), "`{fix}` not named:\n{err}");
    }

    // A bare `auth: none` in production, and one with a reason the configuration does not
    // allow.
    std::fs::write(
        root.path().join("routes/open.yaml"),
        "route: open\nfrom: { http: { path: /in/open, auth: none, format: json } }\nsteps: []\n",
    )
    .unwrap();
    std::fs::write(
        root.path().join("routes/open-why.yaml"),
        "route: open-why\nfrom: { http: { path: /in/open-why, auth: { none: \"public opening hours\" }, format: json } }\nsteps: []\n",
    )
    .unwrap();
    let (ok, err) = refused(root.path(), &["run"], support::root::SHIPPED_AUTH_ENV);
    assert!(!ok);
    assert!(err.contains("route `open`"), "{err}");
    assert!(err.contains("auth: { none: \"<reason>\" }"), "{err}");
    assert!(err.contains("unauthenticated = [\"open-why\"]"), "{err}");

    // Development, but the sandbox beside a broker on another host, and an admin listener
    // beyond this machine: refused too.
    let (ok, err) = refused(
        root.path(),
        &["run", "--dev"],
        &[
            (
                "KNUT__BROKER__URL",
                "amqp://knut@rabbit.sundsvall.example/school",
            ),
            ("KNUT__ADMIN__BIND", "0.0.0.0:0"),
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("refusing to start (development profile)"),
        "{err}"
    );
    assert!(err.contains("`broker.url` names another host"), "{err}");
    assert!(err.contains("`admin.bind` listens on 0.0.0.0:0"), "{err}");
    assert!(
        !err.contains("rabbit.sundsvall.example/school"),
        "the URL is not echoed: {err}"
    );
}

/// The ```` ```sh ```` blocks of a Markdown text, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The README's shell blocks run as written against a development instance — from a copy
/// of the repository's root, with the ports and the binary's path put in — on its first
/// start and on a second start over the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_shell_blocks_run_as_written() {
    for tool in ["bash", "curl", "jq"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("SKIPPED: `{tool}` is not installed, and the README's commands use it");
            return;
        }
    }
    let repo = support::root::repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).expect("README.md");
    let blocks = shell_blocks(&readme);
    assert!(!blocks.is_empty(), "the README has no ```sh block");

    // The shipped root as it is (adapters pointing at the sandbox) and the fixtures the
    // commands send.
    let root = tempfile::tempdir().expect("temp dir");
    for sub in [
        "adapters",
        "fragments",
        "routes",
        "schemas",
        "settings",
        "transforms",
        "tests/fixtures",
    ] {
        support::root::copy_dir(&repo.join(sub), &root.path().join(sub));
    }
    let ports: Vec<(u16, u16)> = [8080, 8081, 8090, 9090, 9091]
        .into_iter()
        .map(|p| (p, free_port()))
        .collect();
    let port = |default: u16| {
        ports
            .iter()
            .find(|(d, _)| *d == default)
            .map(|(_, p)| *p)
            .unwrap_or(default)
    };
    let env = [
        ("KNUT__HTTP__BIND", format!("127.0.0.1:{}", port(8080))),
        (
            "KNUT__EXTERNAL__HTTP_BIND",
            format!("127.0.0.1:{}", port(8081)),
        ),
        ("KNUT__SANDBOX__BIND", format!("127.0.0.1:{}", port(8090))),
        ("KNUT__ADMIN__BIND", format!("127.0.0.1:{}", port(9090))),
        (
            "KNUT__EXTERNAL__ADMIN_BIND",
            format!("127.0.0.1:{}", port(9091)),
        ),
    ];
    let knut = env!("CARGO_BIN_EXE_knut");
    let as_here = |block: &str| {
        let mut text = block.replace("target/release/knut", knut);
        for (default, free) in &ports {
            for host in ["localhost", "127.0.0.1"] {
                text = text.replace(&format!("{host}:{default}"), &format!("{host}:{free}"));
            }
        }
        text
    };

    for start in 1..=2 {
        // Killed when dropped, so a failing block leaves no knut running.
        let child = KillOnDrop(
            Command::new(knut)
                .arg("--root")
                .arg(root.path())
                .args(["run", "--dev"])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .env_remove("KNUT__BROKER__URL")
                .env_remove("KNUT__SANDBOX__ENABLED")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("knut starts"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&format!("http://127.0.0.1:{}/readyz", port(9090))).map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "knut never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        for (i, block) in blocks.iter().enumerate() {
            // Output to a file: a pipe nobody reads while waiting could fill and stall it.
            let log = root
                .path()
                .join(format!("readme-block-{start}-{}.log", i + 1));
            let file = std::fs::File::create(&log).expect("log file");
            let mut run = Command::new("bash")
                .args(["-e", "-o", "pipefail", "-c", &as_here(block)])
                .current_dir(root.path())
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::from(file.try_clone().expect("log file")))
                .stderr(Stdio::from(file))
                .spawn()
                .expect("bash runs");
            let deadline = Instant::now() + Duration::from_secs(120);
            let status = loop {
                if let Some(status) = run.try_wait().expect("wait") {
                    break status;
                }
                if Instant::now() > deadline {
                    run.kill().ok();
                    panic!(
                        "start {start}, README block {}: still running after 120 s:\n{block}",
                        i + 1
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let out = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                status.success(),
                "start {start}, README block {} failed ({status}):\n{block}\n--- its output:\n{out}",
                i + 1
            );
        }
        // What the blocks set going left no dead letter and nothing retrying (the first look
        // once left a dead letter on oep-confirm-delivery, for an instance OeP did not know).
        std::thread::sleep(Duration::from_secs(3));
        let metrics = get(&format!("http://127.0.0.1:{}/metrics", port(9090)))
            .map(|r| r.1)
            .unwrap_or_default();
        let failed: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                (l.starts_with("knut_messages_dead_lettered_total")
                    || l.starts_with("knut_messages_retried_total"))
                    && !l.ends_with(" 0")
            })
            .collect();
        assert!(
            failed.is_empty(),
            "start {start}: messages dead-lettered or retried after the README's commands: {failed:?}"
        );
        drop(child);
    }
}

/// A child process killed (and reaped) when dropped: on a test's panic too.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}
