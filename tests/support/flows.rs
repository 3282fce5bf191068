//! One school-platform flow end to end: `knut run` as a process over a copy of the shipped
//! root, with its own sandbox (on a free port, every shipped adapter pointed at it), on the
//! embedded broker or on RabbitMQ (a virtual host of its own on the private node). A test
//! drives the sandbox as the people in the flow would (OeP `_submit`, a case officer's
//! decision, a teacher's registration) and asserts what every system received through
//! `/sandbox/<system>/_inbox`.
//!
//! Use it with `#[path = "support/flows.rs"] mod flows;` next to `knut`, `rabbit` and `root`.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;

use super::knut::Knut;
use super::rabbit;
use super::root::{copy_root, free_port};

/// Which broker a flow runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// The embedded broker.
    Embedded,
    /// RabbitMQ: a virtual host of its own on the test binary's private node.
    RabbitMq,
}

/// A running knut with its sandbox.
pub struct Flow {
    /// The process.
    pub knut: Knut,
    /// `http://127.0.0.1:<port>/sandbox`.
    pub sandbox: String,
    /// `http://127.0.0.1:<port>` (the internal plane's ingress).
    pub ingress: String,
    /// `http://127.0.0.1:<port>` (the external plane's ingress: OeP's pushes).
    pub external_ingress: String,
    /// `http://127.0.0.1:<port>` (the internal plane's admin API).
    pub admin: String,
    /// `http://127.0.0.1:<port>` (the external plane's admin API).
    pub external_admin: String,
    /// The admin credential (the development token).
    pub admin_token: String,
    /// An HTTP client.
    pub client: reqwest::Client,
    root: tempfile::TempDir,
}

impl Flow {
    /// Start knut over a copy of the shipped root, on `on`; ready when this returns. `name`
    /// names the RabbitMQ virtual host (unique per test).
    pub async fn start(on: On, name: &str) -> Flow {
        Flow::start_with(on, name, |_| {}).await
    }

    /// [`Flow::start`], with `patch` changing the copied root first (e.g. a route's poll
    /// interval: [`patch_file`]).
    pub async fn start_with(on: On, name: &str, patch: impl FnOnce(&std::path::Path)) -> Flow {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let root = copy_root();
        patch(root.path());
        let port = free_port();
        let sandbox = format!("http://127.0.0.1:{port}/sandbox");
        let mut env: Vec<(String, String)> = vec![
            ("KNUT__SANDBOX__ENABLED".into(), "true".into()),
            ("KNUT__SANDBOX__BIND".into(), format!("127.0.0.1:{port}")),
            ("KNUT__LOG__LEVEL".into(), "info".into()),
        ];
        for e in std::fs::read_dir(root.path().join("adapters")).expect("adapters") {
            let p = e.expect("entry").path();
            let Some(stem) = p.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            env.push((
                format!(
                    "KNUT_ADAPTER_{}_URL",
                    stem.to_ascii_uppercase().replace('-', "_")
                ),
                format!("{sandbox}/{stem}"),
            ));
        }
        let amqp = match on {
            On::Embedded => None,
            On::RabbitMq => Some(rabbit::vhost_url(name).await),
        };
        let env_ref: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut knut = Knut::new(root.path(), amqp.as_deref(), &env_ref);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()
            .expect("client");
        knut.start(&client).await;
        Flow {
            ingress: format!("http://127.0.0.1:{}", knut.http),
            external_ingress: format!("http://127.0.0.1:{}", knut.external_http),
            admin: format!("http://127.0.0.1:{}", knut.admin),
            external_admin: format!("http://127.0.0.1:{}", knut.external_admin),
            admin_token: knut.admin_token(),
            knut,
            sandbox,
            client,
            root,
        }
    }

    /// The root knut runs (a copy of the repository's).
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// `req` with the admin token when `url` is an admin API's.
    fn admin_auth(&self, url: &str, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if url.starts_with(&self.admin) || url.starts_with(&self.external_admin) {
            req.bearer_auth(&self.admin_token)
        } else {
            req
        }
    }

    /// GET a JSON document (panics with the URL on failure); admin URLs with the token.
    pub async fn get(&self, url: &str) -> Value {
        let r = self
            .admin_auth(url, self.client.get(url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {url}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
    }

    /// POST `body` as JSON, with a bearer token when given; the status and the answer (JSON,
    /// or the text as a string, or null when empty).
    pub async fn post(&self, url: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self.admin_auth(url, self.client.post(url)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// POST raw bytes with a content type.
    pub async fn post_bytes(&self, url: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        self.post_bytes_as(url, content_type, body, None).await
    }

    /// POST raw bytes with a content type and a bearer token.
    pub async fn post_bytes_as(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.client.post(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A token of the sandbox's test issuer with these claims (`exp` one hour ahead).
    pub async fn token(&self, claims: Value) -> String {
        let (status, answer) = self
            .post(&format!("{}/idp/token", self.sandbox), &claims, None)
            .await;
        assert_eq!(status, 200, "idp token: {answer}");
        answer["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// The calls `system` received, oldest first (faulted ones included).
    pub async fn inbox(&self, system: &str) -> Vec<Value> {
        match self.get(&format!("{}/{system}/_inbox", self.sandbox)).await {
            Value::Array(calls) => calls,
            other => panic!("{system} inbox: {other}"),
        }
    }

    /// The successful calls of `system` with this method whose path starts with `path`.
    pub async fn calls(&self, system: &str, method: &str, path: &str) -> Vec<Value> {
        self.calls_where(system, method, path, |_| true).await
    }

    /// [`Flow::calls`] that `keep` keeps: a flow's own messages among those of the flows
    /// running beside it (the seeded applications' guardian notices, say).
    pub async fn calls_where(
        &self,
        system: &str,
        method: &str,
        path: &str,
        keep: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        self.inbox(system)
            .await
            .into_iter()
            .filter(|c| {
                c["method"] == method
                    && c["fault"] != true
                    && c["path"].as_str().is_some_and(|p| p.starts_with(path))
                    && keep(c)
            })
            .collect()
    }

    /// Wait (at most `secs`) until `system` has received at least `n` successful calls
    /// `method path…`, and return them all; on timeout panic with what arrived and the log.
    pub async fn wait_calls(
        &self,
        system: &str,
        method: &str,
        path: &str,
        n: usize,
        secs: u64,
    ) -> Vec<Value> {
        self.wait_calls_where(system, method, path, |_| true, n, secs)
            .await
    }

    /// [`Flow::wait_calls`] counting only the calls `keep` keeps.
    pub async fn wait_calls_where(
        &self,
        system: &str,
        method: &str,
        path: &str,
        keep: impl Fn(&Value) -> bool,
        n: usize,
        secs: u64,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let calls = self.calls_where(system, method, path, &keep).await;
            if calls.len() >= n {
                return calls;
            }
            if Instant::now() > deadline {
                panic!(
                    "{system} received {} of {n} `{method} {path}` calls within {secs} s:\n{}\n--- knut log ---\n{}",
                    calls.len(),
                    serde_json::to_string_pretty(&self.inbox(system).await).unwrap_or_default(),
                    self.knut.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Wait until the route's dead-letter queue holds at least `n` messages; return them
    /// (the admin API's listing).
    pub async fn wait_dead_letters(&self, route: &str, n: usize, secs: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let list = self.dead_letters(route).await;
            if list.len() >= n {
                return list;
            }
            if Instant::now() > deadline {
                panic!(
                    "{route}: {} of {n} dead letters within {secs} s\n--- knut log ---\n{}",
                    list.len(),
                    self.knut.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The dead letters of a route.
    pub async fn dead_letters(&self, route: &str) -> Vec<Value> {
        let v = self
            .get(&format!("{}/api/routes/{route}/dlq", self.admin))
            .await;
        v["dead_letters"]
            .as_array()
            .or_else(|| v.as_array())
            .cloned()
            .unwrap_or_default()
    }

    /// Every dead-letter queue of the shipped routes, both planes', is empty (nothing was
    /// lost on the way).
    pub async fn assert_no_dead_letters(&self) {
        for admin in [&self.admin, &self.external_admin] {
            self.assert_no_dead_letters_at(admin).await;
        }
    }

    async fn assert_no_dead_letters_at(&self, admin: &str) {
        let routes = self.get(&format!("{admin}/api/routes")).await;
        let ids: Vec<String> = routes
            .as_array()
            .or_else(|| routes["routes"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["id"].as_str().or(r["route"].as_str()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        assert!(!ids.is_empty(), "no routes listed: {routes}");
        for id in ids {
            let v = self.get(&format!("{admin}/api/routes/{id}/dlq")).await;
            let dl = v["dead_letters"].as_array().cloned().unwrap_or_default();
            assert!(
                dl.is_empty(),
                "route {id} dead-lettered: {}",
                serde_json::to_string_pretty(&dl).unwrap_or_default()
            );
        }
    }

    /// Stop knut (SIGTERM) and check it exits cleanly; its log never held a personnummer of
    /// the seed (12 or 10 digits, with or without the hyphen).
    pub async fn stop(mut self, personnummer: &[&str]) {
        let status = self.knut.terminate().await;
        assert!(status.success(), "knut exit: {status:?}");
        let log = std::fs::read_to_string(self.knut.log(1)).unwrap_or_default();
        for p in personnummer {
            let digits: String = p.chars().filter(char::is_ascii_digit).collect();
            for form in [
                p.to_string(),
                digits.clone(),
                digits[2..].to_string(),
                format!("{}-{}", &digits[2..8], &digits[8..]),
            ] {
                assert!(
                    !log.contains(&form),
                    "the log holds a personnummer ({form})"
                );
            }
        }
    }
}

/// A JSON object's field as text, for messages in assertions.
pub fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Replace `from` by `to` in the file `rel` of `root` (the text must be there).
pub fn patch_file(root: &std::path::Path, rel: &str, from: &str, to: &str) {
    let path = root.join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(text.contains(from), "{rel} does not contain `{from}`");
    std::fs::write(&path, text.replace(from, to)).unwrap_or_else(|e| panic!("{rel}: {e}"));
}

/// An errand's extra parameters as a map (the first value of each key).
pub fn parameters(errand: &Value) -> serde_json::Map<String, Value> {
    errand["extraParameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["key"].as_str()?.to_string(), p["values"][0].clone())))
        .collect()
}
