//! Use case 7: adult education in another municipality (IKE, OeP family 420). Noah
//! Karlsson (20, Sundsvall) applies to read Svenska 3 in Timrå: approved, so Timrå is told
//! Sundsvall pays. Johan Berg's application is rejected.

use serde_json::{Value, json};

use crate::flows::{Flow, On, parameters, text};
use crate::school_choice::{errand, oep_instance, submit, wait_for};

const NOAH: &str = "20060514-3353";
const JOHAN: &str = "19800101-9317";

/// Errand `id` once it has the extra parameter `key`.
async fn errand_with(flow: &Flow, id: &Value, key: &str) -> Value {
    let url = format!("{}/casedata/2281/SBK_SCHOOL/errands/{id}", flow.sandbox);
    wait_for(flow, &url, &format!("the errand's {key}"), |e| {
        parameters(e).contains_key(key)
    })
    .await
}

pub async fn run(on: On) {
    let flow = Flow::start(on, "uc7-ike").await;
    let fixture =
        std::fs::read_to_string(crate::root::repo().join("tests/fixtures/oep/ike-application.xml"))
            .expect("fixture");
    let noah = submit(&flow, fixture.clone()).await;
    let johan = submit(
        &flow,
        fixture
            .replace("Noah", "Johan")
            .replace("Karlsson", "Berg")
            .replace("noah.karlsson", "johan.berg")
            .replace(NOAH, JOHAN),
    )
    .await;

    // The case, its basis and its registration in the diarium, written back.
    let case = errand(&flow, &format!("OEP-420-{noah}")).await;
    assert_eq!(case["caseType"], "IKE");
    let with_basis = errand_with(&flow, &case["id"], "basis.ofAge").await;
    let p = parameters(&with_basis);
    assert_eq!(p["basis.ofAge"], "true");
    assert_eq!(p["basis.homeMunicipality"], "2281");
    assert_eq!(p["basis.residentOfSundsvall"], "true");
    assert_eq!(p["basis.currentAdultEducation"], "Sundsvalls lärcenter");
    let registered = errand_with(&flow, &case["id"], "diarienummer").await;
    let diarienummer = parameters(&registered)["diarienummer"]
        .as_str()
        .expect("a diarienummer")
        .to_string();
    assert!(diarienummer.starts_with("BUN 20"), "{diarienummer}");
    let registrations = flow
        .wait_calls("diarium", "POST", "/registrations", 2, 30)
        .await;
    let noahs = registrations
        .iter()
        .find(|r| r["body"]["caseReference"] == case["errandNumber"])
        .cloned()
        .unwrap_or_else(|| panic!("{}", text(&json!(registrations))));
    assert_eq!(noahs["body"]["documentType"], "Ansökan");

    // Approved: e-mail, elevregister, e-service, the other municipality, the diarium.
    let (status, decided) = flow
        .post(
            &format!("{}/casedata/_decide", flow.sandbox),
            &json!({"errandId": case["id"], "outcome": "APPROVAL", "description": "Kursen ges inte i Sundsvall i vår."}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{decided}");
    let mails = flow
        .wait_calls_where(
            "messaging",
            "POST",
            "/2281/email",
            |m| m["body"]["emailAddress"] == "noah.karlsson@exempel.se",
            1,
            30,
        )
        .await;
    let mail = mails
        .iter()
        .find(|m| m["body"]["emailAddress"] == "noah.karlsson@exempel.se")
        .cloned()
        .unwrap_or_else(|| panic!("{}", text(&json!(mails))));
    let message = mail["body"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("beviljad") && message.contains("Svenska 3"),
        "{message}"
    );
    assert!(!message.contains("3353"), "{message}");
    let placements = flow
        .wait_calls("elevregister", "POST", "/placements", 1, 30)
        .await;
    assert_eq!(placements[0]["body"]["child"]["civicNo"], NOAH);
    assert_eq!(
        placements[0]["body"]["placedAt"]["schoolUnitCode"],
        "22620001"
    );
    assert_eq!(placements[0]["body"]["schoolType"], "VUX");
    assert_eq!(placements[0]["body"]["endDate"], "2027-06-04");
    let notices = flow
        .wait_calls("hemkommun", "POST", "/ike-notices", 1, 30)
        .await;
    assert_eq!(notices[0]["body"]["homeMunicipality"], "2281");
    assert_eq!(
        notices[0]["body"]["decisionReference"],
        diarienummer.as_str()
    );
    let (year, number) = diarienummer
        .rsplit_once(' ')
        .and_then(|(_, yn)| yn.split_once('/'))
        .expect("BUN YYYY/NNNNN");
    flow.wait_calls(
        "diarium",
        "POST",
        &format!("/registrations/{year}/{number}/documents"),
        1,
        30,
    )
    .await;
    oep_instance(&flow, noah, "Noah's answer", |i| {
        i["status"] == "Beviljad" && i["messages"].as_array().is_some_and(|m| !m.is_empty())
    })
    .await;

    // Johan's is rejected: told, but neither the register nor Timrå hears of it.
    let case_johan = errand(&flow, &format!("OEP-420-{johan}")).await;
    errand_with(&flow, &case_johan["id"], "diarienummer").await;
    let (status, _) = flow
        .post(
            &format!("{}/casedata/_decide", flow.sandbox),
            &json!({"errandId": case_johan["id"], "outcome": "REJECTION", "description": "Kursen ges i Sundsvall."}),
            None,
        )
        .await;
    assert_eq!(status, 201);
    oep_instance(&flow, johan, "Johan's answer", |i| {
        i["status"] == "Avslagen"
    })
    .await;
    let mails = flow
        .wait_calls_where(
            "messaging",
            "POST",
            "/2281/email",
            |m| m["body"]["emailAddress"] == "johan.berg@exempel.se",
            1,
            30,
        )
        .await;
    assert!(mails.iter().any(|m| {
        m["body"]["emailAddress"] == "johan.berg@exempel.se"
            && m["body"]["message"]
                .as_str()
                .is_some_and(|t| t.contains("avslagen"))
    }));
    let documents = |all: &[Value]| {
        all.iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/documents"))
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while documents(&flow.calls("diarium", "POST", "/registrations").await) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rejection's document"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Once each.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let all = flow.calls("diarium", "POST", "/registrations").await;
    assert_eq!(
        all.len() - documents(&all),
        2,
        "one registration per application: {}",
        text(&json!(all))
    );
    assert_eq!(documents(&all), 2, "one decision document per case");
    assert_eq!(
        flow.calls("hemkommun", "POST", "/ike-notices").await.len(),
        1
    );
    assert_eq!(
        flow.calls("elevregister", "POST", "/placements")
            .await
            .len(),
        1
    );
    flow.assert_no_dead_letters().await;
    flow.stop(&[NOAH, JOHAN]).await;
}
