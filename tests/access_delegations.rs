//! Delegations end to end (issue 12; seed 002: "a view delegated for a limited time"): over
//! HTTP against the sandbox, with the `residents` scheme configured as production would be
//! (tests/support/access.rs). Åsa Sandberg lets Maria Sjöberg see all her own cases and
//! Mikael Sandberg one of them for a few seconds: each sees what was delegated under the
//! right `delegation` — never the children's cases Åsa sees as a guardian —, nothing once
//! the delegation ended or was revoked, and the access audit holds every step. People are
//! the sandbox's fictional ones.

#[path = "support/access.rs"]
mod access;

use std::time::Duration;

use access::{ASA, Access, MARIA, MIKAEL};
use serde_json::{Value, json};

/// The (id, right, whose personId) of every case `token`'s person is shown, sorted.
async fn cases_of(a: &Access, token: &str) -> Vec<(String, String, String)> {
    let (status, _, body) = a.get("/api/v1/me/cases", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["missing"], json!([]), "{body}");
    let mut seen: Vec<(String, String, String)> = body["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&c["id"]),
                text(&c["right"]),
                text(&c["concerns"]["personId"]),
            )
        })
        .collect();
    seen.sort();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegation_shows_my_cases_until_it_ends_or_is_revoked() {
    let a = Access::start().await;
    let (asa_id, maria_id, mikael_id) = (
        a.person_id(ASA).await,
        a.person_id(MARIA).await,
        a.person_id(MIKAEL).await,
    );

    // Åsa's own application in OeP, and an errand about Elin (14) in case management, which
    // Åsa sees as her guardian — not hers to delegate.
    let asas = a.oep_case(ASA).await;
    a.elins_case().await;

    let (asa, maria, mikael) = (
        a.signed_in(ASA).await,
        a.signed_in(MARIA).await,
        a.signed_in(MIKAEL).await,
    );
    assert_eq!(cases_of(&a, &maria).await, vec![], "nothing before");
    let elins = cases_of(&a, &asa)
        .await
        .into_iter()
        .find(|(_, right, _)| right == "guardian-approve")
        .expect("Elin's errand")
        .0;

    // Refused, each with a problem saying what to change: to herself, an until already
    // past, a body the schema refuses (every wrong place listed), a case she sees only as
    // Elin's guardian.
    let post = async |body: Value| {
        let (status, _, answer) = a.post("/api/v1/me/delegations", &asa, &body).await;
        (status, answer)
    };
    let month = (chrono::Local::now().date_naive() + chrono::Days::new(30)).to_string();
    let (status, p) = post(json!({"to": ASA, "until": month, "scope": "cases"})).await;
    assert_eq!(
        (status, p["type"].as_str()),
        (
            422,
            Some("https://knutpunkt.sundsvall.se/problems/delegation-to-self")
        ),
        "{p}"
    );
    let (status, p) = post(json!({"to": MARIA, "until": "2020-01-01", "scope": "cases"})).await;
    assert_eq!(status, 422, "{p}");
    let (status, p) =
        post(json!({"to": "19840227-6640", "until": "soon", "scope": "everything", "extra": 1}))
            .await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["errors"].as_array().map(Vec::len), Some(4), "{p}");
    assert!(!p.to_string().contains("8402276"), "{p}");
    let (status, p) = post(json!({"to": MARIA, "until": month, "scope": elins})).await;
    assert_eq!(
        (status, p["type"].as_str()),
        (
            403,
            Some("https://knutpunkt.sundsvall.se/problems/not-your-own-case")
        ),
        "{p}"
    );

    // Åsa lets Maria see all her cases for a month: Maria sees Åsa's own case, under
    // delegation and naming Åsa — and not Elin's.
    let (status, given) = post(json!({"to": MARIA, "until": month, "scope": "cases"})).await;
    assert_eq!(status, 201, "{given}");
    assert_eq!(given["to"], json!({"personId": maria_id}), "{given}");
    assert_eq!(given["scope"], json!("cases"), "{given}");
    for p in [ASA, MARIA] {
        assert!(!given.to_string().contains(&p[2..]), "{given}");
    }
    let to_maria = given["id"].as_str().expect("an id").to_string();
    assert_eq!(
        cases_of(&a, &maria).await,
        vec![(asas.clone(), "delegation".into(), asa_id.clone())]
    );
    let (status, _, case) = a.get(&format!("/api/v1/cases/{asas}"), Some(&maria)).await;
    assert_eq!(
        (status, case["right"].clone()),
        (200, json!("delegation")),
        "{case}"
    );
    assert_eq!(case["concerns"]["givenname"], json!("Åsa"), "{case}");
    let (status, _, _) = a.get(&format!("/api/v1/cases/{elins}"), Some(&maria)).await;
    assert_eq!(status, 404);

    // Both see it listed, by personId and name.
    let (status, _, mine) = a.get("/api/v1/me/delegations", Some(&asa)).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["given"][0]["id"], json!(to_maria), "{mine}");
    assert_eq!(
        mine["given"][0]["to"]["personId"],
        json!(maria_id),
        "{mine}"
    );
    assert_eq!(mine["received"], json!([]), "{mine}");
    let (_, _, hers) = a.get("/api/v1/me/delegations", Some(&maria)).await;
    assert_eq!(
        hers["received"][0]["from"]["personId"],
        json!(asa_id),
        "{hers}"
    );
    assert_eq!(
        hers["received"][0]["from"]["givenname"],
        json!("Åsa"),
        "{hers}"
    );
    assert!(!hers.to_string().contains(&ASA[2..]), "{hers}");

    // Mikael may see her own case for three seconds: he does, then he does not.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, short) = post(json!({"to": MIKAEL, "until": soon, "scope": asas})).await;
    assert_eq!(status, 201, "{short}");
    assert_eq!(short["to"]["personId"], json!(mikael_id), "{short}");
    let delegated = |cases: Vec<(String, String, String)>| -> Vec<(String, String, String)> {
        cases
            .into_iter()
            .filter(|(_, right, _)| right == "delegation")
            .collect()
    };
    assert_eq!(
        delegated(cases_of(&a, &mikael).await),
        vec![(asas.clone(), "delegation".into(), asa_id.clone())]
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        delegated(cases_of(&a, &mikael).await),
        vec![],
        "it has ended"
    );
    let (status, _, _) = a.get(&format!("/api/v1/cases/{asas}"), Some(&mikael)).await;
    assert_eq!(status, 404);

    // Maria cannot revoke Åsa's delegation; Åsa can, once. Then Maria sees nothing.
    let revoke = format!("/api/v1/me/delegations/{to_maria}");
    let (status, _, _) = a
        .call(reqwest::Method::DELETE, &revoke, &maria, None)
        .await
        .parts();
    assert_eq!(status, 404);
    let (status, _, revoked) = a
        .call(reqwest::Method::DELETE, &revoke, &asa, None)
        .await
        .parts();
    assert_eq!(
        (status, revoked["revoked"].clone()),
        (200, json!(true)),
        "{revoked}"
    );
    let (status, _, _) = a
        .call(reqwest::Method::DELETE, &revoke, &asa, None)
        .await
        .parts();
    assert_eq!(status, 404, "revoked already");
    assert_eq!(cases_of(&a, &maria).await, vec![]);
    let (status, _, _) = a.get(&format!("/api/v1/cases/{asas}"), Some(&maria)).await;
    assert_eq!(status, 404);
    let (_, _, mine) = a.get("/api/v1/me/delegations", Some(&asa)).await;
    assert_eq!(
        mine["given"],
        json!([]),
        "the ended and the revoked are gone: {mine}"
    );

    // The access audit: Åsa's delegations, refusals and revocation; Maria's listing and
    // view under delegation, on Åsa's behalf (by personId), and her refused revocation.
    let store = &a.system.store;
    let asa_rows = a.audit_of(ASA).await;
    let count = |action: &str, allowed: bool| {
        asa_rows
            .iter()
            .filter(|r| r.action == action && r.allowed == allowed)
            .count()
    };
    assert_eq!(count("create-delegation", true), 2, "{asa_rows:?}");
    assert_eq!(
        count("create-delegation", false),
        3,
        "the schema refuses at the door: {asa_rows:?}"
    );
    assert_eq!(count("revoke-delegation", true), 1, "{asa_rows:?}");
    assert_eq!(count("revoke-delegation", false), 1, "{asa_rows:?}");
    assert!(count("list-delegations", true) >= 2, "{asa_rows:?}");
    let on_asa = store.audit_hash(&asa_id).expect("a hash");
    let maria_rows = a.audit_of(MARIA).await;
    assert!(
        maria_rows.iter().any(|r| r.action == "view-case"
            && r.allowed
            && r.right.as_deref() == Some("delegation")
            && r.resource.as_deref() == Some(asas.as_str())
            && r.on_behalf_of.as_deref() == Some(on_asa.as_str())),
        "{maria_rows:?}"
    );
    assert!(
        maria_rows.iter().any(|r| r.action == "list-cases"
            && r.right.as_deref() == Some("delegation")
            && r.on_behalf_of.as_deref() == Some(on_asa.as_str())),
        "{maria_rows:?}"
    );
    assert!(
        maria_rows.iter().any(|r| r.action == "revoke-delegation"
            && !r.allowed
            && r.resource.as_deref() == Some(to_maria.as_str())),
        "{maria_rows:?}"
    );
    let mikael_rows = a.audit_of(MIKAEL).await;
    assert!(
        mikael_rows.iter().any(|r| r.action == "view-case"
            && !r.allowed
            && r.resource.as_deref() == Some(asas.as_str())),
        "{mikael_rows:?}"
    );

    a.system.shutdown(Duration::from_secs(5)).await;
}
