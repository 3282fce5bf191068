//! Use case 3: a leave application (OeP family 412). Anna Lindqvist applies for her
//! daughter Märta (13, Björkhagens skola); the case officer grants it. Leo Nilsson's
//! application, seeded in OeP and polled at start, is rejected.

use serde_json::{Value, json};

use crate::flows::{Flow, On, parameters, text};

const MARTA: &str = "20130412-2383";
const LEO: &str = "20160220-1319";

/// The errand made from OeP instance `id` (the first POST of it), waiting for it.
async fn errand_of(flow: &Flow, id: &str) -> Value {
    let external = format!("OEP-412-{id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let page = flow
            .get(&format!(
                "{}/casedata/2281/SBK_SCHOOL/errands?filter=externalCaseId:'{external}'",
                flow.sandbox
            ))
            .await;
        if let Some(e) = page["content"].as_array().and_then(|c| c.first()) {
            return e.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no errand for {external}\n{}",
            flow.knut.log_tail()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Wait until the errand has the basis written by leave-application-basis.
async fn with_basis(flow: &Flow, id: &str) -> Value {
    for _ in 0..200 {
        let e = errand_of(flow, id).await;
        if parameters(&e).contains_key("basis.ofAge") {
            return e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!(
        "no decision basis on the errand of {id}\n{}",
        flow.knut.log_tail()
    );
}

/// The OeP instance as the sandbox shows it.
async fn instance(flow: &Flow, id: u64) -> Value {
    let all = flow.get(&format!("{}/oep/_instances", flow.sandbox)).await;
    all.as_array()
        .and_then(|a| a.iter().find(|i| i["flowInstanceID"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Wait until OeP instance `id` satisfies `ok`.
async fn wait_instance(flow: &Flow, id: u64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let i = instance(flow, id).await;
        if ok(&i) {
            return i;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!(
        "OeP instance {id}: {what}: {}\n{}",
        text(&instance(flow, id).await),
        flow.knut.log_tail()
    );
}

pub async fn run(on: On) {
    let flow = Flow::start_with(on, "uc3-leave", |root| {
        crate::flows::patch_file(
            root,
            "routes/oep-leave-applications-poll.yaml",
            "every: 1m",
            "every: 1s",
        );
    })
    .await;

    // Anna submits the application. Its ISO-8859-1 export reaches Knutpunkt by OeP's push
    // and by the next poll (every second here) — and makes one case.
    // Posted now, so that it is newer than the watermark the first poll left (the seed's).
    let fixture =
        std::fs::read(crate::root::repo().join("tests/fixtures/oep/leave-application-latin1.xml"))
            .expect("fixture");
    let posted = b"<Posted>2026-11-02T08:14:55</Posted>";
    let at = fixture
        .windows(posted.len())
        .position(|w| w == posted)
        .expect("the fixture's Posted");
    let now = chrono::Local::now().format("<Posted>%Y-%m-%dT%H:%M:%S</Posted>");
    let export = [
        &fixture[..at],
        now.to_string().as_bytes(),
        &fixture[at + posted.len()..],
    ]
    .concat();
    let (status, answer) = flow
        .post_bytes(
            &format!("{}/oep/_submit", flow.sandbox),
            "application/xml",
            export.clone(),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    // OeP's push, sent twice at once (a retried webhook): the same instance three times.
    // It comes in on the external plane, with OeP's credential (in development the
    // sandbox issuer's token); without it, it is refused at the door.
    let ingress = format!("{}/in/oep/flowinstances", flow.external_ingress);
    let (refused, problem) = flow
        .post_bytes(&ingress, "application/xml", export.clone())
        .await;
    assert_eq!(refused, 401, "{problem}");
    let oep = flow.token(serde_json::json!({"sub": "oep"})).await;
    let ((first, a), (second, b)) = tokio::join!(
        flow.post_bytes_as(&ingress, "application/xml", export.clone(), Some(&oep)),
        flow.post_bytes_as(&ingress, "application/xml", export.clone(), Some(&oep)),
    );
    assert_eq!((first, second), (202, 202), "{a} {b}");
    // Both ways in before the case officer decides (the decision takes the instance out
    // of the polled status).
    flow.wait_calls(
        "oep",
        "GET",
        "/api/instanceapi/getinstance/90017/xml",
        1,
        20,
    )
    .await;

    // One case, with the decision basis from elevregister: Märta is 13, not of age.
    let errand = with_basis(&flow, "90017").await;
    assert_eq!(errand["caseType"], "LEAVE_OF_ABSENCE");
    let p = parameters(&errand);
    assert_eq!(p["student.civicNo"], MARTA);
    assert_eq!(p["basis.ofAge"], "false");
    assert_eq!(p["basis.age"], "13");
    assert_eq!(p["basis.registered"], "true");
    assert_eq!(p["basis.schoolUnit"], "Björkhagens skola");
    assert_eq!(p["basis.guardians"], "2");
    let errand_id = errand["id"].as_u64().expect("errand id");
    let number = errand["errandNumber"]
        .as_str()
        .expect("errand number")
        .to_string();
    // OeP knows it was delivered, under the errand number.
    wait_instance(&flow, 90017, "delivered", |i| {
        i["delivered"] == true && i["externalID"] == number.as_str()
    })
    .await;

    // The case officer grants it; case management tells Knutpunkt.
    let (status, decided) = flow
        .post(
            &format!("{}/casedata/_decide", flow.sandbox),
            &json!({"errandId": errand_id, "outcome": "APPROVAL", "description": "Beviljas, skolan informerad."}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{decided}");
    assert_eq!(decided["announced"]["status"], 202, "{decided}");

    // Lärplattform, elevregister and the e-service each get it.
    let shown = flow
        .wait_calls("larplattform", "POST", "/leaveDecisions", 1, 30)
        .await;
    assert_eq!(shown[0]["body"]["student"]["civicNo"], MARTA);
    assert_eq!(shown[0]["body"]["decision"], "approval");
    assert_eq!(shown[0]["body"]["reference"], number.as_str());
    let absences = flow
        .wait_calls("elevregister", "POST", "/absences", 1, 30)
        .await;
    assert_eq!(absences[0]["body"]["type"], "Beviljad ledighet");
    assert_eq!(
        absences[0]["body"]["startTime"],
        "2027-02-15T00:00:00+01:00"
    );
    assert_eq!(absences[0]["body"]["endTime"], "2027-02-17T23:59:59+01:00");
    let i = wait_instance(&flow, 90017, "status Beviljad and a message", |i| {
        i["status"] == "Beviljad" && i["messages"].as_array().is_some_and(|m| !m.is_empty())
    })
    .await;
    let message = i["messages"][0].as_str().unwrap_or_default();
    assert!(
        message.contains("beviljad") && message.contains(&number),
        "{message}"
    );
    assert!(
        !message.contains("2383"),
        "no personnummer in the message: {message}"
    );

    // Case management announcing the same decision again changes nothing.
    let token = flow.token(json!({"sub": "casedata"})).await;
    let event = json!({"event": "DECISION_CREATED", "municipalityId": "2281", "namespace": "SBK_SCHOOL",
                       "errandId": errand_id, "decisionId": decided["decision"]["id"]});
    let (status, _) = flow
        .post(
            &format!("{}/in/casedata/decisions", flow.ingress),
            &event,
            Some(&token),
        )
        .await;
    assert_eq!(status, 202);
    // Without case management's token, or with a broken event: refused at the door.
    let (status, _) = flow
        .post(
            &format!("{}/in/casedata/decisions", flow.ingress),
            &event,
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, problem) = flow
        .post(
            &format!("{}/in/casedata/decisions", flow.ingress),
            &json!({"event": "DECISION_CREATED", "errandId": "seven"}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 422, "{problem}");

    // Leo's application was seeded in OeP (instance 5001) and polled at start: rejected.
    let leo = with_basis(&flow, "5001").await;
    assert_eq!(parameters(&leo)["student.civicNo"], LEO);
    let (status, decided) = flow
        .post(
            &format!("{}/casedata/_decide", flow.sandbox),
            &json!({"errandId": leo["id"], "outcome": "REJECTION", "description": "Tävlingen ligger under nationella prov."}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{decided}");
    wait_instance(&flow, 5001, "status Avslagen", |i| {
        i["status"] == "Avslagen"
    })
    .await;
    let shown = flow
        .wait_calls("larplattform", "POST", "/leaveDecisions", 2, 30)
        .await;
    assert_eq!(shown[1]["body"]["decision"], "rejection");

    // Exactly once: one errand per application, one absence (a rejection registers none),
    // one message per decision.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let opened: Vec<Value> = flow
        .calls("casedata", "POST", "/2281/SBK_SCHOOL/errands")
        .await
        .into_iter()
        .filter(|c| c["body"]["externalCaseId"] == "OEP-412-90017")
        .collect();
    assert_eq!(
        opened.len(),
        1,
        "pushed twice and polled, one case: {} errands",
        opened.len()
    );
    assert_eq!(
        flow.calls("elevregister", "POST", "/absences").await.len(),
        1
    );
    assert_eq!(
        flow.calls("larplattform", "POST", "/leaveDecisions")
            .await
            .len(),
        2
    );
    assert_eq!(
        instance(&flow, 90017).await["messages"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let openapi = flow.get(&format!("{}/openapi.json", flow.ingress)).await;
    assert!(openapi["paths"]["/in/casedata/decisions"]["post"].is_object());
    // The planes' ingresses serve their own routes only.
    assert!(openapi["paths"]["/in/oep/flowinstances"].is_null());
    let external = flow
        .get(&format!("{}/openapi.json", flow.external_ingress))
        .await;
    assert!(external["paths"]["/in/oep/flowinstances"]["post"].is_object());
    assert!(external["paths"]["/in/casedata/decisions"].is_null());
    flow.assert_no_dead_letters().await;
    flow.stop(&[MARTA, LEO]).await;
}
