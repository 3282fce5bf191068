//! Use case 2: resource allocation follow-up (Uppföljning och statistik). Tallbacken
//! Utbildning AB's administrator asks for Tallbackens friskola's December figures: the
//! register's children and the data warehouse's allocation, combined; with the data
//! warehouse too slow, a partial answer that names it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::flows::{Flow, On, text};

/// GET the follow-up for `unit` and `period`; the status and the answer.
async fn follow_up(flow: &Flow, unit: &str, period: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = flow.client.get(format!(
        "{}/api/v1/follow-up/resource-allocation?schoolUnitCode={unit}&period={period}",
        flow.ingress
    ));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("the follow-up answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn run(on: On) {
    let flow = Flow::start(on, "uc2-followup").await;
    let token = flow
        .token(json!({"sub": "admin@tallbacken.example", "orgnr": "559999-9991"}))
        .await;

    // Both sources answer: Leo's grundskola and fritidshem placements, and their money.
    let (status, answer) = follow_up(&flow, "38120002", "2026-12", Some(&token)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["schoolUnit"], "Tallbackens friskola");
    assert_eq!(answer["complete"], true, "{answer}");
    let figure = |t: &str| -> Value {
        answer["figures"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["schoolType"] == t))
            .cloned()
            .unwrap_or_else(|| panic!("no {t} figures: {}", text(&answer)))
    };
    assert_eq!(figure("GR")["studentsInRegister"], 1);
    assert_eq!(figure("GR")["studentsAllocated"], 1);
    assert_eq!(figure("FTH")["studentsInRegister"], 1);
    assert!(
        figure("GR")["amount"].as_f64().is_some_and(|a| a > 0.0),
        "{answer}"
    );
    assert!(
        answer["total"].as_f64().is_some_and(|t| t > 0.0),
        "{answer}"
    );
    // Both were asked, each once.
    assert_eq!(
        flow.calls("datawarehouse", "GET", "/resource-allocations")
            .await
            .len(),
        1
    );

    // The data warehouse answers after 4 s, later than its 3 s: a partial answer, in time.
    let (status, _) = flow
        .post(
            &format!("{}/datawarehouse/_fault", flow.sandbox),
            &json!({"status": 0, "count": 1, "delay_ms": 4000}),
            None,
        )
        .await;
    assert!(status < 300);
    let started = Instant::now();
    let (status, partial) = follow_up(&flow, "38120002", "2026-12", Some(&token)).await;
    assert_eq!(status, 200, "{partial}");
    assert!(
        started.elapsed() < Duration::from_millis(3900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(partial["complete"], false);
    assert_eq!(
        partial["missing"][0]["source"], "datawarehouse",
        "{partial}"
    );
    assert!(
        partial["missing"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("did not answer within 3000 ms")),
        "{partial}"
    );
    assert_eq!(partial["total"], Value::Null);
    assert_eq!(partial["figures"][0]["studentsInRegister"], 1, "{partial}");

    // Another operator's unit, no token, a month that is not one: refused.
    let (status, problem) = follow_up(&flow, "38120001", "2026-12", Some(&token)).await;
    assert_eq!(status, 403, "{problem}");
    let (status, _) = follow_up(&flow, "38120002", "2026-12", None).await;
    assert_eq!(status, 401);
    let (status, problem) = follow_up(&flow, "38120002", "december", Some(&token)).await;
    assert_eq!(status, 422, "{problem}");
    assert!(text(&problem).contains("/period"), "{problem}");

    let openapi = flow.get(&format!("{}/openapi.json", flow.ingress)).await;
    let op = &openapi["paths"]["/api/v1/follow-up/resource-allocation"]["get"];
    let names: Vec<&str> = op["parameters"]
        .as_array()
        .map(|p| p.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["schoolUnitCode", "period"], "{op}");
    flow.assert_no_dead_letters().await;
    flow.stop(&[]).await;
}
