//! Requests Knutpunkt sends to systems with a real, published API contract are checked
//! against that contract (the OpenAPI files in `../shared/fixtures`, beside the
//! repository): every operation of those adapters is called through the real adapter
//! against the sandbox, and the request the simulation received must use a path and method
//! the contract has, only query parameters it declares, and a body valid against the
//! operation's request schema (JSON Schema 2020-12 with formats; the contract's
//! `components` resolve `$ref`s).
//!
//! The tests are `#[ignore]`d so that `cargo test` needs nothing outside the repository;
//! `.ci/run` runs them with `cargo test --test contracts -- --ignored`.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use knut_sandbox::seed::id_for;
use knutpunkt::core::envelope::Envelope;
use serde_json::{Value, json};
use support::root::repo;
use support::sandboxed::{World, world};

/// Which contract governs which adapter.
const CONTRACTS: &[(&str, &str)] = &[
    ("casedata", "casedata/openapi.yaml"),
    ("messaging", "messaging/messaging-openapi.yml"),
    ("citizen", "citizen/citizen-api.yml"),
    ("minaombud", "minaombud/dfm_konsument_v2.yaml"),
    ("arkiv", "archive/openapi.yaml"),
];

/// Operations whose path the contract does not have, by design: the contract operation
/// whose request they follow instead (None: not checked), and why.
/// (adapter, operation, the contract's (method, path) it follows, why).
type Designed = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
    &'static str,
);

const DESIGNED: &[Designed] = &[
    (
        "arkiv",
        "archive-package",
        Some(("post", "/{municipalityId}/archive/byggr")),
        "school packages use the ByggR request shape on a path of their own",
    ),
    (
        "arkiv",
        "get-package",
        None,
        "a read-back of the sandbox; the archive API has no GET",
    ),
];

fn fixtures() -> PathBuf {
    repo().join("../shared/fixtures")
}

fn contract(file: &str) -> Value {
    let path = fixtures().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (is ../shared beside the repository?)",
            path.display()
        )
    });
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The contract path template matching `path` (no query) for `method`, preferring the
/// template with most literal segments (`/{m}/batch` over `/{m}/{personId}`).
fn find_operation<'a>(spec: &'a Value, method: &str, path: &str) -> Option<(&'a str, &'a Value)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut best: Option<(usize, &str, &Value)> = None;
    for (template, item) in spec["paths"].as_object()? {
        let t: Vec<&str> = template.trim_matches('/').split('/').collect();
        if t.len() != segs.len() {
            continue;
        }
        let fits = t
            .iter()
            .zip(&segs)
            .all(|(t, s)| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s);
        let Some(op) = item.get(method.to_ascii_lowercase()) else {
            continue;
        };
        if fits {
            let literal = t.iter().filter(|t| !t.starts_with('{')).count();
            if best.is_none_or(|(n, _, _)| literal > n) {
                best = Some((literal, template, op));
            }
        }
    }
    best.map(|(_, t, op)| (t, op))
}

/// Every violation of `body` against the request schema of `op`, as `pointer: message`.
fn violations(spec: &Value, op: &Value, content_type: &str, body: &Value) -> Vec<String> {
    let content = &op["requestBody"]["content"];
    let media = content
        .get(content_type)
        .or_else(|| content.get("application/json"))
        .or_else(|| content.get("*/*"));
    let Some(schema) = media.and_then(|m| m.get("schema")) else {
        return vec![format!(
            "the contract has no request body for {content_type}"
        )];
    };
    let mut doc = json!({ "allOf": [schema] });
    doc["components"] = spec["components"].clone();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&doc)
        .unwrap_or_else(|e| panic!("the contract's schema does not compile: {e}"));
    validator
        .iter_errors(body)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The query parameter names the contract declares for an operation (and its path item).
fn declared_query(spec: &Value, template: &str, op: &Value) -> BTreeSet<String> {
    let params = op["parameters"].as_array().into_iter().flatten().chain(
        spec["paths"][template]["parameters"]
            .as_array()
            .into_iter()
            .flatten(),
    );
    params
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

/// The case request the shipped leave-application-in route makes of the fixture's
/// application (its errand is what `open-errand` sends).
fn leave_request() -> Value {
    let templates = knutpunkt::template::Templates::load(&repo().join("transforms")).unwrap();
    let application = json!({
        "flowInstanceId": "90017", "posted": "2026-11-02T08:14:55",
        "applicant": {"firstname": "Anna", "lastname": "Lindqvist", "email": "anna.lindqvist@exempel.se"},
        "student": {"civicNo": "20130412-2383", "givenName": "Märta", "familyName": "Lindqvist"},
        "period": {"start": "2027-02-15", "end": "2027-02-17"}, "reason": "Släktträff",
    });
    serde_json::from_str(
        &templates
            .render(
                "casedata/leave-errand.json.tera",
                &json!({"body": application, "headers": {}}),
            )
            .unwrap(),
    )
    .unwrap()
}

/// A realistic message for every operation of the contracted adapters.
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    let marta = id_for("201304122383").to_string();
    // The errand as the shipped placement-change-case route makes it.
    let templates = knutpunkt::template::Templates::load(&repo().join("transforms")).unwrap();
    let errand: Value = serde_json::from_str(
        &templates
            .render(
                "casedata/placement-errand.json.tera",
                &json!({"body": {"operator": "559999-9991", "schoolUnit": "38120004",
                    "student": "201604122398", "kind": "scope", "placementType": "fritidshem",
                    "scope": "heltid", "date": "2026-12-01"}, "headers": {}}),
            )
            .unwrap(),
    )
    .unwrap();
    vec![
        ("casedata", "create-errand", errand),
        ("casedata", "list-errands", json!({})),
        ("casedata", "get-errand", json!({"errandId": 1})),
        (
            "casedata",
            "update-errand",
            json!({"errandId": 1, "externalCaseId": "BUN 2026/00042"}),
        ),
        (
            "casedata",
            "find-errand",
            json!({"externalCaseId": "OEP-412-90017"}),
        ),
        (
            "casedata",
            "open-errand",
            json!({"errand": leave_request()["errand"].clone()}),
        ),
        (
            "casedata",
            "update-extra-parameters",
            json!({"errandId": 1, "parameters": [{"key": "basis.ofAge", "values": ["false"]}]}),
        ),
        (
            "casedata",
            "add-decision",
            json!({"errandId": 1, "decision": {"decisionType": "FINAL", "decisionOutcome": "APPROVAL",
                   "description": "Skolval: placerad på Björkhagens skola",
                   "extraParameters": {"placedAt": "38120001"}}}),
        ),
        ("citizen", "get-person", json!({"personId": marta})),
        (
            "citizen",
            "get-person-id",
            json!({"personNumber": "201304122383"}),
        ),
        ("citizen", "get-persons", json!({"personIds": [marta]})),
        (
            "citizen",
            "changed-addresses",
            json!({"changedDateFrom": "2026-01-01"}),
        ),
        (
            "messaging",
            "send-email",
            json!({"emailAddress": "admin@exempel-forskola.example", "subject": "Placering ändrad",
                   "message": "Ändringen är registrerad.",
                   "sender": {"name": "Sundsvalls kommun", "address": "noreply@sundsvall.example"}}),
        ),
        (
            "messaging",
            "send-sms",
            json!({"mobileNumber": "+46701234567", "message": "Ogiltig frånvaro idag", "sender": "Sundsvall"}),
        ),
        (
            "messaging",
            "send-webmessage",
            json!({"party": {"partyId": marta}, "message": "Beslut om ledighet"}),
        ),
        (
            "messaging",
            "send-letter",
            json!({"party": {"partyIds": [marta]}, "subject": "Beslut", "department": "Barn och utbildning",
                   "contentType": "text/plain", "body": "Se bilaga.",
                   "attachments": [{"deliveryMode": "ANY", "contentType": "application/pdf",
                                    "content": "JVBERi0xLjQK", "filename": "beslut.pdf"}]}),
        ),
        (
            "messaging",
            "get-status",
            json!({"messageId": "00000000-0000-4000-8000-000000000001"}),
        ),
        (
            "minaombud",
            "search-fullmakter",
            json!({"holder": "19860604-1195", "status": "GILTIG"}),
        ),
        (
            "minaombud",
            "get-fullmakt",
            json!({"fullmaktId": id_for("fullmakt/1").to_string()}),
        ),
        (
            "arkiv",
            "archive-package",
            json!({
                "attachment": {"name": "betygskatalog", "extension": ".pdf", "file": "JVBERi0xLjQK"},
                "metadata": "<Leveransobjekt xmlns=\"http://xml.ra.se/e-arkiv/FGS-ERMS\"/>",
            }),
        ),
    ]
}

/// Call an operation and return (method, path, query names, content type, body) as the
/// simulation received them.
async fn sent(
    w: &World,
    adapter: &str,
    op: &str,
    msg: &Value,
) -> (String, String, BTreeSet<String>, String, Option<Value>) {
    // The answer does not matter here (an unknown id is fine): what was sent does.
    let _ = w
        .client
        .call(adapter, op, &Envelope::json(msg.clone()))
        .await;
    let call = w.last(adapter);
    let (path, query) = call.path.split_once('?').unwrap_or((&call.path, ""));
    let names = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split('=').next().unwrap_or(p).to_string())
        .collect();
    let ct = call
        .headers
        .get("content-type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    (call.method, path.to_string(), names, ct, call.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "reads ../shared/fixtures; .ci/run runs it"]
async fn requests_follow_the_published_contracts() {
    let w = world().await;
    let cases = cases();
    let mut problems = Vec::new();
    for (adapter, file) in CONTRACTS {
        let spec = contract(file);
        let ops: Vec<String> = w
            .client
            .operations(adapter)
            .unwrap_or_else(|| panic!("no adapter {adapter}"));
        for op in ops {
            let designed = DESIGNED
                .iter()
                .find(|(a, o, _, _)| a == adapter && *o == op)
                .map(|(_, _, borrowed, _)| *borrowed);
            if designed == Some(None) {
                continue;
            }
            let Some((_, _, msg)) = cases.iter().find(|(a, o, _)| a == adapter && *o == op) else {
                problems.push(format!("{adapter}.{op}: no case in tests/contracts.rs"));
                continue;
            };
            let (method, path, query, ct, body) = sent(&w, adapter, &op, msg).await;
            let found = match designed {
                Some(None) => continue,
                Some(Some((m, t))) => spec["paths"][t].get(m).map(|op| (t, op)),
                None => find_operation(&spec, &method, &path),
            };
            let Some((template, contract_op)) = found else {
                problems.push(format!("{adapter}.{op}: {method} {path} is not in {file}"));
                continue;
            };
            let declared = declared_query(&spec, template, contract_op);
            for q in query.difference(&declared) {
                problems.push(format!(
                    "{adapter}.{op}: query `{q}` is not declared for {method} {template}"
                ));
            }
            match body {
                Some(body) => {
                    for v in violations(&spec, contract_op, &ct, &body) {
                        problems.push(format!("{adapter}.{op}: body {v}"));
                    }
                }
                None if contract_op["requestBody"]["required"] == true => {
                    problems.push(format!("{adapter}.{op}: {method} {template} needs a body"));
                }
                None => {}
            }
        }
    }
    assert!(
        problems.is_empty(),
        "contract violations:\n{}",
        problems.join("\n")
    );
}

/// The check itself catches what it should: a body the contract refuses and a path it
/// does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "reads ../shared/fixtures; .ci/run runs it"]
async fn the_check_finds_violations() {
    let spec = contract("messaging/messaging-openapi.yml");
    let (template, op) =
        find_operation(&spec, "POST", "/2281/sms").expect("sms is in the contract");
    assert_eq!(template, "/{municipalityId}/sms");
    let bad = violations(&spec, op, "application/json", &json!({"message": 42}));
    assert!(bad.iter().any(|v| v.contains("mobileNumber")), "{bad:?}");
    assert!(find_operation(&spec, "POST", "/2281/fax").is_none());
    let cases = contract("casedata/openapi.yaml");
    let (_, create) = find_operation(&cases, "POST", "/2281/SBK_SCHOOL/errands").unwrap();
    let bad = violations(&cases, create, "application/json", &json!({"caseType": 7}));
    assert!(!bad.is_empty());
}
