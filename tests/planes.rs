//! The external and internal planes on a real RabbitMQ node (seed 003: an attack on the
//! external side must not reach the internal one).
//!
//! On the test binary's private node: `knut topology` is imported as RabbitMQ definitions
//! (two vhosts, two users, their permissions), the users get passwords, and then
//! - the external user is refused on the internal vhost, and cannot create or read
//!   anything on its own vhost that is not its plane's;
//! - the internal user reads the external vhost only through its bridge's queue;
//! - `knut run` in the production profile, with one connection per plane, carries a pushed
//!   OeP export from the external ingress over the bridge into the internal plane;
//! - what a compromised external side publishes directly — to its exchange, or straight to
//!   the bridge's queue with a header naming a step to skip — is checked by the bridge and
//!   dead-lettered; it never reaches the internal plane.
//!
//! With `KNUT_TEST_AMQP_URL` set (a shared broker, no `rabbitmqctl`) the test says SKIPPED.

#[path = "support/knut.rs"]
mod knut;
#[path = "support/rabbit.rs"]
mod rabbit;
#[path = "support/root.rs"]
mod root;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const PASSWORD_INT: &str = "fiktivt-internt-losen";
const PASSWORD_EXT: &str = "fiktivt-externt-losen";
const ADMIN_KEY: &str = "fiktiv-admin-nyckel-0123456789";

/// A root with the OeP push (external), its bridge (internal) and an internal probe that
/// writes what arrives on `oep.exports` to `out/inward/`.
fn planes_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    root::copy_dir(&root::repo().join("schemas"), &dir.path().join("schemas"));
    std::fs::create_dir_all(dir.path().join("routes")).expect("routes");
    for r in ["oep-flowinstance-in.yaml", "oep-flowinstance-inward.yaml"] {
        std::fs::copy(
            root::repo().join("routes").join(r),
            dir.path().join("routes").join(r),
        )
        .expect("copy route");
    }
    std::fs::write(
        dir.path().join("routes/planes-probe.yaml"),
        "route: planes-probe\nfrom:\n  queue: { exchange: oep.exports, keys: ['export.#'] }\n\
         steps:\n  - to: { file: { dir: out/inward } }\n",
    )
    .expect("probe");
    std::fs::write(dir.path().join("oep-password"), root::OEP_PASSWORD).expect("password");
    std::fs::write(
        dir.path().join("knut.toml"),
        "[admin.keys.planes-test]\nkey_env = \"PLANES_ADMIN_KEY\"\nroles = [\"viewer\", \"operator\"]\n",
    )
    .expect("knut.toml");
    dir
}

/// Whether `e` is RabbitMQ refusing access (ACCESS_REFUSED, or NOT_ALLOWED for a vhost).
fn refused_access(e: &lapin::Error) -> bool {
    let text = format!("{e:?} {e}");
    text.contains("ACCESS_REFUSED") || text.contains("NOT_ALLOWED") || text.contains("refused")
}

fn ctl(node: &rabbit::Node, args: &[&str]) {
    let out = node
        .ctl()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "rabbitmqctl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn url(port: u16, user: &str, password: &str, vhost: &str) -> String {
    format!("amqp://{user}:{password}@127.0.0.1:{port}/{vhost}")
}

async fn connect(url: &str) -> Result<Connection, lapin::Error> {
    Connection::connect(url, ConnectionProperties::default()).await
}

fn files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planes_are_separated_on_rabbitmq() {
    let Some(node) = rabbit::private_node().await else {
        eprintln!(
            "SKIPPED: KNUT_TEST_AMQP_URL names a shared broker; the planes test needs the private node"
        );
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = planes_root();
    let pid = std::process::id();
    let (int_vhost, ext_vhost) = (format!("planes-int-{pid}"), format!("planes-ext-{pid}"));
    let (int_user, ext_user) = (format!("knut-int-{pid}"), format!("knut-ext-{pid}"));

    // The definitions knut prints, imported as operators would.
    let out = Command::new(env!("CARGO_BIN_EXE_knut"))
        .arg("--root")
        .arg(root.path())
        .args([
            "topology",
            "--vhost",
            &int_vhost,
            "--external-vhost",
            &ext_vhost,
        ])
        .args(["--internal-user", &int_user, "--external-user", &ext_user])
        .env_remove("KNUT__BROKER__URL")
        .output()
        .expect("knut topology");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let defs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        defs["users"]
            .as_array()
            .expect("users")
            .iter()
            .all(|u| u["password_hash"] == ""),
        "no passwords in the definitions: {}",
        defs["users"]
    );
    let grants: Vec<(&str, &str)> = defs["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .map(|p| (p["user"].as_str().unwrap(), p["vhost"].as_str().unwrap()))
        .collect();
    assert!(
        !grants.contains(&(ext_user.as_str(), int_vhost.as_str())),
        "the external user has no permission on the internal vhost: {grants:?}"
    );
    let file = root.path().join("definitions.json");
    std::fs::write(&file, &out.stdout).expect("definitions");
    ctl(node, &["import_definitions", &file.display().to_string()]);
    ctl(node, &["change_password", &int_user, PASSWORD_INT]);
    ctl(node, &["change_password", &ext_user, PASSWORD_EXT]);
    let port = node.port;

    // The external user cannot even open the internal vhost.
    let refused = connect(&url(port, &ext_user, PASSWORD_EXT, &int_vhost)).await;
    assert!(
        refused.is_err(),
        "the external user opened the internal vhost"
    );
    // On its own vhost it cannot create a name that is not its plane's …
    let ext = connect(&url(port, &ext_user, PASSWORD_EXT, &ext_vhost))
        .await
        .expect("the external user on its vhost");
    let ch = ext.create_channel().await.expect("channel");
    let made = ch
        .exchange_declare(
            "oep.exports".into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    match &made {
        Err(e) => assert!(refused_access(e), "refused for another reason: {e:?}"),
        Ok(()) => panic!("the external user declared an internal name"),
    }
    // … nor read the bridge's queue.
    let ch = ext.create_channel().await.expect("channel");
    let read = ch
        .basic_consume(
            "knut.route.oep-flowinstance-inward".into(),
            "intruder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    match &read {
        Err(e) => assert!(refused_access(e), "refused for another reason: {e:?}"),
        Ok(_) => panic!("the external user read the bridge's queue"),
    }
    // The internal user reads the external vhost through its bridge only.
    let int_on_ext = connect(&url(port, &int_user, PASSWORD_INT, &ext_vhost))
        .await
        .expect("the internal user on the external vhost (bridge)");
    let ch = int_on_ext.create_channel().await.expect("channel");
    let read = ch
        .basic_consume(
            "knut.route.oep-flowinstance-in".into(),
            "curious".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(
        read.is_err(),
        "the bridge user read an external route's queue"
    );
    let _ = int_on_ext.close(200, "done".into()).await;

    // knut in the production profile, one connection per plane, as the production example
    // sets them.
    let env = [
        (
            "KNUT__EXTERNAL__BROKER_URL",
            url(port, &ext_user, PASSWORD_EXT, &ext_vhost),
        ),
        (
            "KNUT__EXTERNAL__BRIDGE_URL",
            url(port, &int_user, PASSWORD_INT, &ext_vhost),
        ),
        ("KNUT__SANDBOX__ENABLED", "false".to_string()),
        ("PLANES_ADMIN_KEY", ADMIN_KEY.to_string()),
    ];
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend(root::SHIPPED_AUTH_ENV.iter().copied());
    let internal = url(port, &int_user, PASSWORD_INT, &int_vhost);
    let mut knut = knut::Knut::new(root.path(), Some(&internal), &env);
    knut.dev = false;
    let http = reqwest::Client::new();
    knut.start(&http).await;
    assert!(
        std::fs::read_to_string(knut.log(1))
            .unwrap_or_default()
            .contains("profile=\"production\"")
            || std::fs::read_to_string(knut.log(1))
                .unwrap_or_default()
                .contains("profile=production"),
        "knut runs in the production profile:\n{}",
        knut.log_tail()
    );

    let export =
        std::fs::read(root::repo().join("tests/fixtures/oep/leave-application-latin1.xml"))
            .expect("fixture");
    let pushed = http
        .post(format!(
            "http://127.0.0.1:{}/in/oep/flowinstances",
            knut.external_http
        ))
        .header("content-type", "application/xml")
        .header("authorization", root::oep_authorization())
        .body(export.clone())
        .send()
        .await
        .expect("push");
    assert_eq!(pushed.status(), 202);
    let inward = root.path().join("out/inward");
    let deadline = Instant::now() + Duration::from_secs(30);
    while files(&inward).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the export never crossed the bridge:\n{}",
            knut.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let crossed = std::fs::read(inward.join(&files(&inward)[0])).expect("file");
    assert_eq!(crossed, export, "it crossed as it came (Latin-1 bytes)");

    // A compromised external side publishes forged exports: one to its exchange, one
    // straight to the bridge's queue through the default exchange, with a header naming the
    // bridge's `validate` as a step to resume after. The bridge checks both and
    // dead-letters both; neither reaches the internal plane.
    let ch = ext.create_channel().await.expect("channel");
    ch.confirm_select(Default::default())
        .await
        .expect("confirms");
    let forged = br#"{"FlowInstance":{"Header":{"FlowInstanceID":"1"}}}"#;
    ch.basic_publish(
        "oep.pushed".into(),
        "export.pushed".into(),
        BasicPublishOptions::default(),
        forged,
        BasicProperties::default().with_content_type("application/json".into()),
    )
    .await
    .expect("publish")
    .await
    .expect("confirmed");
    let mut headers = FieldTable::default();
    headers.insert(
        "knut-resume-after".into(),
        lapin::types::AMQPValue::LongString("steps[0].validate".into()),
    );
    headers.insert(
        "knut-claim-orgnr".into(),
        lapin::types::AMQPValue::LongString("559999-9991".into()),
    );
    ch.basic_publish(
        "".into(),
        "knut.route.oep-flowinstance-inward".into(),
        BasicPublishOptions::default(),
        forged,
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_headers(headers),
    )
    .await
    .expect("publish")
    .await
    .expect("confirmed");
    let admin = format!("http://127.0.0.1:{}", knut.admin);
    let token = ADMIN_KEY;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list: serde_json::Value = http
            .get(format!("{admin}/api/routes/oep-flowinstance-inward/dlq"))
            .bearer_auth(token)
            .send()
            .await
            .expect("admin")
            .json()
            .await
            .expect("JSON");
        if list["dead_letters"]
            .as_array()
            .is_some_and(|d| d.len() == 2)
        {
            for d in list["dead_letters"].as_array().into_iter().flatten() {
                let reason = d["reason"].as_str().unwrap_or_default();
                assert!(reason.contains("oep-flowinstance.v1"), "{list}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the forged export was not dead-lettered by the bridge: {list}\n{}",
            knut.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(files(&inward).len(), 1, "a forged export crossed");
    // Nothing of the forgery's headers survived the crossing either: the dead letters show
    // none of them.
    let list: serde_json::Value = http
        .get(format!("{admin}/api/routes/oep-flowinstance-inward/dlq"))
        .bearer_auth(token)
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("JSON");
    let id = list["dead_letters"][1]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let shown: serde_json::Value = http
        .get(format!(
            "{admin}/api/routes/oep-flowinstance-inward/dlq/{id}"
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("JSON");
    let headers = shown["headers"].to_string();
    assert!(
        !headers.contains("knut-resume-after") && !headers.contains("knut-claim"),
        "{shown}"
    );
    let _ = ext.close(200, "done".into()).await;
    assert_eq!(knut.terminate().await.code(), Some(0));
}
