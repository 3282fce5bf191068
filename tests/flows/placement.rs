//! Use case 1: an independent operator reports placement changes (Tallbacken Utbildning AB,
//! 559999-9991, for Leo Nilsson's fritidshem at Tallbackens friskola, 38120002).

use serde_json::json;

use crate::flows::{Flow, On, text};

const LEO: &str = "20160220-1319";

pub async fn run(on: On) {
    let flow = Flow::start(on, "uc1-placement").await;
    let url = format!("{}/api/v1/placement-changes", flow.ingress);
    let token = flow
        .token(json!({"sub": "admin@tallbacken.example", "orgnr": "559999-9991"}))
        .await;
    let change = |kind: &str, unit: &str, date: &str| {
        let mut v = json!({
            "operator": "559999-9991",
            "schoolUnit": unit,
            "student": { "civicNo": LEO },
            "kind": kind,
            "placementType": "fritidshem",
            "date": date,
            "reportedBy": "admin@tallbacken.example",
        });
        if kind != "end" {
            v["scope"] = json!("heltid");
            v["hoursPerWeek"] = json!(40);
        }
        v
    };

    // Without a token, and with a token that names no operator: refused at the door.
    let (status, problem) = flow
        .post(&url, &change("end", "38120002", "2027-06-15"), None)
        .await;
    assert_eq!(status, 401, "{problem}");
    let anonymous = flow.token(json!({"sub": "someone"})).await;
    let (status, problem) = flow
        .post(
            &url,
            &change("end", "38120002", "2027-06-15"),
            Some(&anonymous),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    assert!(text(&problem).contains("orgnr"), "{problem}");

    // A scope change, then an end, at the operator's own unit.
    for body in [
        change("scope-change", "38120002", "2026-12-01"),
        change("end", "38120002", "2027-06-15"),
    ] {
        let (status, answer) = flow.post(&url, &body, Some(&token)).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["accepted"], true, "{answer}");
    }
    // A unit of another operator (the municipality's Björkhagens skola): 403, nothing done.
    let (status, problem) = flow
        .post(&url, &change("end", "38120001", "2027-06-15"), Some(&token))
        .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(
        problem["type"],
        "https://knutpunkt.sundsvall.se/problems/not-your-school-unit"
    );
    assert_eq!(
        problem["instance"], "/api/v1/placement-changes",
        "{problem}"
    );
    // An unknown unit: 422; a body the schema refuses: 422 at the door, naming the field.
    let (status, problem) = flow
        .post(&url, &change("end", "99999999", "2027-06-15"), Some(&token))
        .await;
    assert_eq!(status, 422, "{problem}");
    let mut no_scope = change("start", "38120002", "2027-01-08");
    no_scope.as_object_mut().map(|o| o.remove("scope"));
    let (status, problem) = flow.post(&url, &no_scope, Some(&token)).await;
    assert_eq!(status, 422, "{problem}");

    // Elevregister got both changes, in order; case management an errand for each; the
    // administrator a receipt for each, without Leo's personnummer.
    let placements = flow
        .wait_calls("elevregister", "POST", "/placements", 2, 30)
        .await;
    assert_eq!(placements.len(), 2, "{}", text(&json!(placements)));
    assert_eq!(placements[0]["body"]["child"]["civicNo"], LEO);
    assert_eq!(placements[0]["body"]["schoolType"], "FTH");
    assert_eq!(placements[0]["body"]["maxWeeklyScheduleHours"], 40);
    assert_eq!(placements[1]["body"]["endDate"], "2027-06-15");
    let leo = flow
        .get(&format!(
            "{}/elevregister/persons?civicNo=201602201319",
            flow.sandbox
        ))
        .await;
    let leo_id = leo["data"][0]["id"].as_str().expect("Leo").to_string();
    let now = flow
        .get(&format!(
            "{}/elevregister/placements?child={leo_id}",
            flow.sandbox
        ))
        .await;
    let fth = now["data"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["schoolType"] == "FTH"))
        .cloned()
        .expect("Leo's fritidshem placement");
    assert_eq!(fth["maxWeeklyScheduleHours"], 40.0, "{fth}");
    assert_eq!(fth["endDate"], "2027-06-15", "{fth}");

    // (The leave applications seeded in OeP open cases of their own at start.)
    let placement_errands = || async {
        flow.calls("casedata", "POST", "/2281/SBK_SCHOOL/errands")
            .await
            .into_iter()
            .filter(|c| c["body"]["caseType"] == "PLACEMENT_CHANGE")
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while placement_errands().await.len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let errands = placement_errands().await;
    assert_eq!(errands.len(), 2, "{}", text(&json!(errands)));
    for e in &errands {
        assert_eq!(e["body"]["caseType"], "PLACEMENT_CHANGE");
        assert_eq!(
            e["body"]["stakeholders"][0]["organizationNumber"],
            "559999-9991"
        );
    }
    let mails = flow
        .wait_calls_where(
            "messaging",
            "POST",
            "/2281/email",
            |m| m["body"]["emailAddress"] == "admin@tallbacken.example",
            2,
            30,
        )
        .await;
    assert_eq!(mails.len(), 2);
    for m in &mails {
        assert_eq!(m["body"]["emailAddress"], "admin@tallbacken.example");
        assert!(!text(&m["body"]).contains("1319"), "{}", text(m));
    }

    // The refused and the invalid reports reached no system.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        flow.calls("elevregister", "POST", "/placements")
            .await
            .len(),
        2
    );
    // Elevregister refusing the lookup (a permanent failure): the report is dead-lettered
    // and the waiting portal is told at once (502), not after the reply timeout.
    let (status, _) = flow
        .post(
            &format!("{}/elevregister/_fault", flow.sandbox),
            &json!({"status": 400, "count": 1}),
            None,
        )
        .await;
    assert!(status < 300);
    let asked = std::time::Instant::now();
    let (status, problem) = flow
        .post(&url, &change("end", "38120002", "2027-06-15"), Some(&token))
        .await;
    assert_eq!(status, 502, "{problem}");
    assert_eq!(
        problem["type"],
        "https://knutpunkt.sundsvall.se/problems/not-processed"
    );
    assert!(asked.elapsed() < std::time::Duration::from_secs(10));
    let parked = flow.wait_dead_letters("placement-change", 1, 10).await;
    assert!(
        parked[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("HTTP 400")),
        "{}",
        text(&parked[0])
    );
    let id = parked[0]["id"]
        .as_str()
        .expect("a dead letter id")
        .to_string();
    let discarded = flow
        .client
        .delete(format!(
            "{}/api/routes/placement-change/dlq/{id}",
            flow.admin
        ))
        .bearer_auth(&flow.admin_token)
        .send()
        .await
        .expect("discard");
    assert!(discarded.status().is_success(), "{}", discarded.status());

    let openapi = flow.get(&format!("{}/openapi.json", flow.ingress)).await;
    let op = &openapi["paths"]["/api/v1/placement-changes"]["post"];
    assert!(op["security"].is_array(), "{op}");
    flow.assert_no_dead_letters().await;
    flow.stop(&[LEO]).await;
}
