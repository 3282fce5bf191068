//! Outlets on a real RabbitMQ node: a route publishes to the exchange of an outlet
//! (`outlets/<name>.yaml`), and a legacy system that reads XML in ISO-8859-1 from its own
//! queue — here a plain AMQP client, knowing nothing of Knutpunkt — gets the message in its
//! format. `knut check` accepts the route, `knut topology` lists the outlet's queue and its
//! binding, `knut run` declares them.

#[path = "support/knut.rs"]
mod knut;
#[path = "support/rabbit.rs"]
mod rabbit;
#[path = "support/root.rs"]
mod root;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lapin::options::BasicGetOptions;
use lapin::{Connection, ConnectionProperties};

/// A root with one route (`POST /in/cards` → exchange `legacy.cards`) and the outlet the
/// card printer's old system reads.
fn outlet_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for d in ["routes", "outlets"] {
        std::fs::create_dir_all(dir.path().join(d)).expect(d);
    }
    std::fs::write(
        dir.path().join("routes/student-card.yaml"),
        "route: student-card\n\
         description: Elevkort till kortskrivarens gamla system\n\
         from:\n  http: { path: /in/cards, methods: [POST], auth: none, format: json }\n\
         steps:\n\
         \x20 - publish: { exchange: legacy.cards, key: 'card.{.klass}' }\n\
         \x20 - reply: { status: 202 }\n",
    )
    .expect("route");
    std::fs::write(
        dir.path().join("outlets/kortskrivare.yaml"),
        "outlet: kortskrivare\n\
         description: The card printer's old system reads student cards from its own queue\n\
         exchange: legacy.cards\n\
         queue: { name: kortskrivare.elevkort, type: classic }\n\
         bindings: ['card.#']\n\
         format: { xml: { root: Elevkort, encoding: ISO-8859-1 } }\n",
    )
    .expect("outlet");
    dir
}

fn knut(root: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_knut"))
        .arg("--dev")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("knut runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outlet_feeds_a_legacy_consumer_xml_in_latin1() {
    let root = outlet_root();
    let (ok, text) = knut(root.path(), &["check"]);
    assert!(ok, "knut check: {text}");
    let (ok, text) = knut(root.path(), &["topology"]);
    assert!(ok, "knut topology: {text}");
    let defs: serde_json::Value = serde_json::from_str(&text).expect("definitions JSON");
    let queue = defs["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "kortskrivare.elevkort"))
        .unwrap_or_else(|| panic!("the outlet's queue is listed: {text}"));
    assert_eq!(queue["arguments"]["x-queue-type"], "classic", "{queue}");
    assert!(
        defs["bindings"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| {
                b["source"] == "legacy.cards"
                    && b["destination"] == "kortskrivare.elevkort"
                    && b["routing_key"] == "card.#"
            })),
        "the outlet's binding is listed: {text}"
    );

    // A route that consumes the outlet's exchange is refused, naming the outlet.
    std::fs::write(
        root.path().join("routes/reader.yaml"),
        "route: reader\nfrom:\n  queue: { exchange: legacy.cards, keys: ['card.#'] }\n\
         steps:\n  - filter: { jq: 'true' }\n",
    )
    .expect("reader");
    let (ok, text) = knut(root.path(), &["check"]);
    assert!(!ok && text.contains("outlet `kortskrivare`"), "{text}");
    std::fs::remove_file(root.path().join("routes/reader.yaml")).expect("remove reader");

    let url = rabbit::vhost_url("knut-outlets").await;
    let mut knut = knut::Knut::new(root.path(), Some(&url), &[]);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    knut.start(&http).await;
    let sent = http
        .post(format!("http://127.0.0.1:{}/in/cards", knut.http))
        .json(&serde_json::json!({"namn": "Åsa Öberg", "klass": "7B", "giltigt": "2027-06-30 €"}))
        .send()
        .await
        .expect("post");
    assert_eq!(sent.status(), 202, "{}", knut.log_tail());

    // The legacy consumer: a plain AMQP client reading its own queue.
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    let deadline = Instant::now() + Duration::from_secs(20);
    let message = loop {
        let got = channel
            .basic_get(
                "kortskrivare.elevkort".into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get");
        if let Some(m) = got {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached the outlet's queue:\n{}",
            knut.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let content_type = message
        .delivery
        .properties
        .content_type()
        .as_ref()
        .map(|c| c.to_string());
    assert_eq!(
        content_type.as_deref(),
        Some("application/xml; charset=ISO-8859-1")
    );
    assert_eq!(
        message.delivery.data,
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Elevkort><namn>\xC5sa \xD6berg</namn>\
          <klass>7B</klass><giltigt>2027-06-30 &#x20AC;</giltigt></Elevkort>"
            .to_vec(),
        "{}",
        String::from_utf8_lossy(&message.delivery.data)
    );
    assert_eq!(message.delivery.routing_key.as_str(), "card.7B");
    // Knutpunkt's own headers (the request's path, where to reply) stayed inside.
    let headers: Vec<String> = message
        .delivery
        .properties
        .headers()
        .as_ref()
        .map(|t| t.inner().keys().map(|k| k.to_string()).collect())
        .unwrap_or_default();
    for inside in ["knut-http-path", "knut-reply-to", "knut-http-method"] {
        assert!(
            !headers.iter().any(|h| h == inside),
            "{inside} went out: {headers:?}"
        );
    }
    let _ = conn.close(200, "done".into()).await;
    knut.terminate().await;
}
