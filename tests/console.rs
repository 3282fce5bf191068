//! The web console in a real browser: headless Chromium, driven through chromedriver
//! (WebDriver), against `knut run --dev` (embedded broker, the sandbox on) over a small root
//! of two routes. It signs in with the development token, finds a route on `/console` and
//! sees its numbers move, follows a message by its correlation id, dead-letters a message
//! that the first route refuses and replays it from the console, and looks at the sandbox
//! page; it takes screenshots, saved to `docs/images/console-*.png` (shown in the README)
//! when `KNUT_CONSOLE_SCREENSHOTS=1`, else to a temporary folder.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Where they are
//! missing the test says SKIPPED, unless `KNUT_REQUIRE_BROWSER` is set (as in CI): then it
//! fails. The personnummer in the refused message is fictional (the Tax Agency's test
//! series) and must never appear on a page.

#[path = "support/knut.rs"]
mod knut;
#[path = "support/root.rs"]
mod root;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use knut::Knut;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PNR: &str = "20130412-2383";

/// The browser's window: screenshots of this size stay small.
const WIDTH: u32 = 1200;
/// How long a page or an effect may take: generous, for a loaded CI machine (the test
/// itself takes about ten seconds).
const WAIT_SECS: u64 = 45;
const WAIT: Duration = Duration::from_secs(WAIT_SECS);
const HEIGHT: u32 = 780;

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A root of two routes: `orders` (HTTP in, validated, published) and `order-archive`
/// (bound to the event, writes a file).
fn make_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    write(
        root,
        "routes/orders.yaml",
        "route: orders\n\
         from: { http: { path: /in/orders, methods: [POST], auth: none, format: json } }\n\
         steps:\n\
         \x20 - validate: { schema: order.v1 }\n\
         \x20 - publish: { exchange: shop, key: order.placed }\n",
    );
    write(
        root,
        "routes/order-archive.yaml",
        "route: order-archive\n\
         from: { queue: { exchange: shop, keys: [order.placed] } }\n\
         steps:\n\
         \x20 - to: { file: { dir: out/orders } }\n",
    );
    write(
        root,
        "schemas/order.v1.json",
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "order.v1",
            "type": "object", "required": ["qty"],
            "properties": {"qty": {"type": "integer", "minimum": 1}}}"#,
    );
    dir
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(http: &reqwest::Client, log: &Path) -> Driver {
    let port = root::free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log).expect("log")))
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    let deadline = Instant::now() + WAIT;
    loop {
        let up = http
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                format!("--window-size={WIDTH},{HEIGHT}"),
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// Where the screenshots go: `docs/images` with `KNUT_CONSOLE_SCREENSHOTS=1` (to refresh
/// the committed ones), else `scratch` (so a test run leaves the work tree as it was).
fn images(scratch: &Path) -> PathBuf {
    match std::env::var_os("KNUT_CONSOLE_SCREENSHOTS") {
        Some(_) => root::repo().join("docs/images"),
        None => scratch.join("images"),
    }
}

async fn screenshot(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::create_dir_all(dir).expect("images");
    std::fs::write(dir.join(format!("console-{name}.png")), png).expect("write screenshot");
}

/// Wait until `f` holds (at most `secs`), reloading the page between tries when `reload`.
async fn until<F, Fut>(c: &Client, secs: u64, reload: bool, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        if Instant::now() > deadline {
            let source = c.source().await.unwrap_or_default();
            panic!("{what}: not within {secs} s; the page:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if reload {
            c.refresh().await.expect("reload");
        }
    }
}

async fn text_of(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let have = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !have {
        if std::env::var_os("KNUT_REQUIRE_BROWSER").is_some() {
            panic!(
                "KNUT_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver"
            );
        }
        eprintln!(
            "\n*** SKIPPED the_console_in_a_browser: {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install chromium chromium-driver; KNUT_REQUIRE_BROWSER=1 makes this a failure) ***\n"
        );
        return;
    }
    let started = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = make_root();
    let http = reqwest::Client::new();
    let sandbox_port = root::free_port();
    let sandbox_bind = format!("127.0.0.1:{sandbox_port}");
    let mut knut = Knut::new(
        dir.path(),
        None,
        &[
            ("KNUT__SANDBOX__ENABLED", "true"),
            ("KNUT__SANDBOX__BIND", &sandbox_bind),
        ],
    );
    knut.start(&http).await;
    let token = knut.admin_token();
    let admin = format!("http://127.0.0.1:{}", knut.admin);

    let driver = start_driver(&http, &dir.path().join("chromedriver.log")).await;
    let profile = tempfile::tempdir().expect("profile");
    let shots = images(dir.path());
    let c = browser(&driver, profile.path()).await;

    // Without a credential the console sends the browser to its sign-in form.
    c.goto(&format!("{admin}/console")).await.expect("goto");
    let field = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#credential"))
        .await
        .expect("the sign-in form");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/console/login")
    );
    // A wrong credential is refused on the form itself.
    field.send_keys("not-the-token").await.expect("type");
    c.find(Locator::Css("form.login button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    let error = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#login-error"))
        .await
        .expect("refused");
    assert!(
        error
            .text()
            .await
            .expect("text")
            .contains("not an admin key")
    );
    let field = c.find(Locator::Css("#credential")).await.expect("field");
    field.send_keys(&token).await.expect("type");
    c.find(Locator::Css("form.login button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");

    // The routes page: find the route, send a message, see its numbers move (polled).
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#routes tr[data-route=\"orders\"]"))
        .await
        .expect("the route `orders` on /console");
    let source = text_of(&c, "tr[data-route=\"orders\"] td").await;
    assert!(source.contains("/in/orders"), "{source}");
    let sent: serde_json::Value = http
        .post(format!("{admin}/api/routes/orders/messages"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"qty": 2, "note": "fiktiv"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let correlation = sent["correlation_id"]
        .as_str()
        .expect("correlation id")
        .to_string();
    until(
        &c,
        WAIT_SECS,
        false,
        "the live numbers of `orders`",
        || async {
            text_of(&c, "tr[data-route=\"orders\"] [data-k=\"messages_out\"]").await == "1"
                && text_of(
                    &c,
                    "tr[data-route=\"order-archive\"] [data-k=\"messages_out\"]",
                )
                .await
                    == "1"
        },
    )
    .await;
    // The route graph, drawn by the server, below the table.
    c.execute(
        "document.querySelector('details.graph').open = true",
        vec![],
    )
    .await
    .expect("open the graph");
    let graph = text_of(&c, "details.graph svg").await;
    assert!(
        graph.contains("order-archive") && graph.contains("shop"),
        "{graph}"
    );
    screenshot(&c, &shots, "routes").await;

    // One route's page, with its graph drawn by the server.
    c.find(Locator::Css("tr[data-route=\"orders\"] th a"))
        .await
        .expect("the route's link")
        .click()
        .await
        .expect("click");
    let svg = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".svg-wrap svg"))
        .await
        .expect("the route's graph");
    let drawn = svg.html(false).await.expect("svg");
    for name in ["/in/orders", "shop", "orders"] {
        assert!(drawn.contains(name), "{name} in the graph: {drawn}");
    }
    screenshot(&c, &shots, "route").await;

    // Follow the message by its correlation id: both routes' hops, in time order.
    c.find(Locator::LinkText("Journey"))
        .await
        .expect("nav")
        .click()
        .await
        .expect("click");
    let search = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("input#id"))
        .await
        .expect("the search field");
    search.send_keys(&correlation).await.expect("type");
    c.find(Locator::Css("form.search button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("follow");
    until(
        &c,
        WAIT_SECS,
        true,
        "the journey of the message",
        || async {
            let t = text_of(&c, "table#journey").await;
            t.contains("orders") && t.contains("order-archive")
        },
    )
    .await;
    screenshot(&c, &shots, "journey").await;

    // A message the route refuses is dead-lettered; the console shows it masked and
    // replays it.
    let refused: serde_json::Value = http
        .post(format!("{admin}/api/routes/orders/messages"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"qty": "many", "civicNo": PNR}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let dead_id = refused["id"].as_str().expect("id").to_string();
    c.goto(&format!("{admin}/console/routes/orders/dead-letters"))
        .await
        .expect("goto");
    let row = format!("tr[data-id=\"{dead_id}\"]");
    until(
        &c,
        WAIT_SECS,
        true,
        "the dead letter in the list",
        || async { c.find(Locator::Css(&row)).await.is_ok() },
    )
    .await;
    c.find(Locator::Css(&format!("{row} td a")))
        .await
        .expect("its link")
        .click()
        .await
        .expect("click");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("pre.body"))
        .await
        .expect("the dead letter");
    let page = c.source().await.expect("source");
    assert!(
        !page.contains("20130412") && !page.contains("130412-2383"),
        "{page}"
    );
    assert!(page.contains("********-****"), "masked: {page}");
    c.back().await.expect("back");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(&row))
        .await
        .expect("the list again");
    screenshot(&c, &shots, "dead-letters").await;
    c.find(Locator::Css(&format!(
        "{row} form[action$=\"/replay\"] button"
    )))
    .await
    .expect("the replay button")
    .click()
    .await
    .expect("replay");
    let done = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#done"))
        .await
        .expect("the replay's confirmation");
    let said = done.text().await.expect("text");
    assert!(
        said.contains("Replayed") && said.contains(&dead_id),
        "{said}"
    );
    // The replay is in the journal (its journey) and in the audit journal with who did it.
    done.find(Locator::LinkText("follow its journey"))
        .await
        .expect("the journey link")
        .click()
        .await
        .expect("click");
    until(&c, WAIT_SECS, true, "the replay in the journey", || async {
        let t = text_of(&c, "table#journey").await;
        t.contains("replay") && t.contains("dead-letter")
    })
    .await;
    let audit: serde_json::Value = http
        .get(format!("{admin}/api/audit?limit=50"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let replay_path = format!("/console/routes/orders/dead-letters/{dead_id}/replay");
    assert!(
        audit
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["path"] == replay_path.as_str()
                && r["actor"] == "development"
                && r["status"] == 303),
        "the replay in the audit journal: {audit}"
    );

    // A form posted from another site is refused, even with the credential.
    let forged = http
        .post(format!("{admin}{replay_path}"))
        .bearer_auth(&token)
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 403);

    // The sandbox page (development): its systems, and a fault set from the console.
    c.goto(&format!("{admin}/console/sandbox"))
        .await
        .expect("goto");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#sys-messaging"))
        .await
        .expect("the sandbox's messaging");
    c.find(Locator::Css(
        "form[action=\"/console/sandbox/messaging/fault\"] button",
    ))
    .await
    .expect("the fault button")
    .click()
    .await
    .expect("click");
    until(&c, WAIT_SECS, false, "the fault shown", || async {
        text_of(&c, "section[aria-labelledby=\"sys-messaging\"]")
            .await
            .contains("Fault: the next 3 call(s) answer 503")
    })
    .await;
    let fault: serde_json::Value = http
        .get(format!("http://{sandbox_bind}/sandbox/messaging/_fault"))
        .send()
        .await
        .expect("fault")
        .json()
        .await
        .expect("json");
    assert_eq!(fault["fault"]["status"], 503, "{fault}");
    c.execute(
        "document.getElementById('sys-messaging').scrollIntoView()",
        vec![],
    )
    .await
    .expect("scroll");
    screenshot(&c, &shots, "sandbox").await;

    c.close().await.expect("close the browser");
    drop(driver);
    knut.terminate().await;
    eprintln!("the console test took {:?}", started.elapsed());
}
