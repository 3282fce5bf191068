//! The `knut` binary as a user runs it: `check`, `test`, `graph`, `schema`, `version` on
//! the repository's own root and on broken roots.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::root::{copy_root, repo};

fn knut(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knut"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("knut runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_passes_on_the_repository() {
    let o = knut(&repo(), &["check", "--dev"]);
    assert!(o.status.success(), "knut check failed:\n{}", text(&o));
    assert!(text(&o).contains("(development profile)"), "{}", text(&o));
}

/// `knut check` without `--dev` checks what production `knut run` would refuse; with the
/// production example and its environment it passes.
#[test]
fn check_in_production_names_what_run_would_refuse() {
    let root = copy_root();
    let o = knut(root.path(), &["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("[http.auth.oep]"), "{}", text(&o));

    std::fs::write(
        root.path().join("knut.toml"),
        std::fs::read_to_string(repo().join("deploy/knut.production.toml")).unwrap(),
    )
    .unwrap();
    let run = |env: &[(String, String)]| {
        Command::new(env!("CARGO_BIN_EXE_knut"))
            .arg("--root")
            .arg(root.path())
            .arg("check")
            .env_remove("KNUT__BROKER__URL")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("knut runs")
    };
    let o = run(&[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("KNUT__BROKER__URL"), "{out}");
    assert!(out.contains("KNUT_ADAPTER_CASEDATA_URL"), "{out}");
    // The access audit's key: guardian access writes the audit, which fails closed without it.
    assert!(out.contains("KNUT_AUDIT_KEY"), "{out}");
    assert!(out.contains("`knut run` would refuse to start"), "{out}");

    let mut env: Vec<(String, String)> = [
        (
            "KNUT__BROKER__URL",
            "amqps://knut-internal@mq.example/knut-internal",
        ),
        (
            "KNUT__EXTERNAL__BROKER_URL",
            "amqps://knut-external@mq.example/knut-external",
        ),
        (
            "KNUT__EXTERNAL__BRIDGE_URL",
            "amqps://knut-internal@mq.example/knut-external",
        ),
        (
            "KNUT_AUDIT_KEY",
            "a-test-key-of-forty-eight-bytes-not-the-real-one",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for e in std::fs::read_dir(root.path().join("adapters")).unwrap() {
        let stem = e
            .unwrap()
            .path()
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        env.push((
            format!(
                "KNUT_ADAPTER_{}_URL",
                stem.to_ascii_uppercase().replace('-', "_")
            ),
            format!("https://{stem}.sundsvall.example"),
        ));
    }
    let o = run(&env);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("(production profile)"), "{}", text(&o));
}

#[test]
fn route_tests_of_the_repository_pass() {
    let o = knut(&repo(), &["test"]);
    let out = text(&o);
    assert!(o.status.success(), "knut test failed:\n{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn a_failing_route_test_fails_the_run() {
    let root = copy_root();
    let f = root
        .path()
        .join("routes/placement-change-register.test.yaml");
    let t = std::fs::read_to_string(&f).unwrap().replacen(
        "key: placement.changed",
        "key: placement.forgotten",
        1,
    );
    std::fs::write(&f, t).unwrap();
    let o = knut(root.path(), &["test"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(out.contains("placement.forgotten"), "{out}");
}

#[test]
fn a_misspelt_step_kind_is_reported_with_position_and_suggestion() {
    let root = copy_root();
    let f = root.path().join("routes/placement-change.yaml");
    let t = std::fs::read_to_string(&f).unwrap().replace(
        "  - validate: { schema: placement-change.v1 }",
        "  - valdate: { schema: placement-change.v1 }",
    );
    std::fs::write(&f, t).unwrap();
    let o = knut(root.path(), &["check"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("placement-change.yaml:"), "file named: {out}");
    assert!(out.contains("valdate"), "{out}");
    assert!(out.contains("did you mean `validate`"), "suggestion: {out}");
    // file:line:col — the step is on line 19
    assert!(
        out.lines().any(|l| l.contains("placement-change.yaml:19:")),
        "line and column: {out}"
    );
}

#[test]
fn a_misspelt_key_and_a_missing_schema_are_reported() {
    let root = copy_root();
    let f = root.path().join("routes/oep-application-archive.yaml");
    let t = std::fs::read_to_string(&f)
        .unwrap()
        .replace("idempotent: { key:", "idempotent: { kye:");
    std::fs::write(&f, t).unwrap();
    let g = root.path().join("routes/placement-change.yaml");
    let t = std::fs::read_to_string(&g).unwrap().replace(
        "validate: { schema: placement-change.v1 }",
        "validate: { schema: placement-change.v2 }",
    );
    std::fs::write(&g, t).unwrap();
    let o = knut(root.path(), &["check"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("kye"), "{out}");
    assert!(out.contains("did you mean `key`"), "{out}");
}

#[test]
fn graph_prints_mermaid() {
    let o = knut(&repo(), &["graph"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.starts_with("flowchart"), "{out}");
    assert!(out.contains("placement-change"), "{out}");
    assert!(out.contains("school.events"), "{out}");
    assert!(out.contains("elevregister"), "{out}");
}

#[test]
fn topology_prints_rabbitmq_definitions() {
    let o = knut(&repo(), &["topology"]);
    assert!(o.status.success(), "{}", text(&o));
    let defs: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(defs["vhosts"][0]["name"], "/");
    let names = |kind: &str| -> Vec<String> {
        defs[kind]
            .as_array()
            .expect(kind)
            .iter()
            .map(|x| x["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(names("exchanges").contains(&"school.events".to_string()));
    let queues = names("queues");
    for q in [
        "knut.route.placement-change",
        "knut.route.placement-change-register.p7",
        "knut.dlq.placement-change",
        "knut.retry.placement-change-case.1h",
    ] {
        assert!(queues.contains(&q.to_string()), "{q} missing: {queues:?}");
    }
    let work = defs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "knut.route.placement-change")
        .unwrap();
    assert_eq!(work["arguments"]["x-queue-type"], "quorum");

    // broker.queue_type and the vhost of broker.url are honoured.
    let root = copy_root();
    std::fs::write(
        root.path().join("knut.toml"),
        "[broker]\nurl = \"amqp://knut:hemligt@mq.example/skola\"\nqueue_type = \"classic\"\n",
    )
    .unwrap();
    let o = knut(root.path(), &["topology"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("hemligt"), "{out}");
    let defs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(defs["vhosts"][0]["name"], "skola");
    assert_eq!(defs["queues"][0]["vhost"], "skola");
    assert_eq!(defs["queues"][0]["arguments"]["x-queue-type"], "classic");

    // An ordered route: its work queue and eight partition queues have a single active
    // consumer, and it has no retry ladder (it retries in place).
    let o = knut(&repo().join("tests/roots/steps"), &["topology"]);
    assert!(o.status.success(), "{}", text(&o));
    let defs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let queues = defs["queues"].as_array().unwrap();
    let ordered: Vec<&serde_json::Value> = queues
        .iter()
        .filter(|q| {
            let name = q["name"].as_str().unwrap_or_default();
            name.starts_with("knut.route.ordered") || name.starts_with("knut.retry.ordered.")
        })
        .collect();
    let names: Vec<&str> = ordered
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = std::iter::once("knut.route.ordered".to_string())
        .chain((0..8).map(|k| format!("knut.route.ordered.p{k}")))
        .collect();
    assert_eq!(names, expected);
    for q in ordered {
        assert_eq!(q["arguments"]["x-single-active-consumer"], true, "{q}");
        assert_eq!(q["arguments"]["x-queue-type"], "quorum", "{q}");
    }
}

#[test]
fn schema_and_version() {
    let o = knut(&repo(), &["schema"]);
    assert!(o.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/route.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        printed, shipped,
        "schemas/route.schema.json is what `knut schema` prints"
    );
    let o = knut(&repo(), &["version"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("knut "));
}

#[test]
fn every_step_kind_passes_its_route_tests() {
    let root = repo().join("tests/roots/steps");
    let o = knut(&root, &["check", "--dev"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = knut(&root, &["test"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for route in [
        "split-filter",
        "choice-router",
        "aggregate-size",
        "aggregate-when",
        "idempotent",
        "enrich",
        "xml-out",
        "csv-rows",
        "excel-rows",
        "ordered",
        "verify-signature",
        "scatter-gather",
        "publish-dynamic",
        "call-with",
        "include-problem",
        "split-parts",
    ] {
        assert!(
            out.contains(&format!("{route}.test.yaml")),
            "{route} tested: {out}"
        );
    }
}

#[test]
fn dlq_without_a_running_knut_says_so_and_fails() {
    let admin = format!("127.0.0.1:{}", support::root::free_port());
    let o = knut(
        &repo(),
        &["dlq", "list", "placement-change", "--admin", &admin],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("cannot reach knut at {admin}"))
            && text(&o).contains("is `knut run` running?"),
        "{}",
        text(&o)
    );
    let o = knut(
        &repo(),
        &["dlq", "replay", "placement-change", "--admin", &admin],
    );
    assert!(!o.status.success(), "replay needs an id or --all");
    assert!(text(&o).contains("<ID>"), "{}", text(&o));
}

#[test]
fn a_literal_secret_in_an_adapter_file_is_refused_with_its_position() {
    let root = copy_root();
    let f = root.path().join("adapters/casedata.yaml");
    let t = std::fs::read_to_string(&f).unwrap().replacen(
        "timeout: 10s\n",
        "timeout: 10s\nauth:\n  basic:\n    username: knut\n    password: Hemligt-42\n",
        1,
    ) + "    headers: { authorization: Bearer abc.def }\n";
    std::fs::write(&f, t).unwrap();
    let o = knut(root.path(), &["check"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("adapters/casedata.yaml:8:5: auth.basic.password is a literal secret"),
        "file:line:col and the YAML path: {out}"
    );
    assert!(out.contains("password: { env: NAME }"), "suggestion: {out}");
    assert!(
        out.contains(".headers.authorization holds a credential"),
        "{out}"
    );
    assert!(
        !out.contains("Hemligt-42") && !out.contains("abc.def"),
        "the secret is not repeated: {out}"
    );
}
