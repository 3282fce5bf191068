//! A message's journey (`knut trace`, `GET /api/trace/{id}`) end to end: a leave
//! application goes from OeP's push to the case officer's decision through the shipped
//! routes and the sandbox, and one search by its FlowInstanceID — or by its errand number —
//! finds every hop of it: the application's correlation id and the decision's (which
//! differ), each step, each adapter call with its status, each route's end, in time order.

#[path = "support/flows.rs"]
mod flows;
#[path = "support/knut.rs"]
mod knut;
#[path = "support/rabbit.rs"]
mod rabbit;
#[path = "support/root.rs"]
mod root;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use flows::{Flow, On};

const MARTA: &str = "20130412-2383";

/// The errand of OeP instance `id`, once it is opened.
async fn errand_of(flow: &Flow, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = flow
            .get(&format!(
                "{}/casedata/2281/SBK_SCHOOL/errands?filter=externalCaseId:'OEP-412-{id}'",
                flow.sandbox
            ))
            .await;
        if let Some(e) = page["content"].as_array().and_then(|c| c.first()) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no errand for {id}\n{}",
            flow.knut.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The journey of `id` from the admin API, once `done` holds for it (the journal is
/// written in the background).
async fn journey(flow: &Flow, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = flow
            .client
            .get(format!("{}/api/trace/{id}", flow.admin))
            .bearer_auth(&flow.admin_token)
            .send()
            .await
            .expect("admin API");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the journey of {id} never got there: {status} {body:#}\n{}",
            flow.knut.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn routes_of(j: &Value) -> BTreeSet<String> {
    j["hops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["route"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_search_by_the_flow_instance_id_follows_an_application_to_its_decision() {
    let flow = Flow::start(On::Embedded, "trace-journey").await;

    // Anna applies for leave for Märta; OeP pushes the export to Knutpunkt.
    let fixture =
        std::fs::read(root::repo().join("tests/fixtures/oep/leave-application-latin1.xml"))
            .expect("fixture");
    let (status, answer) = flow
        .post_bytes(
            &format!("{}/oep/_submit?push=true", flow.sandbox),
            "application/xml",
            fixture,
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let id = answer["flowInstanceID"]
        .as_u64()
        .expect("flowInstanceID")
        .to_string();
    let errand = errand_of(&flow, &id).await;
    let number = errand["errandNumber"]
        .as_str()
        .expect("errand number")
        .to_string();

    // The case officer grants it: case management tells Knutpunkt, with a new request.
    let (status, decided) = flow
        .post(
            &format!("{}/casedata/_decide", flow.sandbox),
            &json!({"errandId": errand["id"], "outcome": "APPROVAL", "description": "Beviljas."}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{decided}");

    let to_the_decision = |j: &Value| {
        let routes = routes_of(j);
        [
            "case-decision-in",
            "oep-decision-status",
            "leave-decision-larplattform",
        ]
        .iter()
        .all(|r| routes.contains(*r))
            && j["hops"].as_array().is_some_and(|h| {
                h.iter().any(|h| {
                    h["route"] == "oep-decision-status"
                        && h["step"] == "end"
                        && h["outcome"] == "ok"
                })
            })
    };
    let j = journey(&flow, &id, to_the_decision).await;

    // Every route of the case, from the push to the systems told of the decision.
    let routes = routes_of(&j);
    for r in [
        "oep-flowinstance-normalise",
        "leave-application-in",
        "case-open",
        "case-decision-in",
        "oep-decision-status",
        "leave-decision-larplattform",
        "leave-decision-elevregister",
    ] {
        assert!(routes.contains(r), "{r} missing from {routes:?}");
    }
    // Two correlation ids at least (the application's and the decision's), tied by keys.
    let ids: BTreeSet<&str> = j["correlation_ids"]
        .as_array()
        .expect("correlation ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ids.len() >= 2, "{ids:?}");
    let in_hops: BTreeSet<&str> = j["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .filter_map(|h| h["correlation_id"].as_str())
        .collect();
    let decision_ids: BTreeSet<&str> = j["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .filter(|h| h["route"] == "case-decision-in")
        .filter_map(|h| h["correlation_id"].as_str())
        .collect();
    let opening_ids: BTreeSet<&str> = j["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .filter(|h| h["route"] == "leave-application-in")
        .filter_map(|h| h["correlation_id"].as_str())
        .collect();
    assert!(
        decision_ids.is_disjoint(&opening_ids),
        "the decision comes with a correlation id of its own"
    );
    assert!(in_hops.is_subset(&ids));
    let keys: BTreeSet<(String, String)> = j["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap_or_default().to_string(),
                k["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        keys.contains(&("flowInstanceId".into(), id.clone())),
        "{keys:?}"
    );
    assert!(
        keys.contains(&("errandNumber".into(), number.clone())),
        "{keys:?}"
    );
    // In time order, with steps and adapter calls (operation and HTTP status).
    let hops = j["hops"].as_array().expect("hops");
    let times: Vec<&str> = hops.iter().filter_map(|h| h["at"].as_str()).collect();
    let parsed: Vec<chrono::DateTime<chrono::FixedOffset>> = times
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("time"))
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "not in time order");
    assert!(
        hops.iter().any(|h| h["route"] == "case-open"
            && h["step"]
                .as_str()
                .is_some_and(|s| s.ends_with("casedata.find-errand"))
            && h["outcome"] == "ok"
            && h["detail"] == "HTTP 200"
            && h["duration_us"].as_i64().is_some()),
        "no adapter call row: {j:#}"
    );
    assert!(
        hops.iter()
            .any(|h| h["route"] == "leave-application-in" && h["step"] == "steps[1].validate"),
        "no step row"
    );
    assert!(!j["truncated"].as_bool().expect("truncated"));
    // No personnummer anywhere in it (in any of its forms; a bare "2383" could be part of
    // an id or a time).
    let text = j.to_string();
    for pnr in [MARTA, "201304122383", "130412-2383", "1304122383"] {
        assert!(!text.contains(pnr), "{text}");
    }

    // The errand number finds the same journey; so does the decision's correlation id.
    let by_number = journey(&flow, &number, |_| true).await;
    let decision_id = decision_ids
        .iter()
        .next()
        .expect("a decision hop")
        .to_string();
    let by_decision = journey(&flow, &decision_id, |_| true).await;
    for other in [&by_number, &by_decision] {
        let found: BTreeSet<&str> = other["correlation_ids"]
            .as_array()
            .expect("correlation ids")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(found.is_superset(&ids), "{found:?} {ids:?}");
        assert!(routes_of(other).contains("leave-application-in"));
    }

    // Nothing, and a personnummer: problems.
    for (query, status) in [("no-such-case-424242", 404), (MARTA, 400)] {
        let r = flow
            .client
            .get(format!("{}/api/trace/{query}", flow.admin))
            .bearer_auth(&flow.admin_token)
            .send()
            .await
            .expect("admin API");
        assert_eq!(r.status().as_u16(), status, "{query}");
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
    }

    // `knut trace` on the command line: the same journey as a table in time order, and as
    // JSON.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_knut"))
            .arg("trace")
            .args(args)
            .args(["--admin", flow.admin.trim_start_matches("http://")])
            .arg("--root")
            .arg(flow.root())
            .arg("--dev")
            .env("KNUT_ADMIN_TOKEN", &flow.admin_token)
            .output()
            .expect("knut trace");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, table, err) = cli(&[&id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(table.starts_with(&format!("journey of {id}: ")), "{table}");
    assert!(table.contains(&format!("flowInstanceId={id}")), "{table}");
    let at_of = |route: &str| {
        table
            .lines()
            .position(|l| l.contains(&format!("  {route}  ")))
            .unwrap_or_else(|| panic!("{route} not in\n{table}"))
    };
    assert!(
        at_of("leave-application-in") < at_of("case-decision-in"),
        "{table}"
    );
    assert!(!table.contains(MARTA) && !table.contains("201304122383"));
    let (code, json_out, err) = cli(&[&id, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let parsed: Value = serde_json::from_str(&json_out).expect("JSON");
    assert!(
        parsed["hops"]
            .as_array()
            .is_some_and(|h| h.len() >= hops.len())
    );
    let (code, _, err) = cli(&["no-such-case-424242"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no hop"), "{err}");

    flow.stop(&[MARTA]).await;
}
