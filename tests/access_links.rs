//! One-time links to a case (issue 12; seed 002: a view "shared by a one-time link") over
//! HTTP, in a running system with its sandbox (tests/support/access.rs): Åsa shares her
//! daughter Elin's case (`POST /api/v1/cases/{id}/links`), Maria — another person, signed
//! in with e-identification herself — opens the link once; a second use, two uses at once,
//! a forged and an expired link are refused, and the access audit holds every step. People
//! are the sandbox's fictional ones.

#[path = "support/access.rs"]
mod access;

use std::time::Duration;

use access::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Åsa makes a link to `case`: its path.
async fn share(a: &Access, asa: &str, case: &str) -> String {
    let (status, _, body) = a
        .post(&format!("/api/v1/cases/{case}/links"), asa, &json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["link"].as_str().expect("a link").to_string()
}

fn assert_problem(what: &str, (status, kind, body): &(u16, String, Value), want: u16) {
    assert_eq!(*status, want, "{what}: {body}");
    assert!(
        kind.starts_with("application/problem+json"),
        "{what}: {kind}"
    );
    assert!(body["detail"].is_string(), "{what}: {body}");
    for person in [ASA, MARIA, ELIN] {
        assert!(!body.to_string().contains(&person[2..]), "{what}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_link_shows_the_case_once_to_a_signed_in_holder() {
    let a = Access::start().await;
    let elins = a.elins_case().await;
    let (asa, maria) = (a.signed_in(ASA).await, a.signed_in(MARIA).await);

    // Åsa shares Elin's case: a link and when it expires (24 hours by default).
    let (status, _, made) = a
        .post(&format!("/api/v1/cases/{elins}/links"), &asa, &json!({}))
        .await;
    assert_eq!(status, 201, "{made}");
    let link = made["link"].as_str().expect("a link").to_string();
    let token = link.strip_prefix("/api/v1/links/").expect("a link path");
    assert_eq!(token.len(), 43, "{link}");
    let expires = chrono::DateTime::parse_from_rfc3339(made["expires"].as_str().expect("expires"))
        .expect("RFC 3339");
    let hours = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{made}");
    let (_, _, two_days) = a
        .post(
            &format!("/api/v1/cases/{elins}/links"),
            &asa,
            &json!({"validFor": "P2D"}),
        )
        .await;
    let expires =
        chrono::DateTime::parse_from_rfc3339(two_days["expires"].as_str().expect("expires"))
            .expect("RFC 3339");
    assert!(
        (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() >= 47,
        "{two_days}"
    );
    // Longer than seven days, or a validFor that is no duration: refused, saying what to fix.
    let too_long = a
        .post(
            &format!("/api/v1/cases/{elins}/links"),
            &asa,
            &json!({"validFor": "P8D"}),
        )
        .await;
    assert_problem("P8D", &too_long, 422);
    assert!(
        too_long.2["detail"]
            .as_str()
            .is_some_and(|d| d.contains("168 hours")),
        "{}",
        too_long.2
    );
    assert_problem(
        "24h",
        &a.post(
            &format!("/api/v1/cases/{elins}/links"),
            &asa,
            &json!({"validFor": "24h"}),
        )
        .await,
        422,
    );
    // Maria has no right to Elin's case: she cannot share it (404, as for a case that does not exist).
    assert_problem(
        "Maria shares",
        &a.post(&format!("/api/v1/cases/{elins}/links"), &maria, &json!({}))
            .await,
        404,
    );

    // The holder must be signed in, like anyone on Mina sidor.
    assert_refused("anonymous link", &a.get(&link, None).await);

    // Maria opens it: Elin's case as Åsa sees it, under delegation, nobody's personId or number.
    let (status, _, case) = a.get(&link, Some(&maria)).await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["id"], json!(elins), "{case}");
    assert_eq!(case["right"], "delegation", "{case}");
    assert_eq!(case["concerns"], json!({"givenname": "Elin"}), "{case}");
    for p in [ASA, MARIA, ELIN] {
        assert!(!case.to_string().contains(&p[2..]), "{case}");
    }
    // A second time: gone.
    let again = a.get(&link, Some(&maria)).await;
    assert_problem("second use", &again, 410);
    assert_eq!(again.2["title"], "The link has been used", "{}", again.2);
    // Åsa herself cannot use it again either.
    assert_problem("Åsa after use", &a.get(&link, Some(&asa)).await, 410);

    // A forged token (one character changed) is 404 and says nothing of why; the real one
    // is not used up by it.
    let fresh = share(&a, &asa, &elins).await;
    let mut forged = fresh.clone().into_bytes();
    let at = forged.len() - 5;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    let refused = a.get(&forged, Some(&maria)).await;
    assert_problem("forged", &refused, 404);
    assert_eq!(refused.2["title"], "No such link", "{}", refused.2);
    assert_problem(
        "no token",
        &a.get("/api/v1/links/x", Some(&maria)).await,
        404,
    );
    assert_eq!(a.get(&fresh, Some(&maria)).await.0, 200);

    // Two holders at once: exactly one sees the case.
    let raced = share(&a, &asa, &elins).await;
    let mikael = a.signed_in(MIKAEL).await;
    let (one, other) = tokio::join!(a.get(&raced, Some(&maria)), a.get(&raced, Some(&mikael)));
    let mut statuses = [one.0, other.0];
    statuses.sort();
    assert_eq!(statuses, [200, 410], "{} {}", one.2, other.2);

    // An expired link: its time in the store put in the past (as 24 hours later would).
    let expired = share(&a, &asa, &elins).await;
    let key: String = Sha256::digest(expired.trim_start_matches("/api/v1/links/").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let store = &a.system.store;
    let rows = store
        .cache_get("case-links", &key)
        .await
        .expect("the link's state");
    assert_eq!(rows.len(), 1, "kept under the token's hash, not the token");
    assert!(
        !rows[0]
            .1
            .contains(expired.trim_start_matches("/api/v1/links/"))
    );
    let mut state: Value = serde_json::from_str(&rows[0].1).expect("JSON");
    state["expires"] = json!("2020-01-01T00:00:00Z");
    store
        .cache_set("case-links", &key, &state.to_string(), None)
        .await
        .expect("set");
    let gone = a.get(&expired, Some(&maria)).await;
    assert_problem("expired", &gone, 410);
    assert_eq!(gone.2["title"], "The link has expired", "{}", gone.2);

    // The access audit: Åsa's shares (on Elin's behalf, under her right) and her refused use;
    // Maria's view (on Åsa's behalf, under delegation) and her refusals, the forged one
    // naming nothing.
    let (asa_hash, elin_hash) = (
        store.audit_hash(ASA).expect("a hash"),
        store.audit_hash(ELIN).expect("a hash"),
    );
    let asa_rows = a.audit_of(ASA).await;
    let shares: Vec<_> = asa_rows
        .iter()
        .filter(|r| r.action == "share-case")
        .collect();
    assert_eq!(
        shares.iter().filter(|r| r.allowed).count(),
        5,
        "{asa_rows:?}"
    );
    assert!(
        shares
            .iter()
            .filter(|r| r.allowed)
            .all(|r| r.resource.as_deref() == Some(elins.as_str())
                && r.right.as_deref() == Some("guardian-approve")
                && r.on_behalf_of.as_deref() == Some(elin_hash.as_str())),
        "{asa_rows:?}"
    );
    // P8D; the `24h` the schema refused at the door never reached the route.
    assert_eq!(
        shares.iter().filter(|r| !r.allowed).count(),
        1,
        "P8D: {asa_rows:?}"
    );
    assert!(
        asa_rows
            .iter()
            .any(|r| r.action == "view-case-link" && !r.allowed),
        "{asa_rows:?}"
    );
    let maria_rows = a.audit_of(MARIA).await;
    let views: Vec<_> = maria_rows
        .iter()
        .filter(|r| r.action == "view-case-link")
        .collect();
    assert!(
        views.iter().filter(|r| r.allowed).count() >= 2
            && views
                .iter()
                .filter(|r| r.allowed)
                .all(|r| r.right.as_deref() == Some("delegation")
                    && r.on_behalf_of.as_deref() == Some(asa_hash.as_str())
                    && r.resource.as_deref() == Some(elins.as_str())),
        "{maria_rows:?}"
    );
    let refused: Vec<(Option<&str>, Option<&str>)> = views
        .iter()
        .filter(|r| !r.allowed)
        .map(|r| (r.resource.as_deref(), r.on_behalf_of.as_deref()))
        .collect();
    // Newest first: expired, (perhaps the race), no token, forged, second use.
    assert_eq!(
        refused.first(),
        Some(&(Some(elins.as_str()), Some(asa_hash.as_str()))),
        "{maria_rows:?}"
    );
    assert_eq!(
        refused.last(),
        Some(&(Some(elins.as_str()), Some(asa_hash.as_str()))),
        "{maria_rows:?}"
    );
    assert!(
        refused
            .iter()
            .filter(|(r, b)| r.is_none() && b.is_none())
            .count()
            == 2,
        "{maria_rows:?}"
    );
    assert!(
        maria_rows
            .iter()
            .any(|r| r.action == "share-case" && !r.allowed),
        "{maria_rows:?}"
    );

    a.system.shutdown(Duration::from_secs(5)).await;
}
