//! Use case 6: school choice (OeP family 415). Fatima Hassan chooses Tallbackens friskola
//! (full) first and Björkhagens skola second for Yusuf: he is placed at Björkhagen. Anna
//! Lindqvist chooses only Tallbacken for Olle: rejected.

use serde_json::{Value, json};

use crate::flows::{Flow, On, patch_file, text};

const YUSUF: &str = "20150369-2715";
const OLLE: &str = "20180103-4115";

/// Submit a FlowInstance to the simulated OeP, pushed to Knutpunkt; its FlowInstanceID.
pub async fn submit(flow: &Flow, xml: String) -> u64 {
    let (status, answer) = flow
        .post_bytes(
            &format!("{}/oep/_submit?push=true", flow.sandbox),
            "application/xml",
            xml.into_bytes(),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["pushed"]["status"], 202, "{answer}");
    answer["flowInstanceID"].as_u64().expect("an id")
}

/// Wait until `check` holds for the sandbox document at `url`; return it.
pub async fn wait_for(flow: &Flow, url: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let v = flow.get(url).await;
        if check(&v) {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{what}: {}\n--- knut log ---\n{}",
                text(&v),
                flow.knut.log_tail()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The errand of external case `external` once it exists.
pub async fn errand(flow: &Flow, external: &str) -> Value {
    let url = format!(
        "{}/casedata/2281/SBK_SCHOOL/errands?filter=externalCaseId:'{external}'",
        flow.sandbox
    );
    let page = wait_for(flow, &url, &format!("the errand of {external}"), |p| {
        p["content"].as_array().is_some_and(|c| !c.is_empty())
    })
    .await;
    page["content"][0].clone()
}

/// OeP instance `id` once `check` holds for it.
pub async fn oep_instance(
    flow: &Flow,
    id: u64,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let url = format!("{}/oep/_instances", flow.sandbox);
    let all = wait_for(flow, &url, what, |all| {
        all.as_array()
            .and_then(|a| a.iter().find(|i| i["flowInstanceID"] == id))
            .is_some_and(&check)
    })
    .await;
    all.as_array()
        .and_then(|a| a.iter().find(|i| i["flowInstanceID"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

pub async fn run(on: On) {
    let flow = Flow::start_with(on, "uc6-school-choice", |root| {
        patch_file(
            root,
            "routes/school-choice-decisions-poll.yaml",
            "every: 1m",
            "every: 1s",
        );
    })
    .await;
    let fixture =
        std::fs::read_to_string(crate::root::repo().join("tests/fixtures/oep/school-choice.xml"))
            .expect("fixture");
    let yusuf = submit(&flow, fixture.clone()).await;
    let olle_xml = fixture
        .replace("Yusuf", "Olle")
        .replace(
            "<![CDATA[Hassan]]>\n\t\t\t</Efternamn>",
            "<![CDATA[Lindqvist]]>\n\t\t\t</Efternamn>",
        )
        .replace(YUSUF, OLLE)
        .replace("Fatima", "Anna")
        .replace("19881130-2465", "19850312-2387")
        .replace("<Value>38120001</Value>", "<Value></Value>");
    let olle = submit(&flow, olle_xml).await;

    // A case each, and an application each in the school-choice module, referring to it.
    let case_yusuf = errand(&flow, &format!("OEP-415-{yusuf}")).await;
    let case_olle = errand(&flow, &format!("OEP-415-{olle}")).await;
    assert_eq!(case_yusuf["caseType"], "SCHOOL_CHOICE");
    let applications = flow
        .wait_calls("skolval", "POST", "/applications", 2, 30)
        .await;
    let sent_for = |child: &str| {
        applications
            .iter()
            .find(|a| a["body"]["child"]["civicNo"] == child)
            .cloned()
            .unwrap_or_else(|| panic!("no application for a child: {}", text(&json!(applications))))
    };
    let a = sent_for(YUSUF);
    assert_eq!(a["body"]["reference"]["errandId"], case_yusuf["id"]);
    assert_eq!(
        a["body"]["choices"],
        json!([{"schoolUnitCode": "38120002", "rank": 1}, {"schoolUnitCode": "38120001", "rank": 2}])
    );
    assert_eq!(
        sent_for(OLLE)["body"]["choices"].as_array().map(Vec::len),
        Some(1)
    );

    // The module's placement run decides both; Knutpunkt polls the decisions.
    let (status, run) = flow
        .post(
            &format!("{}/skolval/_process", flow.sandbox),
            &json!({}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["decided"].as_array().map(Vec::len), Some(2), "{run}");

    // Case management gets the decisions; elevregister the placement; OeP the answers.
    for case in [&case_yusuf, &case_olle] {
        let url = format!(
            "{}/casedata/2281/SBK_SCHOOL/errands/{}",
            flow.sandbox, case["id"]
        );
        wait_for(&flow, &url, "the module's decision on the errand", |e| {
            e["decisions"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await;
    }
    let placements = flow
        .wait_calls("elevregister", "POST", "/placements", 1, 30)
        .await;
    assert_eq!(placements.len(), 1, "{}", text(&json!(placements)));
    assert_eq!(placements[0]["body"]["child"]["civicNo"], YUSUF);
    assert_eq!(
        placements[0]["body"]["placedAt"]["schoolUnitCode"],
        "38120001"
    );
    assert_eq!(placements[0]["body"]["schoolType"], "GR");
    assert_eq!(placements[0]["body"]["startDate"], "2027-08-16");
    let i = oep_instance(&flow, yusuf, "Yusuf's answer", |i| {
        i["status"] == "Beviljad" && i["messages"].as_array().is_some_and(|m| !m.is_empty())
    })
    .await;
    let message = i["messages"][0].as_str().unwrap_or_default();
    assert!(message.contains("Björkhagens skola"), "{message}");
    assert!(!message.contains("2715"), "{message}");
    oep_instance(&flow, olle, "Olle's answer", |i| i["status"] == "Avslagen").await;
    let errand_olle = flow
        .get(&format!(
            "{}/casedata/2281/SBK_SCHOOL/errands/{}",
            flow.sandbox, case_olle["id"]
        ))
        .await;
    assert_eq!(errand_olle["decisions"][0]["decisionOutcome"], "REJECTION");

    // Once each: the polls that follow record no second decision.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let errand_yusuf = flow
        .get(&format!(
            "{}/casedata/2281/SBK_SCHOOL/errands/{}",
            flow.sandbox, case_yusuf["id"]
        ))
        .await;
    assert_eq!(errand_yusuf["decisions"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        flow.calls("skolval", "POST", "/applications").await.len(),
        2
    );
    assert_eq!(
        flow.calls("elevregister", "POST", "/placements")
            .await
            .len(),
        1
    );
    flow.assert_no_dead_letters().await;
    flow.stop(&[YUSUF, OLLE]).await;
}
