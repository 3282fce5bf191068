//! The store conformance suite: the state store's behaviour as tests, run on every backend.
//!
//! SQLite runs it in the unit tests (in memory and on a file) through
//! [`store_conformance_suite!`]; PostgreSQL runs [`run_all`] in `tests/store_postgres.rs`.
//! Every test takes two stores on the same database, `a` and `b`, standing for two knut
//! instances (for an in-memory store, two clones of one), and uses names of its own, so the
//! suite can share one database.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{AuditEntry, Claim, JournalEntry, Store};

/// Generates one `#[tokio::test]` per conformance test. `$make` is a future giving
/// `(a, b, guard)`: two stores on one database and a value kept alive during the test
/// (a temporary folder, say).
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        $crate::store_conformance_suite!(@tests $make;
            claim_first_same_duplicate, claim_scopes_are_separate, release_allows_a_new_claim,
            release_of_a_message_frees_its_keys, claim_race_has_one_winner, aggregate_orders_and_dedupes, aggregate_take_once,
            aggregate_take_race_has_one_winner, aggregate_add_and_take_lose_nothing,
            aggregate_claim_holds_the_group, aggregate_expired_by_open_time, watermark_round_trip, mark_seen_once,
            journal_round_trip, journal_batch_across_inserts, journal_keys_find_every_correlation_id, lease_has_one_holder_until_released_or_expired,
            audit_newest_first, cache_set_add_get_delete_and_expire, access_audit_append_and_query);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (a, b, _guard) = $make.await;
                $crate::store::conformance::$name(&a, &b).await;
            }
        )*
    };
}

/// Runs every conformance test in turn (for backends whose setup is costly).
pub async fn run_all(a: &Store, b: &Store) {
    claim_first_same_duplicate(a, b).await;
    claim_scopes_are_separate(a, b).await;
    release_allows_a_new_claim(a, b).await;
    release_of_a_message_frees_its_keys(a, b).await;
    claim_race_has_one_winner(a, b).await;
    aggregate_orders_and_dedupes(a, b).await;
    aggregate_take_once(a, b).await;
    aggregate_take_race_has_one_winner(a, b).await;
    aggregate_add_and_take_lose_nothing(a, b).await;
    aggregate_claim_holds_the_group(a, b).await;
    aggregate_expired_by_open_time(a, b).await;
    watermark_round_trip(a, b).await;
    mark_seen_once(a, b).await;
    journal_round_trip(a, b).await;
    journal_batch_across_inserts(a, b).await;
    journal_keys_find_every_correlation_id(a, b).await;
    lease_has_one_holder_until_released_or_expired(a, b).await;
    audit_newest_first(a, b).await;
    cache_set_add_get_delete_and_expire(a, b).await;
    access_audit_append_and_query(a, b).await;
}

/// The access audit: what one instance appends the other reads, by actor, on whose behalf,
/// action and time, newest first; a personnummer in any form is one hash; no column holds
/// a personnummer; a personnummer-shaped resource and a store without a key are refused.
pub async fn access_audit_append_and_query(a: &Store, b: &Store) {
    use super::{AccessAuditQuery, AccessRecord, AuditKey, StoreError, has_personnummer_shape};
    let key = AuditKey::new(b"the conformance suite's access-audit key, not secret").unwrap();
    let (a, b) = (
        a.clone().with_audit_key(key.clone()),
        b.clone().with_audit_key(key),
    );
    // Fictional people with valid check digits.
    let pnr = |eleven: &str| crate::expr::personnummer::with_check_digit(eleven).unwrap();
    let guardian = pnr("19790314123");
    let child = pnr("20130412238");
    let staff = format!("staff-{}", Uuid::now_v7());
    // Stored with microsecond precision.
    let t0 = DateTime::from_timestamp_micros((Utc::now() - Duration::hours(1)).timestamp_micros())
        .unwrap();
    let at = |s: i64| t0 + Duration::seconds(s);
    let record = |s: i64, actor: &str, on_behalf_of: Option<&str>, action: &str| AccessRecord {
        at: at(s),
        actor: actor.to_string(),
        on_behalf_of: on_behalf_of.map(str::to_string),
        action: action.to_string(),
        resource: None,
        right: None,
        allowed: true,
        route: "guardian-case".into(),
        correlation_id: Uuid::now_v7(),
    };
    // The guardian's number in its short form: the same person.
    let short = format!("{}-{}", &guardian[2..8], &guardian[8..]);
    a.access_audit_append(&record(0, &short, None, "login"))
        .await
        .unwrap();
    let view = AccessRecord {
        resource: Some("case-1".into()),
        right: Some("guardian-view".into()),
        ..record(1, &guardian, Some(&child), "view-case")
    };
    b.access_audit_append(&view).await.unwrap();
    let refused = AccessRecord {
        resource: Some("case-1".into()),
        allowed: false,
        ..record(2, &staff, Some(&child), "view-case")
    };
    a.access_audit_append(&refused).await.unwrap();
    let approve = AccessRecord {
        resource: Some("case-1".into()),
        right: Some("guardian-approve".into()),
        ..record(3, &guardian, Some(&child), "approve")
    };
    a.access_audit_append(&approve).await.unwrap();

    let actions = |rows: &[super::AccessAuditEntry]| {
        rows.iter()
            .map(|r| (r.action.clone(), r.allowed))
            .collect::<Vec<_>>()
    };
    let g = b.audit_hash(&guardian).unwrap();
    let by_guardian = b
        .access_audit_query(&AccessAuditQuery {
            actor: Some(g.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        actions(&by_guardian),
        [
            ("approve".into(), true),
            ("view-case".into(), true),
            ("login".into(), true)
        ]
    );
    let v = &by_guardian[1];
    assert_eq!(v.actor, g);
    assert_eq!(v.on_behalf_of, Some(a.audit_hash(&child).unwrap()));
    assert_eq!(
        (v.resource.as_deref(), v.right.as_deref(), v.route.as_str()),
        (Some("case-1"), Some("guardian-view"), "guardian-case")
    );
    assert_eq!((v.at, v.correlation_id), (view.at, view.correlation_id));
    assert_eq!(by_guardian[2].on_behalf_of, None);

    let for_child = a
        .access_audit_query(&AccessAuditQuery {
            on_behalf_of: Some(a.audit_hash(&child).unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        actions(&for_child),
        [
            ("approve".into(), true),
            ("view-case".into(), false),
            ("view-case".into(), true)
        ]
    );
    assert_eq!(for_child[1].actor, a.audit_hash(&staff).unwrap());
    let views = b
        .access_audit_query(&AccessAuditQuery {
            action: Some("view-case".into()),
            from: Some(at(1)),
            to: Some(at(3)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        actions(&views),
        [("view-case".into(), false), ("view-case".into(), true)]
    );
    let newest = b
        .access_audit_query(&AccessAuditQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(actions(&newest), [("approve".into(), true)]);

    // No column holds a personnummer, in any form: the people are 64 hex digits (which may
    // by chance hold a run of ten digits, so they are checked for the numbers themselves),
    // the plain columns hold nothing personnummer-shaped.
    let rows = sqlx::query(
        "SELECT actor, on_behalf_of, action, resource, access_right, route, correlation_id          FROM knut_access_audit",
    )
    .fetch_all(&a.pool)
    .await
    .unwrap();
    assert!(rows.len() >= 4);
    for row in &rows {
        for i in 0..7 {
            let text: Option<String> = sqlx::Row::try_get(row, i).unwrap();
            let text = text.unwrap_or_default();
            if i < 2 {
                assert!(
                    text.is_empty()
                        || (text.len() == 64 && text.bytes().all(|c| c.is_ascii_hexdigit())),
                    "column {i} is no hash"
                );
            } else {
                assert!(!has_personnummer_shape(&text), "column {i}");
            }
            for p in [&guardian, &child] {
                assert!(!text.contains(&p[2..]), "column {i}");
            }
        }
    }

    // A personnummer-shaped resource is refused, the error naming the field only.
    let err = a
        .access_audit_append(&AccessRecord {
            resource: Some(child.clone()),
            ..record(4, &guardian, None, "view-case")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidValue {
                field: "resource",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains(&child[2..]));
    // A store without a key appends nothing.
    let mut keyless = a.clone();
    keyless.audit_key = None;
    assert!(matches!(
        keyless
            .access_audit_append(&record(5, &guardian, None, "login"))
            .await,
        Err(StoreError::NoAuditKey)
    ));
    assert!(matches!(
        keyless.audit_hash(&guardian),
        Err(StoreError::NoAuditKey)
    ));
    let all = a
        .access_audit_query(&AccessAuditQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
}

/// The `cache` step's store: a value set under a key replaces what it held; values added
/// make a set (the same member again is one, renewed); what one instance writes the other
/// reads; a member or a key is forgotten; an expired one is invisible; caches are separate.
pub async fn cache_set_add_get_delete_and_expire(a: &Store, b: &Store) {
    let name = format!("cache-{}", Uuid::now_v7());
    a.cache_set(&name, "k", "1", None).await.unwrap();
    a.cache_set(&name, "k", "2", None).await.unwrap();
    assert_eq!(
        b.cache_get(&name, "k").await.unwrap(),
        [("".into(), "2".into())]
    );
    assert!(
        b.cache_get(&format!("{name}-other"), "k")
            .await
            .unwrap()
            .is_empty()
    );

    a.cache_add(&name, "s", "m1", "{\"n\":1}", None)
        .await
        .unwrap();
    b.cache_add(&name, "s", "m2", "{\"n\":2}", None)
        .await
        .unwrap();
    a.cache_add(&name, "s", "m1", "{\"n\":1}", None)
        .await
        .unwrap();
    let members: Vec<String> = b
        .cache_get(&name, "s")
        .await
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(members, ["m1", "m2"]);
    b.cache_delete(&name, "s", Some("m1")).await.unwrap();
    assert_eq!(
        a.cache_get(&name, "s").await.unwrap(),
        [("m2".into(), "{\"n\":2}".into())]
    );
    a.cache_delete(&name, "s", None).await.unwrap();
    assert!(b.cache_get(&name, "s").await.unwrap().is_empty());

    let short = Some(std::time::Duration::from_millis(30));
    a.cache_set(&name, "t", "1", short).await.unwrap();
    a.cache_add(&name, "u", "m", "1", short).await.unwrap();
    assert_eq!(b.cache_get(&name, "t").await.unwrap().len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert!(b.cache_get(&name, "t").await.unwrap().is_empty(), "expired");
    assert!(b.cache_get(&name, "u").await.unwrap().is_empty(), "expired");
    a.cache_add(&name, "u", "n", "2", None).await.unwrap();
    assert_eq!(
        b.cache_get(&name, "u").await.unwrap(),
        [("n".into(), "2".into())]
    );
    // Many keys at once: set in one transaction, read in one pass (more keys than one query
    // takes), a key that holds nothing left out.
    let many: Vec<String> = (0..1_200).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    a.cache_set_keys(&name, &refs[..1_100], "7", None)
        .await
        .unwrap();
    a.cache_add(&name, "m1199", "x", "8", None).await.unwrap();
    let got = b.cache_get_keys(&name, &refs).await.unwrap();
    assert_eq!(got.len(), 1_101);
    assert_eq!(got["m0"], vec![(String::new(), "7".to_string())]);
    assert_eq!(got["m1099"], vec![(String::new(), "7".to_string())]);
    assert_eq!(got["m1199"], vec![("x".to_string(), "8".to_string())]);
    assert!(!got.contains_key("m1100"));
}

/// Take a group as a completing member does: claim it, then finish it.
async fn take(store: &Store, route: &str, key: &str) -> Option<crate::store::Group> {
    let claimant = Uuid::now_v7().to_string();
    let group = store
        .aggregate_claim(route, key, &claimant, None)
        .await
        .unwrap()?;
    store.aggregate_finish(route, key, &claimant).await.unwrap();
    Some(group)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// A fictional personnummer-shaped key (born 2013, valid Luhn digit): keys may hold one.
const FICTIONAL_PNR_KEY: &str = "201309219010:2024-05-01";

/// First claim is `First`, a retry of that message `SameMessage`, any other `Duplicate`,
/// on either instance.
pub async fn claim_first_same_duplicate(a: &Store, b: &Store) {
    let scope = unique("route-claim");
    let (m1, m2) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(
        a.claim_key(&scope, FICTIONAL_PNR_KEY, m1).await.unwrap(),
        Claim::First
    );
    assert_eq!(
        a.claim_key(&scope, FICTIONAL_PNR_KEY, m1).await.unwrap(),
        Claim::SameMessage
    );
    assert_eq!(
        b.claim_key(&scope, FICTIONAL_PNR_KEY, m1).await.unwrap(),
        Claim::SameMessage
    );
    assert_eq!(
        b.claim_key(&scope, FICTIONAL_PNR_KEY, m2).await.unwrap(),
        Claim::Duplicate
    );
    assert_eq!(
        a.claim_key(&scope, FICTIONAL_PNR_KEY, m2).await.unwrap(),
        Claim::Duplicate
    );
    // The owner stays the first message, whatever the duplicates did.
    assert_eq!(
        a.claim_key(&scope, FICTIONAL_PNR_KEY, m1).await.unwrap(),
        Claim::SameMessage
    );
}

/// A key is claimed per scope; a key that differs only in case is another key.
pub async fn claim_scopes_are_separate(a: &Store, b: &Store) {
    let (s1, s2) = (unique("scope-a"), unique("scope-b"));
    let (m1, m2) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(a.claim_key(&s1, "Åsa-1", m1).await.unwrap(), Claim::First);
    assert_eq!(b.claim_key(&s2, "Åsa-1", m2).await.unwrap(), Claim::First);
    assert_eq!(a.claim_key(&s1, "åsa-1", m2).await.unwrap(), Claim::First);
    assert_eq!(a.claim_key(&s1, "", m1).await.unwrap(), Claim::First);
}

/// Only the owner releases a claim; after it the key can be claimed afresh.
pub async fn release_allows_a_new_claim(a: &Store, b: &Store) {
    let scope = unique("release");
    let (m1, m2, m3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(a.claim_key(&scope, "k", m1).await.unwrap(), Claim::First);
    // Another message cannot release it.
    b.release_key(&scope, "k", m2).await.unwrap();
    assert_eq!(
        b.claim_key(&scope, "k", m2).await.unwrap(),
        Claim::Duplicate
    );
    // The owner can; then the next message is first, and the old one a duplicate.
    a.release_key(&scope, "k", m1).await.unwrap();
    assert_eq!(b.claim_key(&scope, "k", m3).await.unwrap(), Claim::First);
    assert_eq!(
        a.claim_key(&scope, "k", m1).await.unwrap(),
        Claim::Duplicate
    );
    // Releasing what nobody holds is fine.
    a.release_key(&scope, "never-claimed", m1).await.unwrap();
}

/// Releasing a message's claims frees every key it holds, in every scope, and no other
/// message's keys.
pub async fn release_of_a_message_frees_its_keys(a: &Store, b: &Store) {
    let (s1, s2) = (unique("release-of"), unique("release-of"));
    let (m1, m2, m3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(a.claim_key(&s1, "k", m1).await.unwrap(), Claim::First);
    assert_eq!(
        a.claim_key(&s2, FICTIONAL_PNR_KEY, m1).await.unwrap(),
        Claim::First
    );
    assert_eq!(a.claim_key(&s1, "other", m2).await.unwrap(), Claim::First);
    assert_eq!(b.release_keys_of(m1).await.unwrap(), 2);
    assert_eq!(b.claim_key(&s1, "k", m3).await.unwrap(), Claim::First);
    assert_eq!(
        b.claim_key(&s2, FICTIONAL_PNR_KEY, m3).await.unwrap(),
        Claim::First
    );
    // m2 keeps its claim.
    assert_eq!(
        b.claim_key(&s1, "other", m3).await.unwrap(),
        Claim::Duplicate
    );
    assert_eq!(a.release_keys_of(Uuid::now_v7()).await.unwrap(), 0);
}

/// 100 concurrent claims of one fresh key from different messages on two instances:
/// exactly one `First`. 100 concurrent claims by one message: one `First`, the rest
/// `SameMessage`.
pub async fn claim_race_has_one_winner(a: &Store, b: &Store) {
    let scope = unique("race");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            store.claim_key(&scope, "k", Uuid::now_v7()).await.unwrap()
        }));
    }
    let mut claims = Vec::new();
    for t in tasks {
        claims.push(t.await.unwrap());
    }
    assert_eq!(claims.iter().filter(|c| **c == Claim::First).count(), 1);
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::Duplicate).count(),
        99
    );

    let one = Uuid::now_v7();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            store.claim_key(&scope, "same", one).await.unwrap()
        }));
    }
    let mut claims = Vec::new();
    for t in tasks {
        claims.push(t.await.unwrap());
    }
    assert_eq!(claims.iter().filter(|c| **c == Claim::First).count(), 1);
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::SameMessage).count(),
        99
    );
}

/// Items come back in arrival order; a redelivered message id is added once; the group's
/// open time is that of its first item.
pub async fn aggregate_orders_and_dedupes(a: &Store, b: &Store) {
    let route = unique("agg");
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let g1 = a
        .aggregate_add(&route, "class-7b", ids[0], &json!({"n": 1, "namn": "Åke"}))
        .await
        .unwrap();
    assert_eq!(g1.key, "class-7b");
    assert_eq!(g1.items, vec![json!({"n": 1, "namn": "Åke"})]);
    let g2 = b
        .aggregate_add(&route, "class-7b", ids[1], &json!([2, null, "två"]))
        .await
        .unwrap();
    assert_eq!(g2.opened_at, g1.opened_at);
    // Redelivery of the second message: not added again, even with another body.
    let g2b = a
        .aggregate_add(&route, "class-7b", ids[1], &json!("other"))
        .await
        .unwrap();
    assert_eq!(g2b.items.len(), 2);
    let g3 = b
        .aggregate_add(&route, "class-7b", ids[2], &json!(3))
        .await
        .unwrap();
    assert_eq!(
        g3.items,
        vec![
            json!({"n": 1, "namn": "Åke"}),
            json!([2, null, "två"]),
            json!(3)
        ]
    );
    assert_eq!(g3.opened_at, g1.opened_at);
    // Another key and another route are other groups.
    let other = a
        .aggregate_add(&route, "class-8a", ids[0], &json!(1))
        .await
        .unwrap();
    assert_eq!(other.items.len(), 1);
    let other_route = unique("agg-other");
    let other = a
        .aggregate_add(&other_route, "class-7b", ids[0], &json!(1))
        .await
        .unwrap();
    assert_eq!(other.items.len(), 1);
}

/// A group is taken once with all its items; after that it is gone, and a new add opens
/// a fresh group.
pub async fn aggregate_take_once(a: &Store, b: &Store) {
    let route = unique("take");
    for n in 0..5 {
        a.aggregate_add(&route, "g", Uuid::now_v7(), &json!(n))
            .await
            .unwrap();
    }
    let opened = a
        .aggregate_add(&route, "g", Uuid::now_v7(), &json!(5))
        .await
        .unwrap()
        .opened_at;
    let taken = take(b, &route, "g").await.unwrap();
    assert_eq!(taken.key, "g");
    assert_eq!(taken.items, (0..6).map(|n| json!(n)).collect::<Vec<_>>());
    assert_eq!(taken.opened_at, opened);
    assert!(take(a, &route, "g").await.is_none());
    assert!(take(a, &route, "never").await.is_none());
    let fresh = a
        .aggregate_add(&route, "g", Uuid::now_v7(), &json!("new"))
        .await
        .unwrap();
    assert_eq!(fresh.items, vec![json!("new")]);
    assert!(fresh.opened_at >= opened);
}

/// 20 concurrent takes of one group on two instances: exactly one gets it, whole.
pub async fn aggregate_take_race_has_one_winner(a: &Store, b: &Store) {
    let route = unique("take-race");
    for n in 0..10 {
        a.aggregate_add(&route, "g", Uuid::now_v7(), &json!(n))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let route = route.clone();
        tasks.push(tokio::spawn(async move { take(&store, &route, "g").await }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(group) = t.await.unwrap() {
            winners.push(group);
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(
        winners[0].items,
        (0..10).map(|n| json!(n)).collect::<Vec<_>>()
    );
}

/// Adds and takes of one group racing on two instances: every item ends in exactly one
/// taken group, none lost, none twice.
pub async fn aggregate_add_and_take_lose_nothing(a: &Store, b: &Store) {
    let route = unique("add-take");
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let route = route.clone();
        tasks.push(tokio::spawn(async move {
            if i % 6 == 5 {
                take(&store, &route, "g").await
            } else {
                // A group being completed takes no new member: the member tries again, as
                // the aggregate step's retry does.
                let id = Uuid::now_v7();
                while store
                    .aggregate_add(&route, "g", id, &json!(i))
                    .await
                    .unwrap()
                    .added
                    == crate::store::Added::GroupCompleting
                {
                    tokio::task::yield_now().await;
                }
                None
            }
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        if let Some(group) = t.await.unwrap() {
            seen.extend(group.items);
        }
    }
    if let Some(rest) = take(a, &route, "g").await {
        seen.extend(rest.items);
    }
    let unique_items: HashSet<String> = seen.iter().map(|v| v.to_string()).collect();
    assert_eq!(seen.len(), 50, "items taken: {seen:?}");
    assert_eq!(unique_items.len(), 50);
}

/// A claimed group takes no new member; its claimant may claim it again, another may not
/// until the claim is stale; once finished, its members add nothing and open no group.
pub async fn aggregate_claim_holds_the_group(a: &Store, b: &Store) {
    use crate::store::Added;
    let route = unique("claim");
    let (m1, m2, late) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    a.aggregate_add(&route, "g", m1, &json!(1)).await.unwrap();
    a.aggregate_add(&route, "g", m2, &json!(2)).await.unwrap();
    let claimed = b
        .aggregate_claim(&route, "g", "c1", None)
        .await
        .unwrap()
        .expect("the claim");
    assert_eq!(claimed.items, vec![json!(1), json!(2)]);
    // A late member waits for the next group; a member redelivered is still a member and
    // sees who completes the group.
    let refused = a.aggregate_add(&route, "g", late, &json!(3)).await.unwrap();
    assert_eq!(refused.added, Added::GroupCompleting);
    assert_eq!(refused.items.len(), 2);
    let again = a.aggregate_add(&route, "g", m2, &json!(2)).await.unwrap();
    assert_eq!(again.added, Added::Member);
    assert_eq!(again.completing.as_deref(), Some("c1"));
    // Another claimant gets nothing; the claimant itself gets it again; a stale claim is
    // taken over.
    assert!(
        a.aggregate_claim(&route, "g", "c2", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        a.aggregate_claim(&route, "g", "c1", None)
            .await
            .unwrap()
            .is_some()
    );
    let future = chrono::Utc::now() + Duration::seconds(60);
    assert!(
        a.aggregate_claim(&route, "g", "c2", Some(future))
            .await
            .unwrap()
            .is_some()
    );
    // The old claimant's finish does nothing; the holder's removes the group.
    a.aggregate_finish(&route, "g", "c1").await.unwrap();
    assert!(
        a.aggregate_claim(&route, "g", "c2", None)
            .await
            .unwrap()
            .is_some()
    );
    b.aggregate_finish(&route, "g", "c2").await.unwrap();
    assert!(
        a.aggregate_claim(&route, "g", "c2", None)
            .await
            .unwrap()
            .is_none()
    );
    // Its members redelivered add nothing and open no group; the late one opens the next.
    let done = a.aggregate_add(&route, "g", m1, &json!(1)).await.unwrap();
    assert_eq!(done.added, Added::AlreadyCompleted);
    assert!(done.items.is_empty());
    assert!(
        a.aggregate_expired(&route, future)
            .await
            .unwrap()
            .is_empty()
    );
    let next = b.aggregate_add(&route, "g", late, &json!(3)).await.unwrap();
    assert_eq!(next.added, Added::Member);
    assert_eq!(next.items, vec![json!(3)]);
}

/// Groups opened before the given time are expired, per route, oldest first.
pub async fn aggregate_expired_by_open_time(a: &Store, b: &Store) {
    let route = unique("expire");
    let first = a
        .aggregate_add(&route, "old", Uuid::now_v7(), &json!(1))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = b
        .aggregate_add(&route, "new", Uuid::now_v7(), &json!(2))
        .await
        .unwrap();
    let other_route = unique("expire-other");
    a.aggregate_add(&other_route, "x", Uuid::now_v7(), &json!(3))
        .await
        .unwrap();
    // Strictly before: a group opened at exactly that time is not expired.
    assert!(
        a.aggregate_expired(&route, first.opened_at)
            .await
            .unwrap()
            .is_empty()
    );
    let micro = Duration::microseconds(1);
    assert_eq!(
        a.aggregate_expired(&route, first.opened_at + micro)
            .await
            .unwrap(),
        vec![("old".to_string(), first.opened_at)]
    );
    assert_eq!(
        b.aggregate_expired(&route, second.opened_at + micro)
            .await
            .unwrap(),
        vec![
            ("old".to_string(), first.opened_at),
            ("new".to_string(), second.opened_at)
        ]
    );
    take(b, &route, "old").await;
    assert_eq!(
        a.aggregate_expired(&route, Utc::now() + Duration::seconds(1))
            .await
            .unwrap(),
        vec![("new".to_string(), second.opened_at)]
    );
}

/// A watermark is absent until set, then the last value set, shared by the instances.
pub async fn watermark_round_trip(a: &Store, b: &Store) {
    let endpoint = unique("poll");
    assert_eq!(a.watermark(&endpoint).await.unwrap(), None);
    a.set_watermark(&endpoint, "2024-05-01T06:00:00+02:00")
        .await
        .unwrap();
    assert_eq!(
        b.watermark(&endpoint).await.unwrap().as_deref(),
        Some("2024-05-01T06:00:00+02:00")
    );
    b.set_watermark(&endpoint, "").await.unwrap();
    assert_eq!(a.watermark(&endpoint).await.unwrap().as_deref(), Some(""));
    b.set_watermark(&endpoint, "ärende 42").await.unwrap();
    assert_eq!(
        a.watermark(&endpoint).await.unwrap().as_deref(),
        Some("ärende 42")
    );
    assert_eq!(a.watermark(&unique("poll-other")).await.unwrap(), None);
}

/// An item is new once per endpoint, also under concurrency; asking whether it was seen
/// records nothing.
pub async fn mark_seen_once(a: &Store, b: &Store) {
    let endpoint = unique("seen");
    assert!(!b.is_seen(&endpoint, "errand-1").await.unwrap());
    assert!(
        !a.is_seen(&endpoint, "errand-1").await.unwrap(),
        "asking records nothing"
    );
    assert!(a.mark_seen(&endpoint, "errand-1").await.unwrap());
    assert!(b.is_seen(&endpoint, "errand-1").await.unwrap());
    assert!(!b.is_seen(&endpoint, "errand-2").await.unwrap());
    assert!(!b.is_seen(&unique("seen-other"), "errand-1").await.unwrap());
    assert!(!b.mark_seen(&endpoint, "errand-1").await.unwrap());
    assert!(b.mark_seen(&endpoint, "errand-2").await.unwrap());
    assert!(
        a.mark_seen(&unique("seen-other"), "errand-1")
            .await
            .unwrap()
    );
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            store.mark_seen(&endpoint, "errand-3").await.unwrap()
        }));
    }
    let mut firsts = 0;
    for t in tasks {
        if t.await.unwrap() {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1);
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap()
}

/// Journal entries come back whole, for their correlation id only, in time order (ties in
/// write order), from either instance.
pub async fn journal_round_trip(a: &Store, b: &Store) {
    let correlation_id = Uuid::now_v7();
    let message_id = Uuid::now_v7();
    let t0 = 1_714_540_000_123_456; // 2024-05-01, microsecond precision
    let entry = |micros: i64, step: &str, outcome: &str, detail: Option<&str>| JournalEntry {
        at: at(micros),
        message_id,
        correlation_id,
        route: "placement-change".into(),
        step: step.into(),
        outcome: outcome.into(),
        duration_us: 1_234,
        detail: detail.map(str::to_string),
    };
    let entries = vec![
        entry(t0, "ingress", "ok", None),
        entry(t0 + 10, "steps[0].validate", "ok", None),
        entry(t0 + 10, "steps[1].to", "retry", Some("http 503")),
        entry(t0 + 5_000_000, "steps[1].to", "ok", Some("")),
    ];
    // Written out of time order, from both instances.
    b.journal(&entries[3]).await.unwrap();
    a.journal(&entries[0]).await.unwrap();
    b.journal(&entries[1]).await.unwrap();
    a.journal(&entries[2]).await.unwrap();
    let mut other = entry(t0, "ingress", "ok", None);
    other.correlation_id = Uuid::now_v7();
    a.journal(&other).await.unwrap();

    assert_eq!(a.journal_for(correlation_id).await.unwrap(), entries);
    assert_eq!(
        b.journal_for(other.correlation_id).await.unwrap(),
        vec![other]
    );
    assert!(a.journal_for(Uuid::now_v7()).await.unwrap().is_empty());
}

/// A batch longer than one multi-row `INSERT` (64 rows) is written whole, every column of
/// every row in its place (a detail present on every other row, so that a shifted
/// parameter shows).
pub async fn journal_batch_across_inserts(a: &Store, b: &Store) {
    let correlation_id = Uuid::now_v7();
    let t0 = 1_714_540_000_000_000;
    let entries: Vec<JournalEntry> = (0..130i64)
        .map(|i| JournalEntry {
            at: at(t0 + i),
            message_id: Uuid::now_v7(),
            correlation_id,
            route: format!("route-{}", i % 7),
            step: format!("steps[{i}].transform"),
            outcome: if i % 3 == 0 { "failed" } else { "ok" }.into(),
            duration_us: i * 11,
            detail: (i % 2 == 1).then(|| format!("detail {i}")),
        })
        .collect();
    a.journal_many(&entries).await.unwrap();
    assert_eq!(
        b.journal_of(&[correlation_id], 1_000).await.unwrap(),
        entries
    );
    a.journal_many(&[]).await.unwrap();
}

/// Business keys: noted once per key and correlation id (again is no error, the first time
/// stays), found by value (of any key, or of one), listed per correlation id; the hops of
/// several correlation ids come back in time order, the first `limit` of them.
pub async fn journal_keys_find_every_correlation_id(a: &Store, b: &Store) {
    use super::JournalKey;
    let (application, decision, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // A value no other test (or earlier run on a shared database) writes.
    let value = format!("9{}", &Uuid::now_v7().simple().to_string()[20..]);
    let number = format!("PRH-{}", &Uuid::now_v7().simple().to_string()[20..]);
    let key = |name: &str, value: &str, correlation_id: Uuid, micros: i64| {
        (
            JournalKey {
                name: name.into(),
                value: value.into(),
                correlation_id,
            },
            at(micros),
        )
    };
    let t0 = 1_714_540_000_000_000;
    a.journal_keys_many(&[
        key("flowInstanceId", &value, application, t0),
        key("errandNumber", &number, application, t0 + 1),
    ])
    .await
    .unwrap();
    // Again, later, from the other instance: no error, and the first time stays.
    b.journal_keys_many(&[
        key("errandNumber", &number, decision, t0 + 10),
        key("flowInstanceId", &value, application, t0 + 20),
        key("errandNumber", &value, other, t0 + 30),
    ])
    .await
    .unwrap();
    b.journal_keys_many(&[]).await.unwrap();

    let found = b.journal_key_correlations(None, &value, 10).await.unwrap();
    assert_eq!(
        found
            .iter()
            .map(|k| (k.name.as_str(), k.correlation_id))
            .collect::<Vec<_>>(),
        [("flowInstanceId", application), ("errandNumber", other)],
        "first noted first"
    );
    let one = a
        .journal_key_correlations(Some("flowInstanceId"), &value, 10)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].correlation_id, application);
    assert_eq!(
        b.journal_key_correlations(None, &value, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        a.journal_key_correlations(None, "nothing-here", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let by_number = a.journal_key_correlations(None, &number, 10).await.unwrap();
    assert_eq!(
        by_number
            .iter()
            .map(|k| k.correlation_id)
            .collect::<Vec<_>>(),
        [application, decision]
    );
    let mut of = a.journal_keys_of(&[application, decision]).await.unwrap();
    of.sort();
    let mut want = vec![
        key("errandNumber", &number, application, 0).0,
        key("errandNumber", &number, decision, 0).0,
        key("flowInstanceId", &value, application, 0).0,
    ];
    want.sort();
    assert_eq!(of, want);
    assert!(a.journal_keys_of(&[]).await.unwrap().is_empty());

    // The hops of both correlation ids, in time order, written from both instances.
    let hop = |micros: i64, correlation_id: Uuid, route: &str| JournalEntry {
        at: at(micros),
        message_id: Uuid::now_v7(),
        correlation_id,
        route: route.into(),
        step: "end".into(),
        outcome: "ok".into(),
        duration_us: 7,
        detail: Some("HTTP 200".into()),
    };
    let hops = vec![
        hop(t0 + 100, application, "leave-application-in"),
        hop(t0 + 200, application, "case-open"),
        hop(t0 + 300, decision, "case-decision-in"),
        hop(t0 + 400, decision, "oep-decision-status"),
    ];
    b.journal_many(&[hops[3].clone(), hops[1].clone()])
        .await
        .unwrap();
    a.journal_many(&[hops[0].clone(), hops[2].clone(), hop(t0 + 150, other, "x")])
        .await
        .unwrap();
    assert_eq!(
        b.journal_of(&[decision, application], 100).await.unwrap(),
        hops
    );
    assert_eq!(
        a.journal_of(&[application, decision], 3).await.unwrap(),
        hops[..3]
    );
    assert!(a.journal_of(&[], 10).await.unwrap().is_empty());
}

/// A lease: one holder at a time, renewable by its holder, free after release or expiry.
pub async fn lease_has_one_holder_until_released_or_expired(a: &Store, b: &Store) {
    let name = format!("poll/lease-{}", Uuid::now_v7());
    let long = std::time::Duration::from_secs(60);
    assert!(a.take_lease(&name, "a", long).await.unwrap());
    assert!(!b.take_lease(&name, "b", long).await.unwrap(), "held by a");
    assert!(a.take_lease(&name, "a", long).await.unwrap(), "a renews");
    a.release_lease(&name, "b").await.unwrap();
    assert!(
        !b.take_lease(&name, "b", long).await.unwrap(),
        "only the holder releases"
    );
    a.release_lease(&name, "a").await.unwrap();
    assert!(
        b.take_lease(&name, "b", long).await.unwrap(),
        "free after release"
    );
    // An expired lease can be taken; racing takers get it once.
    let short = format!("poll/lease-{}", Uuid::now_v7());
    assert!(
        a.take_lease(&short, "a", std::time::Duration::from_millis(50))
            .await
            .unwrap()
    );
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    let (x, y) = tokio::join!(
        a.take_lease(&short, "c", long),
        b.take_lease(&short, "d", long)
    );
    assert_eq!(
        [x.unwrap(), y.unwrap()].iter().filter(|t| **t).count(),
        1,
        "one of the racers"
    );
}

/// Admin calls written by two instances are read back newest first, with who made them.
pub async fn audit_newest_first(a: &Store, b: &Store) {
    let actor = unique("ops");
    let t0 = 1_714_540_000_123_456;
    let entry = |micros: i64, path: &str, status: u16| AuditEntry {
        at: at(micros),
        actor: actor.clone(),
        roles: "viewer,operator".into(),
        method: "GET".into(),
        path: path.into(),
        status,
    };
    let written = [
        entry(t0, "/api/routes", 200),
        entry(t0 + 1, "/api/routes/r/dlq", 200),
        entry(t0 + 2, "/api/routes/r/messages", 403),
    ];
    a.audit(&written[0]).await.unwrap();
    b.audit(&written[2]).await.unwrap();
    a.audit(&written[1]).await.unwrap();
    let mine: Vec<AuditEntry> = b
        .audit_recent(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.actor == actor)
        .collect();
    let mut newest_first = written.to_vec();
    newest_first.reverse();
    assert_eq!(mine, newest_first);
}
