//! Every operation of every shipped adapter (`adapters/*.yaml`) against its simulation in
//! the sandbox: the real adapter files, the real HTTP client, the sandbox served on a free
//! port. Each case says what the system answered and what it received (its `_inbox`). A new
//! operation without a case here fails `every_operation_has_a_case`.
//!
//! Also here: fault injection (`_fault`) seen through an adapter, and a SOAP fault from the
//! OeP callback becoming an error with the fault's text.

mod support;

use std::collections::BTreeSet;

use knut_sandbox::seed::id_for;
use knutpunkt::core::effects::AdapterResponse;
use knutpunkt::core::envelope::{Body, Envelope};
use knutpunkt::core::error::FailureKind;
use serde_json::{Value, json};
use support::sandboxed::world;

fn json_of(r: &AdapterResponse) -> &Value {
    match &r.body {
        Body::Json(v) => v,
        other => panic!("not JSON: {other:?}"),
    }
}

const MARTA: &str = "201304122383";

/// Every (adapter, operation) the cases below exercise.
const CASES: &[(&str, &str)] = &[
    ("arkiv", "archive-package"),
    ("arkiv", "get-package"),
    ("casedata", "create-errand"),
    ("casedata", "get-errand"),
    ("casedata", "list-errands"),
    ("casedata", "update-errand"),
    ("citizen", "get-person"),
    ("citizen", "get-person-id"),
    ("citizen", "get-persons"),
    ("citizen", "changed-addresses"),
    ("csn", "list-deliveries"),
    ("csn", "get-delivery"),
    ("datawarehouse", "get-allocation"),
    ("diarium", "register"),
    ("diarium", "get-registration"),
    ("diarium", "add-document"),
    ("hemkommun", "notify-ike"),
    ("hemkommun", "get-notice"),
    ("skolval", "submit-application"),
    ("skolval", "get-application"),
    ("skolval", "decide"),
    ("skolval", "list-decisions"),
    ("verksamhetsplanering", "report-attendance"),
    ("verksamhetsplanering", "get-attendance"),
    ("elevregister", "update-placement"),
    ("elevregister", "get-person"),
    ("elevregister", "find-person"),
    ("elevregister", "find-dependants"),
    ("elevregister", "list-organisations"),
    ("elevregister", "find-school-unit"),
    ("elevregister", "add-placement"),
    ("elevregister", "add-absence"),
    ("elevregister", "list-absences"),
    ("casedata", "find-errand"),
    ("casedata", "find-errand-by-id"),
    ("casedata", "list-person-errands"),
    ("casedata", "open-errand"),
    ("casedata", "update-extra-parameters"),
    ("casedata", "add-decision"),
    ("casedata", "add-note"),
    ("elevregister", "list-placements"),
    ("elevregister", "get-group"),
    ("elevregister", "register-grade"),
    ("elevregister", "list-grades"),
    ("elevregister", "create-grade-catalogue"),
    ("elevregister", "signing-keys"),
    ("larplattform", "list-attendances"),
    ("larplattform", "list-attendances-with-lessons"),
    ("larplattform", "list-lessons-of-day"),
    ("larplattform", "get-calendar-event"),
    ("larplattform", "list-grades"),
    ("larplattform", "send-leave-decision"),
    ("larplattform", "send-signed-grades"),
    ("messaging", "send-email"),
    ("messaging", "send-sms"),
    ("messaging", "send-webmessage"),
    ("messaging", "send-letter"),
    ("messaging", "get-status"),
    ("minaombud", "search-fullmakter"),
    ("minaombud", "get-fullmakt"),
    ("oep", "list-instances"),
    ("oep", "list-instances-recent"),
    ("oep", "get-instance"),
    ("oep", "get-instance-status"),
    ("oep", "set-status"),
    ("oep", "add-message"),
    ("oep", "add-internal-message"),
    ("oep", "confirm-delivery"),
    ("oep-integrator", "list-party-cases"),
];

#[test]
fn every_operation_has_a_case() {
    let shipped: BTreeSet<(String, String)> = support::sandboxed::adapters("http://127.0.0.1:9")
        .values()
        .flat_map(|a| {
            a.spec
                .operations
                .keys()
                .map(|op| (a.spec.adapter.clone(), op.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let tested: BTreeSet<(String, String)> = CASES
        .iter()
        .map(|(a, o)| (a.to_string(), o.to_string()))
        .collect();
    let untested: Vec<_> = shipped.difference(&tested).collect();
    let stale: Vec<_> = tested.difference(&shipped).collect();
    assert!(
        untested.is_empty(),
        "operations without a test case: {untested:?}"
    );
    assert!(
        stale.is_empty(),
        "cases of operations that no longer exist: {stale:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casedata_operations() {
    let w = world().await;
    let r = w
        .call(
            "casedata",
            "create-errand",
            json!({"caseType": "PLACEMENT_CHANGE", "description": "Ändrad omfattning"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let sent = w.last("casedata");
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/2281/SBK_SCHOOL/errands");
    assert_eq!(sent.body.unwrap()["caseType"], "PLACEMENT_CHANGE");

    let page = w.call("casedata", "list-errands", json!({})).await;
    let id = json_of(&page)["content"][0]["id"].clone();
    assert!(!id.is_null(), "{:?}", json_of(&page));

    let r = w
        .call(
            "casedata",
            "update-errand",
            json!({"errandId": id, "externalCaseId": "BUN 2026/00042"}),
        )
        .await;
    assert_eq!(r.status, 204);
    let sent = w.last("casedata");
    assert_eq!(sent.method, "PATCH");
    assert_eq!(
        sent.body.unwrap(),
        json!({"externalCaseId": "BUN 2026/00042"})
    );

    let got = w
        .call("casedata", "get-errand", json!({"errandId": id}))
        .await;
    assert_eq!(json_of(&got)["externalCaseId"], "BUN 2026/00042");
    assert_eq!(json_of(&got)["caseType"], "PLACEMENT_CHANGE");

    // A case opened once: found by its external id afterwards, its id from the Location.
    let none = w
        .call(
            "casedata",
            "find-errand",
            json!({"externalCaseId": "OEP-412-7"}),
        )
        .await;
    assert_eq!(json_of(&none)["content"], json!([]));
    let opened = w
        .call(
            "casedata",
            "open-errand",
            json!({"flow": "leave", "errand": {"caseType": "LEAVE_OF_ABSENCE", "externalCaseId": "OEP-412-7",
                   "extraParameters": [{"key": "flow", "values": ["leave"]}]}}),
        )
        .await;
    let errand_id = json_of(&opened)["errandId"]
        .as_u64()
        .expect("errandId from Location");
    assert_eq!(
        w.last("casedata").body.unwrap(),
        json!({"caseType": "LEAVE_OF_ABSENCE", "externalCaseId": "OEP-412-7",
               "extraParameters": [{"key": "flow", "values": ["leave"]}]})
    );
    let found = w
        .call(
            "casedata",
            "find-errand",
            json!({"externalCaseId": "OEP-412-7"}),
        )
        .await;
    assert_eq!(json_of(&found)["content"][0]["id"], errand_id);
    assert!(w.last("casedata").path.contains("filter=externalCaseId"));
    // An errand by its id: a page with it, or an empty one when there is none.
    let by_id = w
        .call(
            "casedata",
            "find-errand-by-id",
            json!({"errandId": errand_id}),
        )
        .await;
    assert_eq!(json_of(&by_id)["content"][0]["id"], errand_id);
    assert_eq!(json_of(&by_id)["content"].as_array().map(Vec::len), Some(1));
    let no_such = w
        .call(
            "casedata",
            "find-errand-by-id",
            json!({"errandId": 999_999}),
        )
        .await;
    assert_eq!(json_of(&no_such)["content"], json!([]));

    let params = w
        .call(
            "casedata",
            "update-extra-parameters",
            json!({"errandId": errand_id, "parameters": [{"key": "basis.ofAge", "values": ["false"]},
                                                         {"key": "flow", "values": ["leave"]}]}),
        )
        .await;
    assert_eq!(
        *json_of(&params),
        json!([{"key": "flow", "values": ["leave"]}, {"key": "basis.ofAge", "values": ["false"]}])
    );

    let decided = w
        .call(
            "casedata",
            "add-decision",
            json!({"errandId": errand_id, "decision": {"decisionType": "FINAL", "decisionOutcome": "APPROVAL"}}),
        )
        .await;
    assert_eq!(decided.status, 201);
    let decision_id = json_of(&decided)["decisionId"].clone();
    let errand = w
        .call("casedata", "get-errand", json!({"errandId": errand_id}))
        .await;
    assert_eq!(json_of(&errand)["decisions"][0]["id"], decision_id);
    assert_eq!(
        json_of(&errand)["decisions"][0]["decisionOutcome"],
        "APPROVAL"
    );
    assert_eq!(json_of(&errand)["status"]["statusType"], "Beslutad");

    let noted = w
        .call(
            "casedata",
            "add-note",
            json!({"errandId": errand_id, "note": {"title": "Vårdnadshavare", "noteType": "INTERNAL",
                   "text": "Inga rättigheter för vårdnadshavare har skapats."}}),
        )
        .await;
    assert_eq!(noted.status, 201);
    let errand = w
        .call("casedata", "get-errand", json!({"errandId": errand_id}))
        .await;
    assert_eq!(
        json_of(&errand)["notes"][0]["id"],
        json_of(&noted)["noteId"]
    );
    assert_eq!(json_of(&errand)["notes"][0]["noteType"], "INTERNAL");
}

/// "My ongoing cases": the errands naming a person among their stakeholders, by personId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casedata_person_errands() {
    let w = world().await;
    let marta = id_for(MARTA).to_string();
    let other = id_for("201503692715").to_string();
    let errand = |external: &str, student: &str| {
        json!({"caseType": "LEAVE_OF_ABSENCE", "externalCaseId": external,
               "stakeholders": [
                   {"type": "PERSON", "roles": ["APPLICANT"], "firstName": "Anna", "lastName": "Lindqvist"},
                   {"type": "PERSON", "roles": ["STUDENT"], "personId": student}],
               "extraParameters": []})
    };
    for (external, student) in [
        ("OEP-412-71", marta.as_str()),
        ("OEP-412-72", other.as_str()),
        ("OEP-412-73", marta.as_str()),
    ] {
        let r = w
            .call("casedata", "create-errand", errand(external, student))
            .await;
        assert_eq!(r.status, 201);
    }
    let page = w
        .call(
            "casedata",
            "list-person-errands",
            json!({"personId": marta}),
        )
        .await;
    let found: Vec<&Value> = json_of(&page)["content"]
        .as_array()
        .expect("a page")
        .iter()
        .map(|e| &e["externalCaseId"])
        .collect();
    assert_eq!(found, [&json!("OEP-412-71"), &json!("OEP-412-73")]);
    let sent = w.last("casedata");
    assert_eq!(sent.method, "GET");
    assert!(
        sent.path
            .starts_with("/2281/SBK_SCHOOL/errands?filter=stakeholders.personId"),
        "{}",
        sent.path
    );
    // Someone named on no errand: an empty page.
    let none = w
        .call(
            "casedata",
            "list-person-errands",
            json!({"personId": id_for("198811302465").to_string()}),
        )
        .await;
    assert_eq!(json_of(&none)["content"], json!([]));
    // No personId is refused before anything is sent (never `stakeholders.personId is
    // null`, which would list the errands of everyone without one).
    let before = w
        .sandbox
        .controls("casedata")
        .expect("a system")
        .calls()
        .len();
    for input in [
        json!({}),
        json!({"personId": null}),
        json!({"personId": ""}),
    ] {
        let refused = w
            .client
            .call("casedata", "list-person-errands", &Envelope::json(input))
            .await
            .unwrap_err();
        assert_eq!(refused.kind, FailureKind::Permanent);
    }
    assert_eq!(
        w.sandbox
            .controls("casedata")
            .expect("a system")
            .calls()
            .len(),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizen_operations() {
    let w = world().await;
    let id = w
        .call("citizen", "get-person-id", json!({"personNumber": MARTA}))
        .await;
    let person_id = json_of(&id).as_str().expect("a personId").to_string();
    assert_eq!(person_id, id_for(MARTA).to_string());

    let p = w
        .call("citizen", "get-person", json!({"personId": person_id}))
        .await;
    assert_eq!(json_of(&p)["givenname"], "Märta");
    assert_eq!(json_of(&p)["classified"], "N");

    // Alva has skyddad folkbokföring: no address without ShowClassified.
    let alva = id_for("201409093224").to_string();
    let batch = w
        .call(
            "citizen",
            "get-persons",
            json!({"personIds": [person_id, alva]}),
        )
        .await;
    let people = json_of(&batch).as_array().unwrap().clone();
    assert_eq!(people.len(), 2);
    let protected = people.iter().find(|p| p["classified"] == "J").unwrap();
    assert!(
        protected["addresses"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{protected}"
    );
    let sent = w.last("citizen");
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.body.unwrap(), json!([person_id, alva]));
    assert!(!sent.path.contains("ShowClassified"));

    let moves = w
        .call(
            "citizen",
            "changed-addresses",
            json!({"changedDateFrom": "2000-01-01"}),
        )
        .await;
    assert!(!json_of(&moves).as_array().unwrap().is_empty());
    assert_eq!(
        w.last("citizen").path,
        "/api/v3/citizen/2281/changedaddress?changedDateFrom=2000-01-01T00%3A00%3A00%2B02%3A00"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elevregister_operations() {
    let w = world().await;
    let found = w
        .call("elevregister", "find-person", json!({"civicNo": MARTA}))
        .await;
    let person = &json_of(&found)["data"][0];
    let person_id = person["id"].as_str().unwrap().to_string();

    let got = w
        .call("elevregister", "get-person", json!({"personId": person_id}))
        .await;
    assert_eq!(json_of(&got)["civicNo"]["value"], MARTA);

    // Märta's guardian Anna, with the children she is responsible for: Märta among them.
    let guardian = w
        .call(
            "elevregister",
            "find-dependants",
            json!({"civicNo": "198503122387"}),
        )
        .await;
    let children = json_of(&guardian)["data"][0]["_embedded"]["responsibleFor"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        children
            .iter()
            .any(|c| c["person"]["id"] == person_id.as_str()
                && c["relationType"] == "Vårdnadshavare"),
        "{children:?}"
    );

    let orgs = w
        .call("elevregister", "list-organisations", json!({}))
        .await;
    let units = json_of(&orgs)["data"].as_array().unwrap().clone();
    assert!(units.iter().any(|u| u["schoolUnitCode"] == "38120001"));
    let one = w
        .call(
            "elevregister",
            "find-school-unit",
            json!({"schoolUnit": "38120002"}),
        )
        .await;
    let one = json_of(&one)["data"].as_array().unwrap().clone();
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0]["parentOrganisation"]["organisationNumber"],
        "559999-9991"
    );
    let none = w
        .call(
            "elevregister",
            "find-school-unit",
            json!({"schoolUnit": "99999999"}),
        )
        .await;
    assert_eq!(json_of(&none)["data"], json!([]));

    // Yusuf is granted Tallbackens friskola from the autumn; a second call finds the placement.
    let placed = w
        .call(
            "elevregister",
            "add-placement",
            json!({"student": {"civicNo": "20150369-2715"}, "schoolUnit": "38120002",
                   "schoolType": "GR", "startDate": "2027-08-16", "reason": "Skolval"}),
        )
        .await;
    assert_eq!(placed.status, 201);
    assert_eq!(
        w.last("elevregister").body.unwrap(),
        json!({"child": {"civicNo": "20150369-2715"}, "placedAt": {"schoolUnitCode": "38120002"},
               "schoolType": "GR", "startDate": "2027-08-16", "reason": "Skolval"})
    );
    let again = w
        .call(
            "elevregister",
            "add-placement",
            json!({"student": {"civicNo": "20150369-2715"}, "schoolUnit": "38120002",
                   "schoolType": "GR", "startDate": "2027-08-16"}),
        )
        .await;
    assert_eq!(
        again.status, 200,
        "the open placement is found, not made twice"
    );

    let leave = json!({"student": {"civicNo": MARTA}, "startTime": "2027-02-15T00:00:00+01:00",
                       "endTime": "2027-02-17T23:59:59+01:00", "reason": "Beviljad ledighet"});
    let absence = w.call("elevregister", "add-absence", leave).await;
    assert_eq!(absence.status, 201);
    assert_eq!(json_of(&absence)["type"], "Beviljad ledighet");
    let marta_id = json_of(&absence)["student"]["id"].clone();
    let listed = w
        .call(
            "elevregister",
            "list-absences",
            json!({"personId": marta_id}),
        )
        .await;
    assert_eq!(json_of(&listed)["data"].as_array().map(Vec::len), Some(1));
    let bad = w
        .client
        .call(
            "elevregister",
            "add-absence",
            &Envelope::json(
                json!({"student": {"civicNo": MARTA}, "startTime": "i morgon", "endTime": "x"}),
            ),
        )
        .await
        .unwrap_err();
    // Refused by the register's contract (contracts/elevregister.openapi.yaml).
    assert!(bad.message.contains("HTTP 400"), "{}", bad.message);

    let r = w
        .call(
            "elevregister",
            "update-placement",
            json!({"student": {"civicNo": MARTA}, "schoolUnit": "38120001",
                   "placementType": "fritidshem", "kind": "start", "date": "2026-12-01",
                   "hoursPerWeek": 20}),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.status);
    let sent = w.last("elevregister").body.unwrap();
    assert_eq!(sent["schoolType"], "FTH");
    assert_eq!(sent["maxWeeklyScheduleHours"], 20);

    let placements = w
        .call(
            "elevregister",
            "list-placements",
            json!({"child": person_id}),
        )
        .await;
    let list = json_of(&placements)["data"].as_array().unwrap().clone();
    assert!(
        list.iter()
            .any(|p| p["schoolType"] == "FTH" && p["maxWeeklyScheduleHours"].as_f64() == Some(20.0)),
        "{list:?}"
    );
    assert_eq!(
        w.last("elevregister").path,
        format!("/placements?child={person_id}")
    );
}

/// Karin Ström, grading teacher of 7B at Björkhagens skola (seed).
const KARIN: &str = "197903152481";
const ALVA: &str = "201409093224";
const YUSUF: &str = "201503692715";

/// A grade of 7B in grade.v1 (the canonical message the register route sends).
fn grade_v1(student: &str, value: &str, final_grade: bool) -> Value {
    json!({
        "gradeId": id_for(&format!("grade/{student}")), "version": "2026-12-18T10:00:00+01:00",
        "student": {"id": id_for(student), "displayName": "Elev"},
        "schoolUnitCode": "38120001",
        "group": {"id": id_for("group/38120001/7B"), "displayName": "7B"},
        "syllabus": "MA", "semester": "HT", "year": 2026,
        "gradeValue": value, "finalGrade": final_grade,
        "gradingTeacher": {"id": id_for(KARIN), "displayName": "Karin Ström"},
        "registeredBy": {"id": id_for(KARIN), "displayName": "Karin Ström"},
        "registeredDate": "2026-12-18",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elevregister_grade_operations() {
    use knutpunkt::step::verify_signature::verify_detached;
    let w = world().await;
    let group_id = id_for("group/38120001/7B");
    let group = w
        .call(
            "elevregister",
            "get-group",
            json!({"group": {"id": group_id}}),
        )
        .await;
    assert_eq!(json_of(&group)["displayName"], "7B");
    let members = json_of(&group)["groupMemberships"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(members.len(), 3);
    assert_eq!(w.last("elevregister").path, format!("/groups/{group_id}"));

    // Registered, then marked final: one grade, changed in place.
    let first = w
        .call(
            "elevregister",
            "register-grade",
            grade_v1(MARTA, "C", false),
        )
        .await;
    assert_eq!(first.status, 201);
    let sent = w.last("elevregister").body.unwrap();
    assert_eq!(sent["student"], json!({"id": id_for(MARTA)}));
    assert_eq!(sent["syllabus"], json!({"displayName": "MA"}));
    let final_m = Envelope::json(grade_v1(MARTA, "B", true));
    let changed = w
        .client
        .call("elevregister", "register-grade", &final_m)
        .await
        .unwrap();
    assert_eq!(changed.status, 200);
    assert_eq!(json_of(&changed)["id"], json_of(&first)["id"]);
    // The same message again (same Idempotency-Key) changes nothing.
    let again = w
        .client
        .call("elevregister", "register-grade", &final_m)
        .await
        .unwrap();
    assert_eq!(json_of(&again)["meta"], json_of(&changed)["meta"]);
    for s in [ALVA, YUSUF] {
        let r = w
            .call("elevregister", "register-grade", grade_v1(s, "A", true))
            .await;
        assert_eq!(r.status, 201);
    }
    let listed = w
        .call(
            "elevregister",
            "list-grades",
            json!({"student": id_for(MARTA), "group": group_id}),
        )
        .await;
    let listed = json_of(&listed)["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["gradeValue"], "B");
    assert_eq!(listed[0]["finalGrade"], true);

    // The catalogue, signed by Karin; the signature verifies against the register's keys.
    let request = json!({"schoolUnitCode": "38120001", "group": group_id, "syllabus": "MA",
        "semester": "HT", "year": 2026, "gradingTeacher": id_for(KARIN),
        "grades": [{"student": id_for(MARTA), "gradeValue": "B"},
                   {"student": id_for(ALVA), "gradeValue": "A"},
                   {"student": id_for(YUSUF), "gradeValue": "A"}]});
    let m = Envelope::json(request.clone());
    let made = w
        .client
        .call("elevregister", "create-grade-catalogue", &m)
        .await
        .unwrap();
    assert_eq!(made.status, 201);
    let catalogue = json_of(&made).clone();
    assert_eq!(
        catalogue["confidential"], true,
        "Alva has a protected identity"
    );
    assert_eq!(catalogue["signedBy"]["displayName"], "Karin Ström");
    let document: Value = serde_json::from_str(catalogue["document"].as_str().unwrap()).unwrap();
    assert_eq!(document["type"], "Betygskatalog");
    assert_eq!(document["grades"][0]["student"]["civicNo"], "20130412-2383");
    assert!(
        !catalogue["document"]
            .as_str()
            .unwrap()
            .contains("Skogsstigen")
    );
    let keys = w.call("elevregister", "signing-keys", json!({})).await;
    assert_eq!(w.last("elevregister").path, "/signing-keys");
    let keys = knutpunkt::jwks::parse_set(&serde_json::to_vec(json_of(&keys)).unwrap()).unwrap();
    assert_eq!(keys.len(), 3, "one key per seeded teacher");
    let kid = verify_detached(
        &catalogue["signature"],
        &catalogue["document"],
        &keys,
        Some(&json!(id_for(KARIN).to_string())),
    )
    .expect("Karin's signature verifies");
    assert_eq!(kid, Some(id_for(KARIN).to_string()));
    // Asked again with the same key: the same catalogue.
    let same = w
        .client
        .call("elevregister", "create-grade-catalogue", &m)
        .await
        .unwrap();
    assert_eq!(same.status, 200);
    assert_eq!(json_of(&same)["id"], catalogue["id"]);

    // Tampered after signing, and unsigned: the unhappy paths.
    post(&format!("{}/elevregister/_tamper", w.base), json!({})).await;
    let tampered = w
        .call("elevregister", "create-grade-catalogue", request.clone())
        .await;
    let t = json_of(&tampered);
    assert!(verify_detached(&t["signature"], &t["document"], &keys, None).is_err());
    post(&format!("{}/elevregister/_unsigned", w.base), json!({})).await;
    let unsigned = w
        .call("elevregister", "create-grade-catalogue", request.clone())
        .await;
    assert_eq!(json_of(&unsigned)["signature"], Value::Null);
    let next = w
        .call("elevregister", "create-grade-catalogue", request.clone())
        .await;
    let n = json_of(&next);
    assert!(verify_detached(&n["signature"], &n["document"], &keys, None).is_ok());

    // A grade not final, and a teacher who is not the group's: 422, permanent.
    w.call("elevregister", "register-grade", grade_v1(ALVA, "A", false))
        .await;
    let e = w
        .client
        .call(
            "elevregister",
            "create-grade-catalogue",
            &Envelope::json(request.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Permanent);
    assert!(e.message.contains("422"), "{}", e.message);
    let mut other = request.clone();
    other["gradingTeacher"] = json!(id_for("197206113578"));
    let e = w
        .client
        .call(
            "elevregister",
            "create-grade-catalogue",
            &Envelope::json(other),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Permanent);
    assert!(
        !e.message.contains(MARTA) && !e.message.contains("2383"),
        "{}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messaging_operations() {
    let w = world().await;
    let email = w
        .call(
            "messaging",
            "send-email",
            json!({"emailAddress": "admin@exempel-forskola.example", "subject": "Placering ändrad",
                   "message": "Ändringen är registrerad.", "sender": {"name": "Knutpunkt",
                   "address": "noreply@sundsvall.example"}}),
        )
        .await;
    assert_eq!(email.status, 201);
    let id = json_of(&email)["messageId"].as_str().unwrap().to_string();
    let sms = w
        .call(
            "messaging",
            "send-sms",
            json!({"mobileNumber": "+46701234567", "message": "Frånvaro idag", "sender": "Sundsvall"}),
        )
        .await;
    assert_eq!(sms.status, 201);
    let web = w
        .call(
            "messaging",
            "send-webmessage",
            json!({"party": {"partyId": id_for(MARTA).to_string()}, "message": "Beslut fattat"}),
        )
        .await;
    assert_eq!(web.status, 201);
    let letter = w
        .call(
            "messaging",
            "send-letter",
            json!({"party": {"partyIds": [id_for(MARTA).to_string()]}, "subject": "Beslut",
                   "department": "Barn och utbildning",
                   "attachments": [{"contentType": "application/pdf", "content": "JVBERi0=",
                                     "filename": "beslut.pdf"}]}),
        )
        .await;
    assert_eq!(letter.status, 201);
    assert_eq!(w.last("messaging").path, "/2281/letter");
    let status = w
        .call("messaging", "get-status", json!({"messageId": id}))
        .await;
    assert_eq!(json_of(&status)["messageId"], id.as_str());
    // A request the contract refuses is a permanent failure, not a retry.
    let bad = w
        .client
        .call(
            "messaging",
            "send-sms",
            &Envelope::json(json!({"message": "x"})),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.kind, FailureKind::Permanent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oep_integrator_operations() {
    const ASA: &str = "198006112463";
    let w = world().await;
    // Åsa Sandberg applies in OeP for her daughter Elin; OeP knows her from her login.
    let export = "<FlowInstance><Header><Flow><FamilyID>412</FamilyID><Version>4</Version>\
        <Name><![CDATA[Ansökan om ledighet för elev]]></Name></Flow><Status><ID>77</ID>\
        <Name><![CDATA[Inkommen]]></Name></Status><Posted>2026-11-20T10:15:00</Posted></Header>\
        <Values/></FlowInstance>";
    let r = reqwest::Client::new()
        .post(format!("{}/oep/_submit?poster={ASA}", w.base))
        .body(export)
        .send()
        .await
        .expect("sandbox");
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.expect("json")["flowInstanceID"].clone();
    let cases = w
        .call(
            "oep-integrator",
            "list-party-cases",
            json!({"partyId": id_for(ASA).to_string()}),
        )
        .await;
    assert_eq!(
        json_of(&cases),
        &json!([{"flowInstanceId": id.to_string(), "created": "2026-11-20T10:15",
                 "statusUpdated": "2026-11-20T10:15", "displayName": "Ansökan om ledighet för elev",
                 "status": {"id": 77, "name": "Inkommen", "newExternalMessagesDisallowed": false,
                            "addExternalMessage": false, "addInternalMessage": false,
                            "isRestrictedAdminDeletable": false, "status": "SUBMITTED"}}])
    );
    let sent = w.last("oep-integrator");
    assert_eq!(
        sent.path,
        format!(
            "/2281/EXTERNAL/cases/parties/{}?includeStatus=true",
            id_for(ASA)
        )
    );
    // A party no one in the population is: no cases (the contract declares no 404).
    let none = w
        .call(
            "oep-integrator",
            "list-party-cases",
            json!({"partyId": "00000000-0000-4000-8000-000000000000"}),
        )
        .await;
    assert_eq!(json_of(&none), &json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oep_operations() {
    let w = world().await;
    let list = w
        .call(
            "oep",
            "list-instances",
            json!({"familyId": 412, "status": "Inkommen", "watermark": null}),
        )
        .await;
    let text = json_of(&list).to_string();
    assert!(text.contains("5000"), "{text}");
    // A rolling window: fromDate is the day `sinceDays` ago.
    let recent = w
        .call(
            "oep",
            "list-instances-recent",
            json!({"familyId": 412, "status": "Inkommen", "sinceDays": 1100}),
        )
        .await;
    assert!(json_of(&recent).to_string().contains("5000"));
    let sent = w.last("oep");
    let from = (chrono::Utc::now() - chrono::Duration::days(1100))
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        sent.path.contains(&format!("fromDate={from}")),
        "{}",
        sent.path
    );
    let one = w
        .client
        .call_raw(
            "oep",
            "get-instance",
            &Envelope::json(json!({"flowInstanceID": 5000})),
        )
        .await
        .unwrap();
    assert!(one.content_type.to_ascii_lowercase().contains("iso-8859-1"));
    // The same export, of which the route sees the family and the status only.
    let status = w
        .call(
            "oep",
            "get-instance-status",
            json!({"flowInstanceID": "5000"}),
        )
        .await;
    assert_eq!(
        json_of(&status),
        &json!({"flowInstanceID": "5000", "familyId": "412", "status": "Inkommen"})
    );

    w.call(
        "oep",
        "set-status",
        json!({"flowInstanceID": 5000, "statusAlias": "Beslutad"}),
    )
    .await;
    let sent = w.last("oep");
    assert_eq!(sent.path, "/api/callback");
    assert_eq!(sent.headers["content-type"], "text/xml; charset=UTF-8");
    w.call(
        "oep",
        "add-message",
        json!({"flowInstanceID": 5000, "message": "Ledigheten är beviljad för Märta."}),
    )
    .await;
    w.call(
        "oep",
        "add-internal-message",
        json!({"flowInstanceID": 5000, "message": "Beslutet skickat till vårdnadshavarna.",
               "attachments": [{"filename": "beslut.txt", "content": "QmVzbHV0"}]}),
    )
    .await;
    w.call(
        "oep",
        "confirm-delivery",
        json!({"flowInstanceID": 5000, "externalID": "BUN 2026/00050"}),
    )
    .await;
    // By the external id it was delivered under, and to a status by its id.
    w.call(
        "oep",
        "set-status",
        json!({"externalID": "BUN 2026/00050", "statusID": 79, "principal": {"userID": "eva"}}),
    )
    .await;
    let instances: Value = reqwest_json(&format!("{}/oep/_instances", w.base)).await;
    let i = instances
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["flowInstanceID"] == 5000)
        .unwrap()
        .clone();
    assert_eq!(i["status"], "Status 79", "{i}");
    assert_eq!(i["messages"][0], "Ledigheten är beviljad för Märta.", "{i}");
    assert_eq!(
        i["internalMessages"][0], "Beslutet skickat till vårdnadshavarna.",
        "{i}"
    );
    assert_eq!(i["attachments"][0], "beslut.txt", "{i}");
    assert_eq!(i["delivered"], true, "{i}");
    assert_eq!(i["externalID"], "BUN 2026/00050", "{i}");

    // An unknown instance: OeP answers a SOAP fault with HTTP 500; the call fails
    // permanently with the fault's text, not as "HTTP 500".
    let e = w
        .client
        .call(
            "oep",
            "set-status",
            &Envelope::json(json!({"flowInstanceID": 999999, "statusAlias": "Beslutad"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Permanent, "{}", e.message);
    assert!(e.message.contains("SOAP fault"), "{}", e.message);
    assert!(
        e.message.contains("999999"),
        "the fault's text: {}",
        e.message
    );
}

async fn reqwest_json(url: &str) -> Value {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Faults injected with `POST /sandbox/<system>/_fault` reach routes as transient failures
/// (retried later), and the system answers again when they are used up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_transient_failures_until_used_up() {
    let w = world().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .post(format!("{}/elevregister/_fault", w.base))
        .json(&json!({"status": 503, "count": 2, "delay_ms": 0}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let m = Envelope::json(json!({"civicNo": MARTA}));
    for _ in 0..2 {
        let e = w
            .client
            .call("elevregister", "find-person", &m)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::Transient);
        assert!(e.message.contains("HTTP 503"), "{}", e.message);
    }
    let ok = w
        .client
        .call("elevregister", "find-person", &m)
        .await
        .unwrap();
    assert_eq!(json_of(&ok)["data"][0]["civicNo"]["value"], MARTA);
    let calls = w.sandbox.controls("elevregister").unwrap().calls();
    assert_eq!(
        calls.iter().map(|c| c.fault).collect::<Vec<_>>(),
        [true, true, false]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minaombud_operations() {
    let w = world().await;
    // Karl Ek may handle Sara Nilsson's son's school matters.
    let karl = "198606041195";
    let found = w
        .call(
            "minaombud",
            "search-fullmakter",
            json!({"holder": "19860604-1195", "status": "GILTIG"}),
        )
        .await;
    let list = json_of(&found)["fullmakter"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["fullmaktsgivare"]["fornamn"], "Sara");
    assert_eq!(list[0]["fullmaktshavare"][0]["id"], karl);
    let sent = w.last("minaombud");
    assert_eq!(sent.headers["x-service-name"], "knutpunkt");
    assert_eq!(
        sent.body.unwrap()["fullmaktshavare"],
        json!({"id": karl, "typ": "pnr"})
    );

    let id = list[0]["id"].as_str().unwrap().to_string();
    let one = w
        .call("minaombud", "get-fullmakt", json!({"fullmaktId": id}))
        .await;
    assert_eq!(json_of(&one)["metadata"]["status"], "GILTIG");
    assert!(json_of(&one)["fullmakt"]["behorigheter"][0]["rubrik"].is_string());

    // Lina Berg Holm's fullmakt has ended: none valid, one historic.
    let none = w
        .call(
            "minaombud",
            "search-fullmakter",
            json!({"holder": "198205057824", "status": "GILTIG"}),
        )
        .await;
    assert_eq!(json_of(&none)["fullmakter"], json!([]));
    let old = w
        .call(
            "minaombud",
            "search-fullmakter",
            json!({"holder": "198205057824"}),
        )
        .await;
    assert_eq!(json_of(&old)["fullmakter"][0]["status"], "HISTORISK");
    let unknown = w
        .client
        .call(
            "minaombud",
            "get-fullmakt",
            &Envelope::json(json!({"fullmaktId": "nope"})),
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, FailureKind::Permanent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diarium_operations() {
    let w = world().await;
    let m = Envelope::json(json!({"title": "Ansökan om IKE", "documentType": "ANSOKAN",
        "caseReference": "7", "parties": [{"civicNo": "201409093224", "role": "SOKANDE"}]}));
    let first = w.client.call("diarium", "register", &m).await.unwrap();
    assert_eq!(first.status, 201);
    let reg = json_of(&first).clone();
    let dnr = reg["diarienummer"].as_str().unwrap().to_string();
    assert!(dnr.starts_with("BUN 20") && dnr.contains('/'), "{dnr}");
    assert_eq!(
        reg["confidential"], true,
        "a protected party makes it confidential"
    );
    // A redelivery of the same message (same Idempotency-Key) gets the same number.
    let again = w.client.call("diarium", "register", &m).await.unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(json_of(&again)["diarienummer"], dnr.as_str());

    let at = json!({"year": reg["year"], "number": reg["number"]});
    let added = w
        .call(
            "diarium",
            "add-document",
            json!({"year": reg["year"], "number": reg["number"], "title": "Beslut om IKE",
                   "documentType": "BESLUT"}),
        )
        .await;
    assert_eq!(added.status, 201);
    assert_eq!(
        w.last("diarium").body.unwrap(),
        json!({"title": "Beslut om IKE", "documentType": "BESLUT"})
    );
    let got = w.call("diarium", "get-registration", at).await;
    assert_eq!(json_of(&got)["documents"].as_array().unwrap().len(), 2);
    let bad = w
        .client
        .call(
            "diarium",
            "register",
            &Envelope::json(json!({"title": "x"})),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.kind, FailureKind::Permanent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hemkommun_operations() {
    let w = world().await;
    let notice = w
        .call(
            "hemkommun",
            "notify-ike",
            json!({"student": {"civicNo": "198801011233"}, "homeMunicipality": "2262",
                   "course": "Svenska 1", "period": {"start": "2027-01-18", "end": "2027-06-04"},
                   "decisionReference": "BUN 2026/00042"}),
        )
        .await;
    assert_eq!(notice.status, 202);
    let id = json_of(&notice)["id"].as_str().unwrap().to_string();
    let got = w.call("hemkommun", "get-notice", json!({"id": id})).await;
    assert_eq!(json_of(&got)["course"], "Svenska 1");
    let bad = w
        .client
        .call(
            "hemkommun",
            "notify-ike",
            &Envelope::json(json!({"course": "x"})),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.kind, FailureKind::Permanent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verksamhetsplanering_operations() {
    let w = world().await;
    let row = json!({"schoolUnitCode": "38120001", "group": "4B", "date": "2026-11-23",
        "lessons": 6, "presentMinutes": 5400, "absentMinutes": {"valid": 120, "invalid": 60}});
    let r = w
        .call("verksamhetsplanering", "report-attendance", row.clone())
        .await;
    assert_eq!(r.status, 201);
    // A resend replaces the row: the totals do not double.
    w.call("verksamhetsplanering", "report-attendance", row)
        .await;
    let got = w
        .call(
            "verksamhetsplanering",
            "get-attendance",
            json!({"schoolUnitCode": "38120001", "from": "2026-11-01", "to": "2026-11-30"}),
        )
        .await;
    assert_eq!(json_of(&got)["totals"]["absentMinutes"]["invalid"], 60);
    assert_eq!(
        w.last("verksamhetsplanering").path,
        "/attendance-statistics?from=2026-11-01&schoolUnitCode=38120001&to=2026-11-30"
    );
    // Personal data is refused.
    let e = w
        .client
        .call(
            "verksamhetsplanering",
            "report-attendance",
            &Envelope::json(json!({"schoolUnitCode": "38120001", "date": "2026-11-23",
                "group": "20130412-2383", "lessons": 1, "presentMinutes": 0,
                "absentMinutes": {"valid": 0, "invalid": 60}})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Permanent);
    assert!(e.message.contains("422"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datawarehouse_operations() {
    let w = world().await;
    let r = w
        .call(
            "datawarehouse",
            "get-allocation",
            json!({"schoolUnitCode": "38120001", "period": "2026-09"}),
        )
        .await;
    let a = json_of(&r);
    assert_eq!(a["currency"], "SEK");
    let total: u64 = a["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["amount"].as_u64().unwrap())
        .sum();
    assert!(total > 0);
    assert_eq!(a["total"], total);
    let unknown = w
        .client
        .call(
            "datawarehouse",
            "get-allocation",
            &Envelope::json(json!({"schoolUnitCode": "99999999", "period": "2026-09"})),
        )
        .await
        .unwrap_err();
    assert!(unknown.message.contains("404"), "{}", unknown.message);
}

/// A Leveransobjekt for one document of a case (fictional).
pub fn leveransobjekt(case: &str, file_name: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Leveransobjekt xmlns="http://xml.ra.se/e-arkiv/FGS-ERMS">
  <ArkivbildarStruktur><Arkivbildare><Namn>Sundsvalls kommun</Namn><VerksamhetstidFran>1974</VerksamhetstidFran>
    <Arkivbildare><Namn>Barn- och utbildningsnämnden</Namn><VerksamhetstidFran>1974</VerksamhetstidFran></Arkivbildare>
  </Arkivbildare></ArkivbildarStruktur>
  <ArkivobjektListaArenden><ArkivobjektArende>
    <ArkivobjektID>{case}</ArkivobjektID><ArendeTyp>BETYG</ArendeTyp><Skapad>2026-06-12</Skapad>
    <Arendemening>Betygskatalog Matematik 1c, NA23b, VT 2026</Arendemening>
    <ArkivobjektListaHandlingar><ArkivobjektHandling>
      <ArkivobjektID>katalog-1</ArkivobjektID><Handlingstyp>S</Handlingstyp>
      <Rubrik>Betygskatalog</Rubrik><Skapad>2026-06-12</Skapad>
      <Bilaga Namn="{file_name}" Lank="Bilagor\{file_name}"/>
    </ArkivobjektHandling></ArkivobjektListaHandlingar>
  </ArkivobjektArende></ArkivobjektListaArenden>
</Leveransobjekt>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arkiv_operations() {
    let w = world().await;
    let package = json!({
        "attachment": {"name": "betygskatalog", "extension": ".pdf", "file": "JVBERi0xLjQK"},
        "signature": {"name": "betygskatalog.pdf", "extension": ".jws", "file": "ZXlKaGJHY2lPaUpGWkVSVFFTSjkuLnNpZw=="},
        "metadata": leveransobjekt("BUN 2026/00042", "betygskatalog.pdf"),
    });
    let first = w.call("arkiv", "archive-package", package.clone()).await;
    let id = json_of(&first)["archiveId"].as_str().unwrap().to_string();
    // The same package again (another message, so another Idempotency-Key): archived once.
    let again = w.call("arkiv", "archive-package", package).await;
    assert_eq!(json_of(&again)["archiveId"], id.as_str());
    let got = w
        .call("arkiv", "get-package", json!({"archiveId": id}))
        .await;
    assert_eq!(json_of(&got)["case"], "BUN 2026/00042");
    assert_eq!(json_of(&got)["attachment"]["name"], "betygskatalog.pdf");
    assert_eq!(json_of(&got)["signature"]["size"], 25);

    // Metadata that does not name the document: refused, permanently.
    let e = w
        .client
        .call(
            "arkiv",
            "archive-package",
            &Envelope::json(json!({
                "attachment": {"name": "annat", "extension": ".pdf", "file": "JVBERi0xLjQK"},
                "metadata": leveransobjekt("BUN 2026/00043", "betygskatalog.pdf"),
            })),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Permanent);
}

/// A teacher (Erik Lindqvist) as the sandbox knows him.
const TEACHER: &str = "198309214578";

async fn post(url: &str, body: Value) -> reqwest::Response {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn larplattform_operations() {
    let w = world().await;
    let empty = w
        .call(
            "larplattform",
            "list-attendances",
            json!({"watermark": null}),
        )
        .await;
    assert_eq!(json_of(&empty)["data"], json!([]));
    // A teacher registers two lessons; Märta misses the second without leave.
    let r = post(
        &format!("{}/larplattform/_register-attendance", w.base),
        json!({"teacher": TEACHER, "schoolUnitCode": "38120001", "group": "7A", "date": "2026-11-24",
               "lessons": [
                 {"subject": "Matematik", "start": "08:10", "minutes": 60,
                  "students": [{"civicNo": MARTA, "present": true}]},
                 {"subject": "Svenska", "start": "09:20", "minutes": 50,
                  "students": [{"civicNo": MARTA, "present": false, "absence": "invalid"}]}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let all = w
        .call(
            "larplattform",
            "list-attendances",
            json!({"watermark": null}),
        )
        .await;
    let records = json_of(&all)["data"].as_array().unwrap().clone();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["invalidAbsenceMinutes"], 50);
    let after = records[0]["meta"]["modified"].as_str().unwrap().to_string();
    let newer = w
        .call(
            "larplattform",
            "list-attendances",
            json!({"watermark": "2000-01-01T00:00:00+00:00"}),
        )
        .await;
    assert_eq!(json_of(&newer)["data"].as_array().unwrap().len(), 2);
    assert!(
        w.last("larplattform")
            .path
            .contains("meta.modified.after=2000-01-01")
    );
    let none = w
        .call(
            "larplattform",
            "list-attendances",
            json!({"watermark": after}),
        )
        .await;
    assert_eq!(json_of(&none)["data"], json!([]));
    let lesson = w
        .call(
            "larplattform",
            "get-calendar-event",
            json!({"calendarEventId": records[1]["calendarEvent"]["id"]}),
        )
        .await;
    assert_eq!(json_of(&lesson)["startTime"], "2026-11-24T09:20:00");
    assert_eq!(
        json_of(&lesson)["organisation"]["schoolUnitCode"],
        "38120001"
    );

    let r = post(
        &format!("{}/larplattform/_register-grades", w.base),
        json!({"teacher": TEACHER, "schoolUnitCode": "38120001", "group": "9A", "syllabus": "MA",
               "final": true, "grades": [{"civicNo": MARTA, "gradeValue": "B"}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let grades = w
        .call("larplattform", "list-grades", json!({"watermark": null}))
        .await;
    assert_eq!(json_of(&grades)["data"][0]["gradeValue"], "B");
    assert_eq!(json_of(&grades)["data"][0]["finalGrade"], true);

    let decision = json!({"student": {"civicNo": MARTA}, "decision": "approved",
        "period": {"start": "2026-12-14", "end": "2026-12-18"}, "reference": "5000"});
    let first = w
        .call("larplattform", "send-leave-decision", decision.clone())
        .await;
    assert_eq!(first.status, 201);
    let signed = w
        .call(
            "larplattform",
            "send-signed-grades",
            json!({"catalogue": knut_sandbox::seed::id_for("catalogue/MA-9A-VT2026"),
                   "grades": [{"student": knut_sandbox::seed::id_for(MARTA), "gradeValue": "B"}],
                   "signature": "eyJhbGciOiJFZERTQSJ9..c2ln"}),
        )
        .await;
    assert_eq!(signed.status, 201);
    // 7B's grades: registered, then marked final (definitivmarkering) in place.
    let r = post(
        &format!("{}/larplattform/_register-grades", w.base),
        json!({"teacher": KARIN, "schoolUnitCode": "38120001", "group": "7B", "syllabus": "SV",
               "semester": "HT", "year": 2026, "grades": [{"civicNo": ALVA, "gradeValue": "C"}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let registered: Value = r.json().await.unwrap();
    let registered = &registered["data"][0];
    assert_eq!(
        registered["group"]["id"],
        id_for("group/38120001/7B").to_string()
    );
    let r = post(
        &format!("{}/larplattform/_finalize-grades", w.base),
        json!({"teacher": KARIN, "schoolUnitCode": "38120001", "group": "7B", "syllabus": "SV",
               "semester": "HT", "year": 2026}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let newer = w
        .call(
            "larplattform",
            "list-grades",
            json!({"watermark": registered["meta"]["modified"]}),
        )
        .await;
    let newer = json_of(&newer)["data"].as_array().unwrap().clone();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0]["id"], registered["id"]);
    assert_eq!(newer[0]["finalGrade"], true);
    let r = post(
        &format!("{}/larplattform/_finalize-grades", w.base),
        json!({"teacher": KARIN, "schoolUnitCode": "38120001", "group": "7B", "syllabus": "SV",
               "semester": "HT", "year": 2026}),
    )
    .await;
    assert_eq!(r.status(), 422, "nothing left to mark final");
    // Unknown people are refused.
    let r = post(
        &format!("{}/larplattform/_register-grades", w.base),
        json!({"teacher": TEACHER, "schoolUnitCode": "38120001", "group": "9A", "syllabus": "MA",
               "grades": [{"civicNo": "201001011236", "gradeValue": "B"}]}),
    )
    .await;
    assert_eq!(r.status(), 422);
}

/// Lärplattform answers attendance in SS 12000 pages: `limit` records and a `pageToken`
/// for the next page, which takes no other filter; the adapter's list operations send the
/// token alone on later pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn larplattform_attendances_come_in_pages() {
    let w = world().await;
    let students: Vec<Value> = (0..5)
        .map(|i| json!({"civicNo": MARTA, "present": i % 2 == 0, "absence": "invalid"}))
        .collect();
    let lessons: Vec<Value> = ["08:10", "09:20", "10:30", "11:40", "13:00"]
        .iter()
        .zip(students)
        .map(|(start, s)| json!({"subject": "Matematik", "start": start, "minutes": 40, "students": [s]}))
        .collect();
    let r = post(
        &format!("{}/larplattform/_register-attendance", w.base),
        json!({"teacher": LARS_EK, "schoolUnitCode": "38120001", "group": "7A",
               "date": "2026-11-26", "lessons": lessons}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let url = format!("{}/larplattform/attendances", w.base);
    let mut seen = Vec::new();
    let mut query = format!("{url}?limit=2&meta.modified.after=2000-01-01T00:00:00%2B01:00");
    for page in 1.. {
        let answer = reqwest_json(&query).await;
        let data = answer["data"].as_array().unwrap();
        assert!(data.len() <= 2, "page {page}: {answer}");
        seen.extend(data.iter().map(|r| r["id"].clone()));
        match answer["pageToken"].as_str() {
            Some(token) => {
                let token: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
                query = format!("{url}?limit=2&pageToken={token}");
            }
            None => {
                assert_eq!(page, 3, "five records in pages of two");
                break;
            }
        }
    }
    assert_eq!(seen.len(), 5);
    let all = reqwest_json(&url).await;
    let ids: Vec<Value> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, seen, "the pages are the whole list, in order");
    assert!(all["pageToken"].is_null());

    // A token with another filter, a bad token, a bad limit: 400, saying why.
    let first = reqwest_json(&format!("{url}?limit=2")).await;
    let token = first["pageToken"].as_str().unwrap().to_string();
    let _ = rustls::crypto::ring::default_provider().install_default();
    for (q, says) in [
        (
            format!("pageToken={token}&meta.modified.after=2000-01-01T00:00:00Z"),
            "other filters",
        ),
        ("pageToken=nonsense".to_string(), "not one this server gave"),
        ("limit=0".to_string(), "`limit`"),
    ] {
        let r = reqwest::get(format!("{url}?{q}")).await.unwrap();
        assert_eq!(r.status(), 400, "{q}");
        assert!(r.text().await.unwrap().contains(says), "{q}");
    }

    // The adapter: the first page by the watermark, the next by the token alone.
    let next = w
        .call(
            "larplattform",
            "list-attendances-with-lessons",
            json!({"watermark": "2000-01-01T00:00:00+01:00", "page": token}),
        )
        .await;
    let sent = w.last("larplattform");
    assert!(sent.path.contains("pageToken="), "{}", sent.path);
    assert!(!sent.path.contains("meta.modified.after"), "{}", sent.path);
    assert_eq!(json_of(&next)["data"].as_array().unwrap().len(), 3);
}

/// The seed's attendance teacher (Lars Ek, Björkhagens skola).
const LARS_EK: &str = "197604151238";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn larplattform_attendance_with_lessons() {
    let w = world().await;
    // Two days: the day's listing must keep to its day.
    for (date, start) in [("2026-11-24", "08:10"), ("2026-11-25", "08:10")] {
        let r = post(
            &format!("{}/larplattform/_register-attendance", w.base),
            json!({"teacher": LARS_EK, "schoolUnitCode": "38120001", "group": "7A", "date": date,
                   "lessons": [
                     {"subject": "Matematik", "start": start, "minutes": 60,
                      "students": [{"civicNo": MARTA, "present": false, "absence": "invalid"}]},
                     {"subject": "Svenska", "start": "09:20", "minutes": 50,
                      "students": [{"civicNo": MARTA, "present": false, "absence": "valid"}]}]}),
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    let all = w
        .call(
            "larplattform",
            "list-attendances-with-lessons",
            json!({"watermark": null}),
        )
        .await;
    let sent = w.last("larplattform");
    assert!(sent.path.contains("expand=calendarEvent"), "{}", sent.path);
    assert!(!sent.path.contains("meta.modified.after"), "{}", sent.path);
    let records = json_of(&all)["data"].as_array().unwrap().clone();
    assert_eq!(records.len(), 4);
    for r in &records {
        let lesson = &r["_embedded"]["calendarEvent"];
        assert_eq!(lesson["id"], r["calendarEvent"]["id"], "{r}");
        assert_eq!(lesson["organisation"]["schoolUnitCode"], "38120001");
        assert_eq!(lesson["group"]["displayName"], "7A");
    }
    assert_eq!(
        records[0]["_embedded"]["calendarEvent"]["startTime"],
        "2026-11-24T08:10:00"
    );
    assert_eq!(
        records[0]["_embedded"]["calendarEvent"]["activity"]["displayName"],
        "Matematik"
    );
    assert_eq!(
        records[0]["reporter"]["id"],
        json!(id_for(LARS_EK).to_string())
    );
    // The plain listing stays unexpanded.
    let plain = w
        .call(
            "larplattform",
            "list-attendances",
            json!({"watermark": null}),
        )
        .await;
    assert!(json_of(&plain)["data"][0]["_embedded"].is_null());

    let day = w
        .call(
            "larplattform",
            "list-lessons-of-day",
            json!({"date": "2026-11-24"}),
        )
        .await;
    let sent = w.last("larplattform");
    assert!(
        sent.path
            .contains("startTime.onOrAfter=2026-11-24T00%3A00%3A00")
            && sent
                .path
                .contains("startTime.onOrBefore=2026-11-24T23%3A59%3A59")
            && sent.path.contains("expand=attendance"),
        "{}",
        sent.path
    );
    let lessons = json_of(&day)["data"].as_array().unwrap().clone();
    assert_eq!(lessons.len(), 2, "{lessons:?}");
    assert_eq!(lessons[0]["startTime"], "2026-11-24T08:10:00");
    assert_eq!(lessons[1]["activity"]["displayName"], "Svenska");
    let first = lessons[0]["_embedded"]["attendance"].as_array().unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["invalidAbsenceMinutes"], 60);
    assert_eq!(
        lessons[1]["_embedded"]["attendance"][0]["validAbsenceMinutes"],
        50
    );
    // SS 12000 requires both bounds.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/larplattform/calendarEvents?startTime.onOrAfter=2026-11-24",
            w.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skolval_operations() {
    let w = world().await;
    // Leo wishes Tallbackens friskola (full) first, Björkhagens skola second.
    let m = Envelope::json(json!({"child": {"civicNo": "201602201319"},
        "guardians": [{"civicNo": "199007158620"}], "schoolYear": "5", "startDate": "2027-08-16",
        "choices": [{"schoolUnitCode": "38120002", "rank": 1}, {"schoolUnitCode": "38120001", "rank": 2}]}));
    let app = w
        .client
        .call("skolval", "submit-application", &m)
        .await
        .unwrap();
    assert_eq!(app.status, 201);
    let id = json_of(&app)["id"].as_str().unwrap().to_string();
    let again = w
        .client
        .call("skolval", "submit-application", &m)
        .await
        .unwrap();
    assert_eq!(
        json_of(&again)["id"],
        id.as_str(),
        "a redelivery is one application"
    );
    let d = w.call("skolval", "decide", json!({"id": id})).await;
    assert_eq!(json_of(&d)["outcome"], "PLACED");
    assert_eq!(json_of(&d)["placedAt"]["schoolUnitCode"], "38120001");
    let d2 = w.call("skolval", "decide", json!({"id": id})).await;
    assert_eq!(
        json_of(&d2),
        json_of(&d),
        "deciding again gives the same decision"
    );
    let got = w
        .call("skolval", "get-application", json!({"id": id}))
        .await;
    assert_eq!(json_of(&got)["status"], "DECIDED");
    let feed = w
        .call("skolval", "list-decisions", json!({"watermark": null}))
        .await;
    assert_eq!(json_of(&feed)["data"].as_array().unwrap().len(), 1);
    let later = w
        .call(
            "skolval",
            "list-decisions",
            json!({"watermark": json_of(&d)["decided"]}),
        )
        .await;
    assert_eq!(json_of(&later)["data"], json!([]));
    let unknown = w
        .client
        .call(
            "skolval",
            "submit-application",
            &Envelope::json(json!({"child": {"civicNo": "201602201319"},
            "startDate": "2027-08-16", "choices": [{"schoolUnitCode": "99999999", "rank": 1}]})),
        )
        .await
        .unwrap_err();
    assert!(unknown.message.contains("422"), "{}", unknown.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csn_operations() {
    let w = world().await;
    let r = post(&format!("{}/csn/_deliver", w.base), json!({})).await;
    assert_eq!(r.status(), 201);
    let list = w.call("csn", "list-deliveries", json!({})).await;
    let files = json_of(&list)["data"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2, "the seeded delivery and the new one");
    let name = files[1]["name"].as_str().unwrap().to_string();
    let file = w
        .client
        .call(
            "csn",
            "get-delivery",
            &Envelope::json(json!({"name": name})),
        )
        .await
        .unwrap();
    assert_eq!(file.content_type, "text/csv; charset=windows-1252");
    let Body::Bytes(bytes) = &file.body else {
        panic!("a CSV file stays bytes")
    };
    let (text, _, bad) = encoding_rs::WINDOWS_1252.decode(bytes);
    assert!(!bad);
    assert!(text.contains("Förnamn"), "{text}");
    assert!(text.contains("Ebba"), "{text}");
}
