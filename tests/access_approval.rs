//! Guardian approval (issue 12; seed 002) over HTTP, in a running system with its sandbox:
//! case-open's announcement of a child's leave application (`case.opened.leave`, published
//! to the broker as case-open publishes it) makes guardian-rights put the errand in the
//! sandbox's case data into the state the rules give — a 14-year-old's waits for a
//! guardian's approval, a 16-year-old's gives the guardians a view only, a protected
//! 17-year-old's gives nobody anything and the case officer a note — and a guardian
//! approves through `POST /api/v1/cases/{id}/approval`. People are the sandbox's fictional
//! ones.

#[path = "support/access.rs"]
mod access;

use std::time::Duration;

use access::*;
use serde_json::{Value, json};

/// Nora Sjöberg, 17, with skyddad folkbokföring.
const NORA: &str = "200903212488";

impl Access {
    /// POST a guardian's decision: status and body.
    async fn approve(&self, case: &str, decision: &str, token: &str) -> (u16, Value) {
        let (status, _, body) = self
            .post(
                &format!("/api/v1/cases/{case}/approval"),
                token,
                &json!({"decision": decision}),
            )
            .await;
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_application_waits_for_a_guardian_and_moves_on_once_approved() {
    let a = Access::start().await;
    let (asa, mikael, maria) = (
        a.signed_in(ASA).await,
        a.signed_in(MIKAEL).await,
        a.signed_in(MARIA).await,
    );

    // Elin is 14: her application waits for one guardian's approval, both are asked.
    let (elins, _) = a.leave_case(ELIN, 7001).await;
    let p = a.parameters_once(elins, "guardianApproval.status").await;
    assert_eq!(p["guardianRights"], json!(["approve"]), "{p}");
    assert_eq!(p["guardianApproval.status"], json!(["pending"]), "{p}");
    let (asa_id, mikael_id) = (a.person_id(ASA).await, a.person_id(MIKAEL).await);
    let mut asked: Vec<String> =
        serde_json::from_value(p["guardianApproval.guardians"].clone()).expect("personIds");
    asked.sort();
    let mut want = vec![asa_id.clone(), mikael_id.clone()];
    want.sort();
    assert_eq!(asked, want, "{p}");
    // Viktor is 16: a view, nothing to approve. Nora is protected: nothing, and a note.
    let (viktors, _) = a.leave_case(VIKTOR, 7002).await;
    let p = a.parameters_once(viktors, "guardianRights").await;
    assert_eq!(p["guardianRights"], json!(["view"]), "{p}");
    assert!(p.get("guardianApproval.status").is_none(), "{p}");
    let (noras, _) = a.leave_case(NORA, 7003).await;
    let p = a.parameters_once(noras, "guardianRights").await;
    assert_eq!(p["guardianRights"], json!(["none-protected"]), "{p}");
    let nora = a.errand(noras).await;
    assert_eq!(nora["notes"][0]["noteType"], "INTERNAL", "{nora}");

    // The 16-year-old's guardian can view but not change anything; another person gets 404.
    let viktor_case = format!("casedata-{viktors}");
    let (status, body) = a.approve(&viktor_case, "approve", &asa).await;
    assert_eq!(
        (
            status,
            body["type"]
                .as_str()
                .unwrap_or_default()
                .ends_with("not-an-approver")
        ),
        (403, true),
        "{body}"
    );
    let (status, _, case) = a
        .get(&format!("/api/v1/cases/{viktor_case}"), Some(&asa))
        .await;
    assert_eq!(
        (status, case["right"].clone()),
        (200, json!("guardian-view")),
        "{case}"
    );
    let elin_case = format!("casedata-{elins}");
    let (status, body) = a.approve(&elin_case, "approve", &maria).await;
    assert_eq!(status, 404, "{body}");
    let p = a.parameters_once(elins, "guardianApproval.status").await;
    assert_eq!(p["guardianApproval.status"], json!(["pending"]), "{p}");

    // Mikael approves: the errand moves on; a second answer finds nothing waiting.
    let (status, body) = a.approve(&elin_case, "approve", &mikael).await;
    assert_eq!(
        (status, body.clone()),
        (
            200,
            json!({"caseId": elin_case, "approval": "approved", "waitingFor": 0})
        )
    );
    let p = a.parameters_once(elins, "guardianApproval.status").await;
    assert_eq!(p["guardianApproval.status"], json!(["approved"]), "{p}");
    assert_eq!(p["guardianApproval.approvedBy"], json!([mikael_id]), "{p}");
    let (status, body) = a.approve(&elin_case, "reject", &asa).await;
    assert_eq!(status, 409, "{body}");

    // The guardians were asked and, once it was decided, told; no message names the child
    // by personnummer.
    let mut told = Vec::new();
    for _ in 0..100 {
        let inbox = a.sandbox_get("/messaging/_inbox").await;
        told = inbox.as_array().cloned().unwrap_or_default();
        if told
            .iter()
            .any(|c| c["body"]["subject"] == "Ansökan godkänd av vårdnadshavare")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let asked = told
        .iter()
        .filter(|c| c["body"]["subject"] == "Ditt godkännande behövs")
        .count();
    assert_eq!(asked, 2, "{told:?}");
    assert!(
        told.iter()
            .any(|c| c["body"]["subject"] == "Ansökan godkänd av vårdnadshavare"),
        "{told:?}"
    );
    let text = serde_json::to_string(&told).expect("JSON");
    for p in [ELIN, VIKTOR, NORA] {
        assert!(
            !text.contains(&p[2..8]),
            "a message holds a personnummer: {text}"
        );
    }

    // The access audit: Mikael's approval on Elin's behalf, Åsa's and Maria's refusals.
    let store = &a.system.store;
    let elin_hash = store.audit_hash(ELIN).expect("a hash");
    let mikaels = a.audit_of(MIKAEL).await;
    assert!(
        mikaels.iter().any(|r| r.action == "approve"
            && r.allowed
            && r.right.as_deref() == Some("guardian-approve")
            && r.on_behalf_of.as_deref() == Some(elin_hash.as_str())
            && r.resource.as_deref() == Some(elin_case.as_str())),
        "{mikaels:?}"
    );
    let asas = a.audit_of(ASA).await;
    let refused: Vec<(&str, Option<&str>)> = asas
        .iter()
        .filter(|r| !r.allowed)
        .map(|r| (r.action.as_str(), r.resource.as_deref()))
        .collect();
    assert_eq!(
        refused,
        vec![
            ("reject", Some(elin_case.as_str())),
            ("approve", Some(viktor_case.as_str()))
        ],
        "newest first"
    );
    assert!(
        a.audit_of(MARIA)
            .await
            .iter()
            .any(|r| r.action == "approve" && !r.allowed),
        "Maria's refusal"
    );

    a.system.shutdown(Duration::from_secs(5)).await;
}
