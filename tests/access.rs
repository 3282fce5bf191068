//! Guardian access and "my pages" (issue 12; seeds 002 and 003) over HTTP, in a running
//! system with its sandbox: the shipped access routes behind the `residents` scheme (a
//! Swedish e-identification token, the person's number in
//! `https://claims.oidc.se/1.0/personalNumber`), configured as production would be — a
//! key set, an issuer and an audience. Anonymous, unsigned, forged, expired, wrong-issuer
//! and wrong-audience tokens are refused with 401 problem+json; a valid one gets the
//! caller's own answer. People are the sandbox's fictional ones.

#[path = "support/access.rs"]
mod access;

use std::time::Duration;

use access::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_dependants_only_to_a_signed_in_guardian() {
    let a = Access::start().await;
    let path = "/api/v1/me/dependants";

    // Refused: anonymous, unsigned, forged, expired, another issuer, another audience.
    assert_refused("anonymous", &a.get(path, None).await);
    let valid = a.signed_in(ASA).await;
    let claims = json!({"sub": "x", "iss": "knut-sandbox-idp", "aud": AUDIENCE,
                        "exp": chrono::Utc::now().timestamp() + 600, PERSONAL_NUMBER: ASA});
    assert_refused("alg none", &a.get(path, Some(&unsigned(&claims))).await);
    assert_refused("forged", &a.get(path, Some(&forged(&valid, MARIA))).await);
    let expired = a
        .token(json!({"sub": "x", "aud": AUDIENCE, "exp": 1_000_000_000, PERSONAL_NUMBER: ASA}))
        .await;
    assert_refused("expired", &a.get(path, Some(&expired)).await);
    assert_refused(
        "another issuer",
        &a.get(path, Some(&other_issuer(ASA))).await,
    );
    let elsewhere = a
        .token(json!({"sub": "x", "aud": "another-service", PERSONAL_NUMBER: ASA}))
        .await;
    assert_refused("another audience", &a.get(path, Some(&elsewhere)).await);

    // A token that names nobody: 403, it says which claim is missing.
    let nobody = a.token(json!({"sub": "x", "aud": AUDIENCE})).await;
    let (status, kind, body) = a.get(path, Some(&nobody)).await;
    assert_eq!(status, 403, "{body}");
    assert!(kind.starts_with("application/problem+json"), "{kind}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(PERSONAL_NUMBER),
        "{body}"
    );

    // Åsa: both her children, by Metakatalogen's personId, oldest first; no personnummer.
    let (status, _, body) = a.get(path, Some(&valid)).await;
    assert_eq!(status, 200, "{body}");
    let children = body.as_array().expect("a list").clone();
    let summary: Vec<(String, String, i64)> = children
        .iter()
        .map(|c| {
            (
                c["givenname"].as_str().unwrap_or_default().to_string(),
                c["lastname"].as_str().unwrap_or_default().to_string(),
                c["age"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "Viktor".to_string(),
                "Sandberg".to_string(),
                i64::from(age(date(2010, 2, 14)))
            ),
            (
                "Elin".to_string(),
                "Sandberg".to_string(),
                i64::from(age(date(2012, 5, 3)))
            ),
        ],
        "{body}"
    );
    for c in &children {
        let mut keys: Vec<&String> = c.as_object().expect("an object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["age", "givenname", "lastname", "personId"], "{c}");
    }
    // The personId is Metakatalogen's, as the citizen API gives it for the child.
    let viktor_id = a.person_id(VIKTOR).await;
    assert_eq!(children[0]["personId"], viktor_id);
    assert!(!body.to_string().contains("2010021"), "{body}");

    // Maria: her children have skyddad folkbokföring, so she is shown none of them.
    let maria = a.signed_in(MARIA).await;
    let (status, _, body) = a.get(path, Some(&maria)).await;
    assert_eq!((status, body.clone()), (200, json!([])), "{body}");

    // The access audit holds one row for each answer, under the caller's hash — not the
    // number — and one for each request refused at the door: six without a valid token
    // (actor `anonymous`), one whose token names nobody (actor: the token, `jwt:<scheme>:<sub>`).
    for (who, name) in [(ASA, "Åsa"), (MARIA, "Maria")] {
        let mine = a.audit_of(who).await;
        assert_eq!(mine.len(), 1, "{name}: {mine:?}");
        let row = &mine[0];
        assert_eq!(
            (row.action.as_str(), row.right.as_deref(), row.allowed),
            ("list-dependants", Some("own"), true),
            "{name}: {row:?}"
        );
        assert_eq!(row.route, "me-dependants");
        assert!(!format!("{row:?}").contains(who), "{name}: {row:?}");
    }
    let refused = a.audit_of("anonymous").await;
    assert_eq!(refused.len(), 6, "{refused:?}");
    assert!(
        refused.iter().all(|r| r.action == "refused-credentials"
            && !r.allowed
            && r.right.is_none()
            && r.route == "me-dependants"),
        "{refused:?}"
    );
    let unnamed = a.audit_of("jwt:residents:x").await;
    assert_eq!(unnamed.len(), 1, "{unnamed:?}");
    assert_eq!(
        (unnamed[0].action.as_str(), unnamed[0].allowed),
        ("refused-claim-missing", false)
    );

    a.system.shutdown(Duration::from_secs(5)).await;
}

/// Åsa's and Mikael's pages over HTTP against the sandbox's case data and OeP: a case about
/// Elin (14) in case management, an e-service case Viktor (16) posted himself in OeP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_cases_and_a_case_by_id_only_with_a_right() {
    let a = Access::start().await;
    let (elin_id, viktor_id) = (a.person_id(ELIN).await, a.person_id(VIKTOR).await);

    // Case management holds an errand about Elin (as the leave intake opens it) …
    let elins = a.elins_case().await;
    // … and OeP an application Viktor posted himself.
    let viktors = a.oep_case(VIKTOR).await;

    // Both guardians see both cases, each under the right the child's age gives.
    for (who, name) in [(ASA, "Åsa"), (MIKAEL, "Mikael")] {
        let token = a.signed_in(who).await;
        let (status, _, body) = a.get("/api/v1/me/cases", Some(&token)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["missing"], json!([]), "{name}: {body}");
        let mut seen: Vec<(String, String, String)> = body["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or_default().to_string(),
                    c["right"].as_str().unwrap_or_default().to_string(),
                    c["concerns"]["personId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        seen.sort();
        let mut want = vec![
            (
                elins.clone(),
                "guardian-approve".to_string(),
                elin_id.clone(),
            ),
            (
                viktors.clone(),
                "guardian-view".to_string(),
                viktor_id.clone(),
            ),
        ];
        want.sort();
        assert_eq!(seen, want, "{name}: {body}");
        for p in [ELIN, VIKTOR, who] {
            assert!(!body.to_string().contains(&p[2..]), "{name}: {body}");
        }
        let (status, _, case) = a.get(&format!("/api/v1/cases/{elins}"), Some(&token)).await;
        assert_eq!(
            (status, case["right"].clone()),
            (200, json!("guardian-approve")),
            "{case}"
        );
    }

    // Maria has custody of nobody she may be shown: no cases, and both ids are 404 — the
    // same answer as for a case that does not exist, or an id that cannot be one.
    let maria = a.signed_in(MARIA).await;
    let (status, _, body) = a.get("/api/v1/me/cases", Some(&maria)).await;
    assert_eq!(
        (status, body.clone()),
        (200, json!({"cases": [], "missing": []})),
        "{body}"
    );
    for id in [
        elins.as_str(),
        viktors.as_str(),
        "casedata-999999",
        "oep-1",
        "x",
    ] {
        let (status, kind, body) = a.get(&format!("/api/v1/cases/{id}"), Some(&maria)).await;
        assert_eq!(status, 404, "{id}: {body}");
        assert!(kind.starts_with("application/problem+json"), "{kind}");
        assert_eq!(body["title"], "No such case", "{id}: {body}");
    }
    // Without a token: 401, for the list and for a case.
    assert_refused("anonymous list", &a.get("/api/v1/me/cases", None).await);
    assert_refused(
        "anonymous case",
        &a.get(&format!("/api/v1/cases/{elins}"), None).await,
    );

    // Case management down: its cases are named missing, OeP's still shown; whether Åsa may
    // see Elin's errand cannot be decided — 503, never 404.
    let (status, _) = a
        .sandbox_post("/casedata/_fault", &json!({"status": 503, "count": 100}))
        .await;
    assert_eq!(status, 200);
    let asa = a.signed_in(ASA).await;
    let (status, _, body) = a.get("/api/v1/me/cases", Some(&asa)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["missing"], json!(["casedata"]), "{body}");
    assert_eq!(body["cases"][0]["id"], json!(viktors), "{body}");
    let (status, _, body) = a.get(&format!("/api/v1/cases/{elins}"), Some(&asa)).await;
    assert_eq!(status, 503, "{body}");
    a.http
        .delete(format!("{}/casedata/_fault", a.sandbox))
        .send()
        .await
        .expect("fault off");

    // The access audit: Åsa's listings (for herself and on each child's behalf), her views
    // and the refusal while case management was down; Maria's refusals name the case ids.
    let store = &a.system.store;
    let asa_rows = a.audit_of(ASA).await;
    let elin_hash = store.audit_hash(ELIN).expect("a hash");
    assert!(
        asa_rows.iter().any(|r| r.action == "view-case"
            && r.allowed
            && r.resource.as_deref() == Some(elins.as_str())
            && r.right.as_deref() == Some("guardian-approve")
            && r.on_behalf_of.as_deref() == Some(elin_hash.as_str())),
        "{asa_rows:?}"
    );
    let listings = asa_rows.iter().filter(|r| r.action == "list-cases").count();
    assert_eq!(
        listings, 6,
        "two listings, each for Åsa and on two children's behalf: {asa_rows:?}"
    );
    assert!(
        asa_rows
            .iter()
            .any(|r| r.action == "view-case" && !r.allowed),
        "{asa_rows:?}"
    );
    let maria_rows = a.audit_of(MARIA).await;
    let refused: Vec<Option<&str>> = maria_rows
        .iter()
        .filter(|r| r.action == "view-case")
        .map(|r| {
            assert!(!r.allowed, "{r:?}");
            r.resource.as_deref()
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            None,
            Some("oep-1"),
            Some("casedata-999999"),
            Some(viktors.as_str()),
            Some(elins.as_str())
        ],
        "newest first; an id that cannot be a case is not stored"
    );

    a.system.shutdown(Duration::from_secs(5)).await;
}
