//! The deploy kit in `deploy/` (docs/deploy.md), checked as far as this machine can:
//!
//! - the Grafana dashboard and the Prometheus alert rules use only metrics knut exports
//!   (`knutpunkt::telemetry::metrics::NAMES`), their PromQL parses (`promtool check rules`)
//!   and each alert fires when it should (`promtool test rules`);
//! - the Kubernetes manifests validate against Kubernetes' schemas (`kubernetes-validate
//!   --strict`, offline) and hold what production needs (two replicas, probes, resources,
//!   read-only root, non-root, one Deployment per plane with its own Secret by reference, a
//!   disruption budget each, a NetworkPolicy opening the admin ports to the monitoring
//!   namespace only), and the ConfigMap's knut.toml is deploy/knut.production.toml;
//! - the systemd unit passes `systemd-analyze verify` and is hardened;
//! - compose.yaml is parsed and checked (no container engine runs it here): two replicas
//!   per plane, each plane with only its own secrets and store; its RabbitMQ
//!   imports definitions that are exactly `knut topology` of the shipped root, its secrets
//!   come from the env file, every adapter has a URL in every env example.
//!
//! The image itself is built and run by `deploy/image/build.sh` (a step of `.ci/run`).
//!
//! The external tools (`promtool` from Debian's `prometheus`, `kubernetes-validate` from
//! PyPI, `systemd-analyze`) are installed by `.ci/run`, which sets
//! `KNUT_REQUIRE_DEPLOY_TOOLS=1`: there a missing tool fails the test; elsewhere the check
//! says SKIPPED and the rest of the test runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use knutpunkt::telemetry::metrics::{HISTOGRAMS, NAMES};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every document of a multi-document YAML file.
fn yaml_docs(path: &str) -> Vec<Value> {
    serde_saphyr::from_str_multiple::<Value, Vec<Value>>(&read(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// Whether `tool` runs; if not, fails under `KNUT_REQUIRE_DEPLOY_TOOLS=1` (CI) and says
/// SKIPPED loudly otherwise.
fn have(tool: &str, probe: &[&str], install: &str) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("KNUT_REQUIRE_DEPLOY_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{tool} is missing and KNUT_REQUIRE_DEPLOY_TOOLS=1: {install}");
        }
        eprintln!(
            "\n*** SKIPPED: {tool} is not installed, so that check did not run ({install}; .ci/run installs it) ***\n"
        );
    }
    ok
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    found.sort();
    found
}

fn rel(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The adapters of the shipped root, as their URL variables (`KNUT_ADAPTER_<NAME>_URL`).
fn adapter_variables() -> Vec<String> {
    let vars: Vec<String> = files("adapters", ".yaml")
        .iter()
        .map(|p| {
            let stem = p.file_stem().expect("stem").to_string_lossy();
            format!(
                "KNUT_ADAPTER_{}_URL",
                stem.to_ascii_uppercase().replace('-', "_")
            )
        })
        .collect();
    assert!(vars.len() > 10, "{vars:?}");
    vars
}

// ---------------------------------------------------------------------------------------
// Metrics: dashboard and alerts

/// Metric names in a PromQL expression: identifiers left once strings, label matchers,
/// ranges and grouping lists are removed, that are no function (followed by `(`), keyword or
/// number. Grafana's variables (`$route`, `$__rate_interval`) only appear inside those.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let strip = |re: &str, text: &str| {
        regex::Regex::new(re)
            .expect("regex")
            .replace_all(text, " ")
            .into_owned()
    };
    let mut e = strip(r#""(?:[^"\\]|\\.)*""#, expr);
    e = strip(r"\{[^}]*\}", &e);
    e = strip(r"\[[^\]]*\]", &e);
    e = strip(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
        &e,
    );
    // Numbers and durations (0.95, 1e3, offset 5m).
    e = strip(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+|ms|[smhdwy])?\b", &e);
    let keywords = [
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "offset",
        "bool",
        "group_left",
        "group_right",
        "inf",
        "nan",
    ];
    let ident = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?").expect("regex");
    ident
        .captures_iter(&e)
        .filter(|c| c.get(1).is_none())
        .map(|c| c[0].trim().to_string())
        .filter(|n| !keywords.contains(&n.to_ascii_lowercase().as_str()))
        .collect()
}

/// Whether knut exports `name` (a histogram's `_bucket`, `_sum` and `_count` series too);
/// `up` is Prometheus' own (the scrape of an instance).
fn exported(name: &str) -> bool {
    if name == "up" || NAMES.contains(&name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|base| HISTOGRAMS.contains(&base))
    })
}

fn strings_under(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match x {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_under(x, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| strings_under(x, key, out)),
        _ => {}
    }
}

/// The PromQL of every panel and template variable of the dashboards.
fn dashboard_exprs() -> Vec<(String, String)> {
    let mut all = Vec::new();
    let dashboards = files("deploy/grafana", ".json");
    assert!(!dashboards.is_empty(), "no dashboard in deploy/grafana");
    for path in dashboards {
        let text = std::fs::read_to_string(&path).expect("dashboard");
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", rel(&path)));
        assert!(
            doc["title"].is_string() && doc["uid"].is_string(),
            "{}",
            rel(&path)
        );
        let panels = doc["panels"].as_array().expect("panels");
        let mut ids = BTreeSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "duplicate panel id"
            );
            assert!(
                p["gridPos"]["w"]
                    .as_u64()
                    .is_some_and(|w| (1..=24).contains(&w)),
                "{p}"
            );
            if p["type"] != "row" {
                assert!(
                    p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                    "panel without a query: {}",
                    p["title"]
                );
                // The datasource is the dashboard's variable, so it works in any Grafana.
                assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            }
        }
        let mut exprs = Vec::new();
        strings_under(&doc["panels"], "expr", &mut exprs);
        for var in doc["templating"]["list"].as_array().expect("templating") {
            if let Some(q) = var["query"]["query"].as_str() {
                // label_values(metric, label)
                if let Some(inner) = q.strip_prefix("label_values(") {
                    exprs.push(inner.split(',').next().unwrap_or("").to_string());
                }
            }
        }
        for e in exprs {
            all.push((rel(&path), e));
        }
    }
    all
}

/// Alert rules' expressions and the series their unit tests feed them.
fn alert_exprs() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for path in files("deploy/prometheus", ".yaml") {
        let name = rel(&path);
        let doc = yaml(&name);
        if name.ends_with(".test.yaml") {
            for t in doc["tests"].as_array().expect("tests") {
                for s in t["input_series"].as_array().expect("input_series") {
                    let series = s["series"].as_str().expect("series");
                    all.push((name.clone(), series.to_string()));
                }
            }
            continue;
        }
        for g in doc["groups"].as_array().expect("groups") {
            for r in g["rules"].as_array().expect("rules") {
                all.push((name.clone(), r["expr"].as_str().expect("expr").to_string()));
            }
        }
    }
    all
}

#[test]
fn the_metric_name_parser_finds_names_and_only_names() {
    let found = metric_names(
        r#"histogram_quantile(0.95, sum by (le, route) (rate(knut_step_duration_seconds_bucket{route=~"$route", x="a{b}"}[$__rate_interval]))) / on(route) group_left up > 1e3 and bool knut_x offset 5m"#,
    );
    let want: BTreeSet<String> = ["knut_step_duration_seconds_bucket", "up", "knut_x"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, want);
    assert!(exported("knut_step_duration_seconds_bucket"));
    assert!(!exported("knut_messages_in_total_bucket"));
    assert!(!exported("knut_no_such_metric"));
}

#[test]
fn dashboards_and_alerts_use_only_metrics_knut_exports() {
    let dash = dashboard_exprs();
    let alerts = alert_exprs();
    assert!(dash.len() >= 15, "{dash:?}");
    let mut used = BTreeSet::new();
    let mut unknown = Vec::new();
    for (file, e) in dash.iter().chain(&alerts) {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{file}: no metric in `{e}`");
        for n in names {
            if !exported(&n) {
                unknown.push(format!("{file}: {n} (in `{e}`)"));
            }
            used.insert(n);
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics knut does not export (src/telemetry/metrics.rs NAMES):\n{}",
        unknown.join("\n")
    );
    // What the issue asks the alerts to watch.
    let rules = yaml("deploy/prometheus/knut-alerts.yaml");
    let alert_names: Vec<&str> = rules["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["alert"].as_str().expect("alert"))
        .collect();
    for (alert, metric) in [
        (
            "KnutDeadLettersGrowing",
            "knut_messages_dead_lettered_total",
        ),
        ("KnutCircuitOpen", "knut_adapter_circuit_state"),
        ("KnutPollLeaseLost", "knut_poll_lease_lost_total"),
        ("KnutIngress5xx", "knut_http_requests_total"),
        ("KnutConsumerLag", "knut_queue_depth"),
    ] {
        assert!(
            alert_names.contains(&alert),
            "no alert {alert}: {alert_names:?}"
        );
        assert!(used.contains(metric), "{metric} unused");
    }
    // The dashboard shows every metric knut exports.
    let on_dashboard: BTreeSet<String> = dash
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| HISTOGRAMS.contains(b)))
                .map_or(n.clone(), str::to_string)
        })
        .collect();
    for name in NAMES {
        assert!(
            on_dashboard.contains(*name),
            "{name} is on no dashboard panel"
        );
    }
}

#[test]
fn promtool_checks_and_tests_the_alert_rules_and_the_dashboards_promql() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The dashboard's queries as recording rules, Grafana's variables given values, so
    // promtool parses each.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, e)) in dashboard_exprs().iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$route", ".*")
            .replace("$adapter", ".*")
            .replace("$job", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&e).expect("json string")
        ));
    }
    let dash_rules = dir.path().join("dashboard.yaml");
    std::fs::write(&dash_rules, rules).expect("write");
    if !have("promtool", &["--version"], "apt-get install prometheus") {
        return;
    }
    let (ok, out) = run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(repo().join("deploy/prometheus/knut-alerts.yaml"))
        .arg(&dash_rules));
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = run(Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg("knut-alerts.test.yaml")
        .current_dir(repo().join("deploy/prometheus")));
    assert!(ok && out.contains("SUCCESS"), "promtool test rules:\n{out}");
}

// ---------------------------------------------------------------------------------------
// Kubernetes

const MANIFESTS: &[&str] = &[
    "deploy/kubernetes/configmap.yaml",
    "deploy/kubernetes/adapters.yaml",
    "deploy/kubernetes/deployment.yaml",
    "deploy/kubernetes/service.yaml",
    "deploy/kubernetes/pdb.yaml",
    "deploy/kubernetes/networkpolicy.yaml",
];

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    // Every manifest is listed (kustomization.yaml too), none holds a Secret's values.
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| format!("deploy/kubernetes/{}", r.as_str().expect("resource")))
        .collect();
    let ours: BTreeSet<String> = MANIFESTS.iter().map(|s| s.to_string()).collect();
    assert_eq!(listed, ours);
    for m in MANIFESTS {
        for doc in yaml_docs(m) {
            assert_ne!(doc["kind"], "Secret", "{m}: secrets are never committed");
        }
    }
    if !have(
        "kubernetes-validate",
        &["--version"],
        "pip install kubernetes-validate",
    ) {
        return;
    }
    let (ok, out) = run(Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.30.0"])
        .args(MANIFESTS)
        .current_dir(repo()));
    assert!(ok, "kubernetes-validate:\n{out}");
    // One line per resource: 2 ConfigMaps, 2 Deployments, 4 Services, 2 PDBs, 2 policies.
    assert_eq!(out.matches(" passed ").count(), 12, "{out}");
}

/// Each plane's Deployment: its name's suffix, its ingress and admin ports.
const PLANES: [(&str, u64, u64); 2] = [("internal", 8080, 9090), ("external", 8081, 9091)];

/// The secrets only the internal plane holds (never the external plane's Secret).
const INTERNAL_ONLY: [&str; 3] = [
    "KNUT__BROKER__URL",
    "KNUT__EXTERNAL__BRIDGE_URL",
    "KNUT_AUDIT_KEY",
];

#[test]
fn the_kubernetes_deployment_is_what_production_needs() {
    let deployments = yaml_docs("deploy/kubernetes/deployment.yaml");
    assert_eq!(deployments.len(), 2, "one Deployment per plane");
    let selector_of = |plane: &str| -> Value {
        serde_json::json!({"app.kubernetes.io/name": "knutpunkt", "app.kubernetes.io/component": plane})
    };
    for (d, (plane, http, admin)) in deployments.iter().zip(PLANES) {
        assert_eq!(d["kind"], "Deployment");
        assert_eq!(d["metadata"]["name"], format!("knut-{plane}"));
        assert_eq!(d["spec"]["replicas"], 2, "{plane}");
        assert_eq!(d["spec"]["selector"]["matchLabels"], selector_of(plane));
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(
            d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"],
            admin.to_string()
        );
        let c = &pod["containers"][0];
        // One plane per process (`knut run --plane`).
        assert_eq!(c["args"], serde_json::json!(["run", "--plane", plane]));
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert!(c["resources"]["requests"]["memory"].is_string(), "{c}");
        assert!(c["resources"]["limits"]["memory"].is_string(), "{c}");
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"][0], "ALL");
        let uid = sc["runAsUser"].as_u64().expect("runAsUser");
        assert!(uid > 0, "non-root");
        assert!(
            read("deploy/image/Containerfile").contains(&format!("USER {uid}:{uid}")),
            "the image's user is the pod's"
        );
        let ports: Vec<(&str, u64)> = c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().expect("name"),
                    p["containerPort"].as_u64().expect("port"),
                )
            })
            .collect();
        assert_eq!(ports, [("http", http), ("admin", admin)], "{plane}");
        // Secrets by reference only, the plane's own; the config from the ConfigMap.
        let env_from = c["envFrom"].as_array().expect("envFrom");
        let secrets: Vec<&Value> = env_from.iter().filter_map(|e| e.get("secretRef")).collect();
        assert_eq!(secrets.len(), 1, "{plane}");
        assert_eq!(secrets[0]["name"], format!("knut-{plane}-secrets"));
        assert!(
            env_from
                .iter()
                .any(|e| e["configMapRef"]["name"] == "knut-adapters")
        );
        let mounts = c["volumeMounts"].as_array().expect("mounts");
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == "/knut/knut.toml" && m["subPath"] == "knut.toml")
        );
        assert!(mounts.iter().any(|m| m["mountPath"] == "/knut/data"));
        assert!(mounts.iter().any(|m| m["mountPath"] == "/tmp"));
    }

    let cm = yaml("deploy/kubernetes/configmap.yaml");
    assert_eq!(
        cm["data"]["knut.toml"].as_str(),
        Some(read("deploy/knut.production.toml").as_str()),
        "the ConfigMap's knut.toml is deploy/knut.production.toml (regenerate it: see configmap.yaml)"
    );
    let adapters = yaml("deploy/kubernetes/adapters.yaml");
    for v in adapter_variables() {
        assert!(adapters["data"][&v].is_string(), "adapters.yaml lacks {v}");
    }
    // Each plane's Secret: what its process needs, and the external one nothing internal.
    let internal = read("deploy/kubernetes/internal-secrets.env.example");
    let external = read("deploy/kubernetes/external-secrets.env.example");
    let has = |text: &str, key: &str| text.lines().any(|l| l.starts_with(&format!("{key}=")));
    for key in production_secrets() {
        assert!(
            has(&internal, key) || has(&external, key),
            "no Secret holds {key}"
        );
    }
    for key in INTERNAL_ONLY {
        assert!(
            has(&internal, key),
            "internal-secrets.env.example lacks {key}"
        );
        assert!(
            !has(&external, key),
            "the external plane's Secret holds {key}"
        );
    }
    for key in ["KNUT__EXTERNAL__BROKER_URL", "KNUT_OEP_PUSH_PASSWORD"] {
        assert!(
            has(&external, key),
            "external-secrets.env.example lacks {key}"
        );
        assert!(
            !has(&internal, key),
            "the internal plane's Secret holds {key}"
        );
    }
    for key in [
        "KNUT__STORE__URL",
        "KNUT_ADMIN_KEY_MONITORING",
        "KNUT_ADMIN_KEY_INTEGRATION",
    ] {
        assert!(
            has(&internal, key) && has(&external, key),
            "{key}: each plane its own"
        );
    }

    let pdbs = yaml_docs("deploy/kubernetes/pdb.yaml");
    assert_eq!(pdbs.len(), 2);
    for (pdb, (plane, _, _)) in pdbs.iter().zip(PLANES) {
        assert_eq!(pdb["kind"], "PodDisruptionBudget");
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        assert_eq!(pdb["spec"]["selector"]["matchLabels"], selector_of(plane));
    }
    let services = yaml_docs("deploy/kubernetes/service.yaml");
    assert_eq!(services.len(), 4);
    for svc in &services {
        assert_eq!(svc["kind"], "Service");
        let (plane, http, admin) = PLANES
            .into_iter()
            .find(|(p, _, _)| svc["spec"]["selector"] == selector_of(p))
            .unwrap_or_else(|| panic!("{svc}: selects no plane"));
        let port = &svc["spec"]["ports"][0];
        let name = svc["metadata"]["name"].as_str().expect("name");
        if name.ends_with("-admin") {
            assert_eq!(name, format!("knut-{plane}-admin"));
            assert_eq!(port["port"], admin);
            assert_eq!(port["targetPort"], "admin");
        } else {
            assert_eq!(name, format!("knut-{plane}"));
            assert_eq!(port["port"], http);
            assert_eq!(port["targetPort"], "http");
        }
    }

    // The admin ports only from the monitoring namespace; the ingress port from anywhere;
    // nothing else.
    let policies = yaml_docs("deploy/kubernetes/networkpolicy.yaml");
    assert_eq!(policies.len(), 2);
    for (np, (plane, http, admin)) in policies.iter().zip(PLANES) {
        assert_eq!(np["kind"], "NetworkPolicy");
        assert_eq!(np["spec"]["podSelector"]["matchLabels"], selector_of(plane));
        assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
        let rules = np["spec"]["ingress"].as_array().expect("ingress");
        let mut opened = BTreeSet::new();
        for rule in rules {
            let ports: Vec<u64> = rule["ports"]
                .as_array()
                .unwrap_or_else(|| panic!("{plane}: a rule without ports opens every port"))
                .iter()
                .map(|p| p["port"].as_u64().expect("numeric port"))
                .collect();
            for port in ports {
                opened.insert(port);
                if port == admin {
                    assert_eq!(
                        rule["from"],
                        serde_json::json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]),
                        "{plane}: the admin port only from the monitoring namespace"
                    );
                } else {
                    assert_eq!(port, http, "{plane}: only the ingress and admin ports");
                }
            }
        }
        assert_eq!(opened, BTreeSet::from([http, admin]), "{plane}");
    }
}

/// The secrets deploy/knut.production.toml's header names.
fn production_secrets() -> Vec<&'static str> {
    vec![
        "KNUT__BROKER__URL",
        "KNUT__EXTERNAL__BROKER_URL",
        "KNUT__EXTERNAL__BRIDGE_URL",
        "KNUT__STORE__URL",
        "KNUT_AUDIT_KEY",
        "KNUT_OEP_PUSH_PASSWORD",
        "KNUT_ADMIN_KEY_MONITORING",
        "KNUT_ADMIN_KEY_INTEGRATION",
    ]
}

// ---------------------------------------------------------------------------------------
// systemd

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = read("deploy/systemd/knut.service");
    let setting = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("EnvironmentFile", "/etc/knut/knut.env"),
        ("ExecStart", "/usr/local/bin/knut --root /etc/knut run"),
    ] {
        assert_eq!(setting(key), vec![value.to_string()], "{key}");
    }
    let env = read("deploy/systemd/knut.env.example");
    for v in adapter_variables()
        .iter()
        .map(String::as_str)
        .chain(production_secrets())
    {
        assert!(env.contains(&format!("{v}=")), "knut.env.example lacks {v}");
    }
    if !have("systemd-analyze", &["--version"], "apt-get install systemd") {
        return;
    }
    // verify wants the program to exist: the test's own knut.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("knut.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/knut", env!("CARGO_BIN_EXE_knut")),
    )
    .expect("write");
    let (ok, out) = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    // It warns (unknown key, bad value: "…, ignoring") and still exits 0: any output fails.
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
    let (_, out) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path));
    let level: f64 = out
        .lines()
        .find_map(|l| l.split("exposure level for knut.service: ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("systemd-analyze security:\n{out}"));
    assert!(level <= 2.0, "exposure {level}:\n{out}");
}

// ---------------------------------------------------------------------------------------
// compose

#[test]
fn compose_has_two_knut_replicas_per_plane_rabbitmq_with_the_topology_and_postgres() {
    let c = yaml("deploy/compose/compose.yaml");
    let services = c["services"].as_object().expect("services");
    let knuts: Vec<&String> = services.keys().filter(|k| k.starts_with("knut")).collect();
    assert_eq!(
        knuts,
        [
            "knut-internal-1",
            "knut-internal-2",
            "knut-external-1",
            "knut-external-2"
        ],
        "two replicas per plane"
    );
    for knut in knuts {
        let s = &services[knut];
        let plane = if knut.starts_with("knut-internal") {
            "internal"
        } else {
            "external"
        };
        assert_eq!(s["image"], "localhost/knutpunkt:latest", "{knut}");
        assert_eq!(
            s["command"],
            serde_json::json!(["run", "--plane", plane]),
            "{knut}"
        );
        assert_eq!(s["read_only"], true, "{knut}");
        assert_eq!(s["depends_on"]["rabbitmq"]["condition"], "service_healthy");
        assert_eq!(s["depends_on"]["postgres"]["condition"], "service_healthy");
        let env = s["environment"].as_object().expect("environment");
        // Each plane its own secrets, all from .env; the external plane nothing internal.
        let (own, not_own): (Vec<&str>, Vec<&str>) =
            production_secrets().into_iter().partition(|k| match plane {
                "internal" => !["KNUT__EXTERNAL__BROKER_URL", "KNUT_OEP_PUSH_PASSWORD"].contains(k),
                _ => !INTERNAL_ONLY.contains(k),
            });
        for key in own {
            let value = env[key]
                .as_str()
                .unwrap_or_else(|| panic!("{knut} lacks {key}"));
            assert!(
                value.contains("${"),
                "{knut}: {key} must come from .env: {value}"
            );
        }
        for key in not_own {
            assert!(
                !env.contains_key(key),
                "{knut} holds the other plane's {key}"
            );
        }
        assert!(env.contains_key("KNUT__TELEMETRY__OTLP_ENDPOINT"), "{knut}");
        assert!(
            s["volumes"]
                .as_array()
                .expect("volumes")
                .iter()
                .any(|v| v == "../knut.production.toml:/knut/knut.toml:ro"),
            "{knut}"
        );
        // Everything published on loopback only.
        for p in s["ports"].as_array().expect("ports") {
            assert!(
                p.as_str().expect("port").starts_with("127.0.0.1:"),
                "{knut}: {p}"
            );
        }
    }
    // The external plane's store is not the internal one's, nor are its admin keys.
    let (int_env, ext_env) = (
        &services["knut-internal-1"]["environment"],
        &services["knut-external-1"]["environment"],
    );
    for key in [
        "KNUT__STORE__URL",
        "KNUT_ADMIN_KEY_MONITORING",
        "KNUT_ADMIN_KEY_INTEGRATION",
    ] {
        assert_ne!(int_env[key], ext_env[key], "{key}: each plane its own");
    }
    assert_ne!(
        services["knut-internal-1"]["ports"],
        services["knut-internal-2"]["ports"]
    );
    assert_ne!(
        services["knut-external-1"]["ports"],
        services["knut-external-2"]["ports"]
    );
    let rabbit = &services["rabbitmq"];
    let mounts: Vec<&str> = rabbit["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(mounts.contains(&"./rabbitmq/definitions.json:/etc/knut/definitions.json:ro"));
    assert!(mounts.contains(&"./rabbitmq/start.sh:/etc/knut/start.sh:ro"));
    assert!(
        rabbit["entrypoint"]
            .to_string()
            .contains("/etc/knut/start.sh")
    );
    // PostgreSQL makes the external plane's own user and database at its first start.
    assert!(
        services["postgres"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v
                == "./postgres/init-external.sh:/docker-entrypoint-initdb.d/init-external.sh:ro")
    );
    assert!(
        ext_env["KNUT__STORE__URL"]
            .as_str()
            .is_some_and(|u| u.ends_with("@postgres:5432/knut_external"))
    );

    // Every local file a service mounts exists.
    for (name, s) in services {
        for v in s["volumes"].as_array().into_iter().flatten() {
            let source = v
                .as_str()
                .expect("volume")
                .split(':')
                .next()
                .expect("source");
            if source.starts_with('.') {
                let path = repo().join("deploy/compose").join(source);
                assert!(path.exists(), "{name}: {source} does not exist");
            }
        }
    }
    // Every ${VAR} compose reads is in env.example, and no secret is in a committed file.
    let text = read("deploy/compose/compose.yaml");
    let example = read("deploy/compose/env.example");
    let var = regex::Regex::new(r"\$\{([A-Z0-9_]+)").expect("regex");
    for v in var.captures_iter(&text) {
        assert!(
            example.contains(&format!("\n{}=CHANGE_ME", &v[1])),
            "env.example lacks {}",
            &v[1]
        );
    }
    for line in example
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        assert!(
            line.ends_with("=CHANGE_ME"),
            "env.example holds a value: {line}"
        );
    }
    assert!(
        read(".gitignore")
            .lines()
            .any(|l| l == "deploy/compose/.env" || l == "deploy/compose/*.env"),
        ".gitignore keeps deploy/compose/.env out"
    );
    let env = read("deploy/compose/knut.env.example");
    for v in adapter_variables() {
        assert!(env.contains(&format!("{v}=")), "knut.env.example lacks {v}");
    }
    for script in ["rabbitmq/start.sh", "postgres/init-external.sh"] {
        let (ok, out) = run(Command::new("bash")
            .arg("-n")
            .arg(repo().join("deploy/compose").join(script)));
        assert!(ok, "{script}: {out}");
    }
    let prom = yaml("deploy/compose/prometheus/prometheus.yml");
    assert_eq!(
        prom["scrape_configs"][0]["static_configs"][0]["targets"],
        serde_json::json!([
            "knut-internal-1:9090",
            "knut-internal-2:9090",
            "knut-external-1:9091",
            "knut-external-2:9091"
        ])
    );
}

/// compose's RabbitMQ imports deploy/compose/rabbitmq/definitions.json: it must be what
/// `knut topology` prints for the shipped root with the production configuration.
#[test]
fn compose_rabbitmq_definitions_are_knut_topology() {
    let root = tempfile::tempdir().expect("tempdir");
    for dir in [
        "adapters",
        "routes",
        "transforms",
        "schemas",
        "fragments",
        "settings",
    ] {
        std::os::unix::fs::symlink(repo().join(dir), root.path().join(dir)).expect("symlink");
    }
    std::fs::write(
        root.path().join("knut.toml"),
        read("deploy/knut.production.toml"),
    )
    .expect("knut.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_knut"))
        .arg("--root")
        .arg(root.path())
        .args([
            "topology",
            "--vhost",
            "knut-internal",
            "--external-vhost",
            "knut-external",
        ])
        .env_remove("KNUT__BROKER__URL")
        .env_remove("KNUT__EXTERNAL__BROKER_URL")
        .output()
        .expect("knut topology");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("topology JSON");
    let path = repo().join("deploy/compose/rabbitmq/definitions.json");
    if std::env::var_os("KNUT_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &out.stdout).expect("write definitions.json");
    }
    let shipped: Value = serde_json::from_str(&read("deploy/compose/rabbitmq/definitions.json"))
        .expect("definitions.json");
    assert!(
        printed == shipped,
        "deploy/compose/rabbitmq/definitions.json is not `knut topology` of the shipped routes: \
         regenerate it with `KNUT_UPDATE_DOCS=1 cargo test --test deploy compose_rabbitmq` and commit it"
    );
    let users: Vec<&str> = shipped["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["name"].as_str().expect("name"))
        .collect();
    assert_eq!(users, ["knut-internal", "knut-external"]);
    let start = read("deploy/compose/rabbitmq/start.sh");
    for u in users {
        assert!(
            start.contains(&format!("change_password {u}")),
            "start.sh sets {u}'s password"
        );
    }
}
