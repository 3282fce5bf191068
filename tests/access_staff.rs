//! Guardian access's staff and sign-in routes (issue 12; seed 002) over HTTP, in a running
//! system with its sandbox: a case officer records a guardian's approval given on paper
//! (`POST /api/v1/cases/{id}/approval/paper`, the `staff` scheme, role `case-officer`),
//! Mina sidor records a sign-in (`POST /api/v1/me/sessions`), a guardian subscribes to
//! notices of what a child submits (`/api/v1/me/subscriptions` and
//! guardian-subscription-notify on `case.opened.*`), and a study counsellor reads who
//! viewed their child's application (`GET /api/v1/reports/guardian-views`). The harness
//! configures only the `residents` scheme; in the development profile the unconfigured
//! `staff` scheme trusts the sandbox's test issuer (no audience), so staff tokens are the
//! test issuer's with `sub` and `roles`. People are the sandbox's fictional ones.

#[path = "support/access.rs"]
mod access;

use std::time::Duration;

use access::*;
use serde_json::{Value, json};

/// The school unit (Björkhagens skola, grundskola) where the test places Elin and Viktor:
/// the sandbox seeds no placement of theirs.
const SCHOOL: &str = "38120001";
/// The subject of a subscriber's notice (routes/guardian-approval-notify.yaml, `submitted`).
const SUBMITTED: &str = "Ditt barn har skickat in en ansökan";

impl Access {
    /// A token of the `staff` scheme: an employee `sub` with `roles`.
    async fn staff(&self, sub: &str, roles: &[&str]) -> String {
        self.token(json!({"sub": sub, "roles": roles})).await
    }

    /// What the sandbox's messaging received: the bodies of the calls, oldest first.
    async fn messages(&self) -> Vec<Value> {
        self.sandbox_get("/messaging/_inbox")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c["body"].clone())
            .collect()
    }

    /// The subscribers' notices of errand `number` to the person `to` (by personId).
    async fn notices(&self, number: &str, to: &str) -> Vec<Value> {
        self.messages()
            .await
            .into_iter()
            .filter(|m| {
                let text = m.to_string();
                m["party"]["partyId"] == json!(to)
                    && text.contains(SUBMITTED)
                    && text.contains(number)
            })
            .collect()
    }

    /// Waits until `to` was told of errand `number`; the notices.
    async fn notices_once(&self, number: &str, to: &str) -> Vec<Value> {
        for _ in 0..150 {
            let found = self.notices(number, to).await;
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no notice of {number} to {to}: {:?}", self.messages().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_officer_records_a_paper_approval() {
    let a = Access::start().await;
    let (elins, _) = a.leave_case(ELIN, 8101).await;
    let p = a.parameters_once(elins, "guardianApproval.status").await;
    assert_eq!(p["guardianApproval.status"], json!(["pending"]), "{p}");
    let case = format!("casedata-{elins}");
    let path = format!("/api/v1/cases/{case}/approval/paper");
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let paper = |guardian: &str| {
        json!({"guardian": guardian, "decision": "approve", "signedOn": today,
               "basis": "Blankett inkommen per post, undertecknad av 19780214-4571"})
    };
    let officer = a.staff("hl-per", &["case-officer"]).await;

    // Refused: a resident's token on the staff path, an employee without the role, a
    // guardian who was not asked. Nothing changes on the errand.
    let asa = a.signed_in(ASA).await;
    let r = a
        .call(reqwest::Method::POST, &path, &asa, Some(&paper(MIKAEL)))
        .await;
    // In development the unconfigured `staff` scheme trusts the same test issuer as
    // `residents` and asks for no audience, so a resident's token passes its signature
    // check and is refused at the door for the claim it lacks; with `staff` configured as
    // production would be it is 401 (`a_resident_token_is_not_a_staff_token`).
    assert!(
        r.is_problem(403, "claim-missing"),
        "{} {}",
        r.status,
        r.text
    );
    assert!(r.text.contains("`roles`"), "{}", r.text);
    let counsellor = a.staff("sy-eva", &["study-counsellor"]).await;
    let r = a
        .call(
            reqwest::Method::POST,
            &path,
            &counsellor,
            Some(&paper(MIKAEL)),
        )
        .await;
    assert!(r.is_problem(403, "missing-role"), "{} {}", r.status, r.text);
    assert!(
        r.text.contains("case-officer"),
        "names the role: {}",
        r.text
    );
    let r = a
        .call(reqwest::Method::POST, &path, &officer, Some(&paper(MARIA)))
        .await;
    assert!(
        r.is_problem(422, "not-among-guardians"),
        "{} {}",
        r.status,
        r.text
    );
    assert_no_personnummer("the refusal", &r.text);
    let p = a.parameters(elins).await;
    assert_eq!(p["guardianApproval.status"], json!(["pending"]), "{p}");
    assert!(p.get("guardianApproval.paper").is_none(), "{p}");

    // Mikael's paper approval: one guardian is enough for a leave application.
    let r = a
        .call(reqwest::Method::POST, &path, &officer, Some(&paper(MIKAEL)))
        .await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"caseId": case, "approval": "approved", "waitingFor": 0})
        ),
        "{}",
        r.text
    );
    let mikael_id = a.person_id(MIKAEL).await;
    let p = a.parameters(elins).await;
    assert_eq!(p["guardianApproval.status"], json!(["approved"]), "{p}");
    assert_eq!(p["guardianApproval.approvedBy"], json!([mikael_id]), "{p}");
    let recorded = p["guardianApproval.paper"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(recorded.len(), 1, "{p}");
    let record = recorded[0].as_str().expect("a text");
    assert!(
        record.starts_with(&format!("{mikael_id}|approve|{today}|")),
        "{record}"
    );
    assert_no_personnummer("the paper record", record);
    let errand = a.errand(elins).await;
    let notes: Vec<&Value> = errand["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["title"] == "Vårdnadshavares godkännande på papper")
        .collect();
    assert_eq!(notes.len(), 1, "{errand}");
    assert_eq!(notes[0]["noteType"], "INTERNAL", "{errand}");
    assert_no_personnummer("the note", &notes[0].to_string());

    // The access audit: the case officer, on Elin's behalf; the refusals too.
    let store = &a.system.store;
    let elin_hash = store.audit_hash(ELIN).expect("a hash");
    let rows = a.audit_of("staff:hl-per").await;
    assert!(
        rows.iter().any(|r| r.action == "approve-on-paper"
            && r.allowed
            && r.right.as_deref() == Some("guardian-approve")
            && r.on_behalf_of.as_deref() == Some(elin_hash.as_str())
            && r.resource.as_deref() == Some(case.as_str())),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.action == "approve-on-paper" && !r.allowed),
        "the refused guardian: {rows:?}"
    );
    let eva = a.audit_of("staff:sy-eva").await;
    assert!(
        eva.iter()
            .any(|r| r.action == "approve-on-paper" && !r.allowed),
        "the missing role: {eva:?}"
    );

    a.system.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_is_recorded() {
    let a = Access::start().await;
    let asa = a.signed_in(ASA).await;
    let r = a
        .call(reqwest::Method::POST, "/api/v1/me/sessions", &asa, None)
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""), "{}", r.text);

    let rows = a.audit_of(ASA).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (
            row.action.as_str(),
            row.right.as_deref(),
            row.allowed,
            row.route.as_str()
        ),
        ("login", Some("own"), true, "me-sessions"),
        "{row:?}"
    );
    assert!(!format!("{row:?}").contains(ASA), "{row:?}");

    a.system.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardian_subscribes_to_what_her_child_submits() {
    let a = Access::start().await;
    let (asa, maria) = (a.signed_in(ASA).await, a.signed_in(MARIA).await);
    let (asa_id, mikael_id) = (a.person_id(ASA).await, a.person_id(MIKAEL).await);

    // Viktor, as GET /api/v1/me/dependants names him.
    let (status, _, dependants) = a.get("/api/v1/me/dependants", Some(&asa)).await;
    assert_eq!(status, 200, "{dependants}");
    let viktor = dependants
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["givenname"] == "Viktor")
        .expect("Viktor")["personId"]
        .as_str()
        .expect("a personId")
        .to_string();

    let subscribe = json!({"child": viktor, "flow": "leave"});
    let r = a
        .call(
            reqwest::Method::POST,
            "/api/v1/me/subscriptions",
            &asa,
            Some(&subscribe),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let made = r.json();
    let id = made["id"].as_str().expect("an id").to_string();
    assert_eq!(
        (made["child"].clone(), made["flow"].clone()),
        (
            json!({"personId": viktor, "givenname": "Viktor"}),
            json!("leave")
        ),
        "{made}"
    );
    assert_no_personnummer("the subscription", &r.text);
    let r = a
        .call(reqwest::Method::GET, "/api/v1/me/subscriptions", &asa, None)
        .await;
    let listed = r.json();
    assert_eq!(
        listed
            .as_array()
            .map(|l| l.iter().map(|s| s["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(id)]),
        "{}",
        r.text
    );

    // Viktor applies for leave: Åsa is told, Mikael (who did not subscribe) is not.
    let (_, first) = a.leave_case(VIKTOR, 8301).await;
    let told = a.notices_once(&first, &asa_id).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_no_personnummer("the notice", &told[0].to_string());
    assert!(
        a.notices(&first, &mikael_id).await.is_empty(),
        "Mikael did not subscribe: {:?}",
        a.messages().await
    );

    // Åsa ends it; Mikael subscribes. The next application tells Mikael, not Åsa.
    let r = a
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/me/subscriptions/{id}"),
            &asa,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["ended"], true, "{}", r.text);
    let r = a
        .call(reqwest::Method::GET, "/api/v1/me/subscriptions", &asa, None)
        .await;
    assert_eq!((r.status, r.json()), (200, json!([])), "{}", r.text);
    let mikael = a.signed_in(MIKAEL).await;
    let r = a
        .call(
            reqwest::Method::POST,
            "/api/v1/me/subscriptions",
            &mikael,
            Some(&subscribe),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (_, second) = a.leave_case(VIKTOR, 8302).await;
    // Both are told (or not) by the same event: once Mikael's notice is there, Åsa's would be.
    a.notices_once(&second, &mikael_id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        a.notices(&second, &asa_id).await.is_empty(),
        "Åsa ended her subscription: {:?}",
        a.messages().await
    );

    // Maria has no custody of Elin: 404, as for a child who does not exist.
    let elin = a.person_id(ELIN).await;
    let r = a
        .call(
            reqwest::Method::POST,
            "/api/v1/me/subscriptions",
            &maria,
            Some(&json!({"child": elin, "flow": "leave"})),
        )
        .await;
    assert!(
        r.is_problem(404, "no-such-dependant"),
        "{} {}",
        r.status,
        r.text
    );

    // The access audit: Åsa's subscription on Viktor's behalf, Maria's refusal.
    let viktor_hash = a.system.store.audit_hash(VIKTOR).expect("a hash");
    let asas = a.audit_of(ASA).await;
    assert!(
        asas.iter().any(|r| r.action == "subscribe"
            && r.allowed
            && r.on_behalf_of.as_deref() == Some(viktor_hash.as_str())),
        "{asas:?}"
    );
    assert!(
        asas.iter().any(|r| r.action == "unsubscribe" && r.allowed),
        "{asas:?}"
    );
    assert!(
        a.audit_of(MARIA)
            .await
            .iter()
            .any(|r| r.action == "subscribe" && !r.allowed),
        "Maria's refusal"
    );

    a.system.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_counsellor_sees_which_guardians_viewed() {
    let a = Access::start().await;
    // The sandbox places neither child: Elin and Viktor go to Björkhagens skola.
    for child in [ELIN, VIKTOR] {
        let (status, body) = a
            .sandbox_post(
                "/elevregister/placements",
                &json!({"child": {"civicNo": child}, "placedAt": {"schoolUnitCode": SCHOOL},
                        "schoolType": "GR", "startDate": "2024-08-19"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (elins, elins_number) = a.leave_case(ELIN, 8401).await;
    a.parameters_once(elins, "guardianApproval.status").await;
    let case = format!("casedata-{elins}");

    // Åsa looks at Elin's application (twice); Mikael does not.
    let asa = a.signed_in(ASA).await;
    for _ in 0..2 {
        let (status, _, body) = a.get(&format!("/api/v1/cases/{case}"), Some(&asa)).await;
        assert_eq!(status, 200, "{body}");
    }

    let counsellor = a.staff("sy-eva", &["study-counsellor"]).await;
    let path = format!("/api/v1/reports/guardian-views?school={SCHOOL}");
    let r = a.call(reqwest::Method::GET, &path, &counsellor, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let report = r.json();
    assert_eq!(report["school"], SCHOOL, "{report}");
    let rows: Vec<&Value> = report["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["caseId"] == json!(case))
        .collect();
    let of = |given: &str| {
        rows.iter()
            .find(|row| row["guardian"]["givenname"] == given)
            .unwrap_or_else(|| panic!("no row of {given}: {report}"))
    };
    assert_eq!(rows.len(), 2, "{report}");
    let asas = of("Åsa");
    assert_eq!(asas["pupil"]["givenname"], "Elin", "{report}");
    assert_eq!(asas["reference"], json!(elins_number), "{report}");
    assert_eq!(asas["viewed"], true, "{report}");
    assert!(asas["views"].as_u64().unwrap_or(0) >= 1, "{report}");
    assert!(asas["lastViewed"].is_string(), "{report}");
    let mikaels = of("Mikael");
    assert_eq!(
        (mikaels["viewed"].clone(), mikaels["views"].clone()),
        (json!(false), json!(0)),
        "{report}"
    );
    assert_no_personnummer("the report", &r.text);

    // Refused: a case officer without the role; an unknown school.
    let officer = a.staff("hl-per", &["case-officer"]).await;
    let r = a.call(reqwest::Method::GET, &path, &officer, None).await;
    assert!(r.is_problem(403, "missing-role"), "{} {}", r.status, r.text);
    let r = a
        .call(
            reqwest::Method::GET,
            "/api/v1/reports/guardian-views?school=99999999",
            &counsellor,
            None,
        )
        .await;
    assert!(
        r.is_problem(422, "unknown-school-unit"),
        "{} {}",
        r.status,
        r.text
    );

    // The report is in the access audit, by the study counsellor.
    let rows = a.audit_of("staff:sy-eva").await;
    assert!(
        rows.iter().any(|r| r.action == "report-guardian-views"
            && r.allowed
            && r.resource.as_deref() == Some(SCHOOL)),
        "{rows:?}"
    );

    a.system.shutdown(Duration::from_secs(5)).await;
}

/// The `staff` scheme configured as production would be — the employee identity provider's
/// key set, issuer and audience (here the sandbox's test issuer and the audience
/// `knutpunkt-staff`) — beside `residents`: a resident's token (audience
/// `knutpunkt-mina-sidor`) is not a staff token, 401 at the door.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_token_is_not_a_staff_token() {
    let a =
        Access::start_with_schemes(&[("residents", AUDIENCE), ("staff", "knutpunkt-staff")]).await;
    let paper = json!({"guardian": MIKAEL, "decision": "approve", "signedOn": "2026-01-05",
                       "basis": "Blankett inkommen per post"});
    let post = async |token: String| {
        a.post(
            "/api/v1/cases/casedata-999999/approval/paper",
            &token,
            &paper,
        )
        .await
    };

    let resident = a
        .token(json!({"sub": "bankid-2463", "aud": AUDIENCE, PERSONAL_NUMBER: ASA}))
        .await;
    assert_refused(
        "a resident's token on the staff path",
        &post(resident).await,
    );
    // A staff token of that audience passes the door: the route answers (no such errand).
    let officer = a
        .token(json!({"sub": "hl-per", "aud": "knutpunkt-staff", "roles": ["case-officer"]}))
        .await;
    let (status, _, body) = post(officer).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("no-such-case"),
        "{body}"
    );

    let refused = a.audit_of("anonymous").await;
    assert!(
        refused.iter().any(|r| r.action == "refused-credentials"
            && !r.allowed
            && r.route == "case-approval-paper"),
        "{refused:?}"
    );

    a.system.shutdown(Duration::from_secs(5)).await;
}
