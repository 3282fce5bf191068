//! Use case 4: attendance. The teacher Lars Ek registers a day of two lessons of group 7A at
//! Björkhagens skola (38120001) in lärplattform: Märta Lindqvist (two guardians with
//! custody) is absent without leave from both, Alva Sjöberg (skyddad folkbokföring, one
//! guardian, also protected) from the first, Olle Lindqvist is present at both. knut polls
//! lärplattform (every second here), opens one errand per absent student and day in case
//! management, tells every guardian once per student and day through messaging (e-mail;
//! a web message, never a letter, for the protected family), and the nightly batch (sent
//! by hand through the admin API, as `knut send` does) delivers the day's statistics to
//! verksamhetsplanering.

use std::time::Duration;

use knut_sandbox::seed::id_for;
use serde_json::{Value, json};

use crate::flows::{Flow, On, patch_file, text};

const DATE: &str = "2026-11-24";
const LARS_EK: &str = "19760415-1238";
const MARTA: &str = "20130412-2383";
const OLLE: &str = "20180103-4115";
const ALVA: &str = "20140909-3224";
const ANNA: &str = "19850312-2387";
const ERIK: &str = "19830921-4578";
const MARIA: &str = "19840227-6649";

/// The person id (SS 12000, the messaging party id) the sandbox gives a civic number.
fn id_of(civic_no: &str) -> String {
    id_for(&civic_no.replace('-', "")).to_string()
}

/// Every form a personnummer may take in a text: with and without the century, with and
/// without the hyphen.
fn forms(pnr: &str) -> Vec<String> {
    let digits: String = pnr.chars().filter(char::is_ascii_digit).collect();
    vec![
        pnr.to_string(),
        digits.clone(),
        digits[2..].to_string(),
        format!("{}-{}", &digits[2..8], &digits[8..]),
    ]
}

/// Parts of the seed's postal addresses of the two families (the Sjöbergs' is the
/// protected one): none may be in a notice.
const ADDRESS_PARTS: &[&str] = &[
    "Skogsstigen",
    "855 90",
    "85590",
    "Granvägen",
    "852 38",
    "85238",
];

pub async fn run(on: On) {
    let flow = Flow::start_with(on, "uc4-attendance", |root| {
        patch_file(
            root,
            "routes/attendance-poll.yaml",
            "every: 1m",
            "every: 1s",
        );
        // Pages of two records: the day's six come on three pages (SS 12000 pageToken).
        patch_file(
            root,
            "adapters/larplattform.yaml",
            "      expand: '\"calendarEvent\"'\n",
            "      expand: '\"calendarEvent\"'\n      limit: '\"2\"'\n",
        );
    })
    .await;

    // The teacher registers the day.
    let student = |civic_no: &str, present: bool| {
        if present {
            json!({"civicNo": civic_no, "present": true})
        } else {
            json!({"civicNo": civic_no, "present": false, "absence": "invalid"})
        }
    };
    let (status, answer) = flow
        .post(
            &format!("{}/larplattform/_register-attendance", flow.sandbox),
            &json!({
                "teacher": LARS_EK, "schoolUnitCode": "38120001", "group": "7A", "date": DATE,
                "lessons": [
                    {"subject": "Matematik", "start": "08:10", "minutes": 60,
                     "students": [student(MARTA, false), student(ALVA, false), student(OLLE, true)]},
                    {"subject": "Svenska", "start": "09:20", "minutes": 50,
                     "students": [student(MARTA, false), student(ALVA, true), student(OLLE, true)]},
                ],
            }),
            None,
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["data"].as_array().map(Vec::len), Some(6), "{answer}");
    let registered = answer.clone();

    // Case management: one errand per absent student for the day (Märta missed two
    // lessons, still one errand), none for Olle.
    // (The leave applications seeded in OeP open cases of their own: not counted here.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while absence_errands(&flow).await.len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let errands = absence_errands(&flow).await;
    // Messaging: Anna and Erik an e-mail each for Märta, Maria a web message for Alva.
    flow.wait_calls_where("messaging", "POST", "/2281/email", absence_notice, 2, 60)
        .await;
    flow.wait_calls_where(
        "messaging",
        "POST",
        "/2281/webmessage",
        absence_notice,
        1,
        60,
    )
    .await;
    // Let a few more polls and any late duplicate arrive before counting exactly.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let errands_now = absence_errands(&flow).await;
    assert_eq!(errands_now.len(), 2, "{}", text(&json!(errands_now)));
    let mut stakeholders: Vec<String> = errands
        .iter()
        .map(|e| {
            assert_eq!(e["body"]["caseType"], "UNEXCUSED_ABSENCE", "{}", text(e));
            assert!(
                e["body"]["extraParameters"].as_array().is_some_and(|p| p
                    .iter()
                    .any(|x| x["key"] == "date" && x["values"][0] == DATE)),
                "{}",
                text(e)
            );
            e["body"]["stakeholders"][0]["personId"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    stakeholders.sort();
    let mut absent = vec![id_of(MARTA), id_of(ALVA)];
    absent.sort();
    assert_eq!(stakeholders, absent);
    // The poll paged: later pages asked by the token alone.
    let pages = flow.calls("larplattform", "GET", "/attendances").await;
    let by_token: Vec<&str> = pages
        .iter()
        .filter_map(|c| c["path"].as_str())
        .filter(|p| p.contains("pageToken="))
        .collect();
    assert!(
        !by_token.is_empty(),
        "no page asked by its token: {}",
        text(&json!(pages))
    );
    assert!(
        by_token
            .iter()
            .all(|p| !p.contains("meta.modified.after") && p.contains("limit=2")),
        "{by_token:?}"
    );

    let emails = flow
        .calls_where("messaging", "POST", "/2281/email", absence_notice)
        .await;
    let webmessages = flow
        .calls_where("messaging", "POST", "/2281/webmessage", absence_notice)
        .await;
    let letters = flow.calls("messaging", "POST", "/2281/letter").await;
    let sms = flow.calls("messaging", "POST", "/2281/sms").await;
    assert_eq!(emails.len(), 2, "{}", text(&json!(emails)));
    assert_eq!(webmessages.len(), 1, "{}", text(&json!(webmessages)));
    assert!(
        letters.is_empty(),
        "a letter was sent: {}",
        text(&json!(letters))
    );
    assert!(sms.is_empty(), "{}", text(&json!(sms)));
    let mut to: Vec<&str> = emails
        .iter()
        .map(|m| m["body"]["emailAddress"].as_str().unwrap_or_default())
        .collect();
    to.sort_unstable();
    assert_eq!(
        to,
        ["anna.lindqvist@exempel.se", "erik.lindqvist@exempel.se"]
    );
    let mut parties: Vec<&str> = emails
        .iter()
        .map(|m| m["body"]["party"]["partyId"].as_str().unwrap_or_default())
        .collect();
    parties.sort_unstable();
    let mut guardians = [id_of(ANNA), id_of(ERIK)];
    guardians.sort();
    assert_eq!(parties, guardians);
    for m in &emails {
        assert!(text(&m["body"]["message"]).contains("Märta"), "{}", text(m));
    }
    // Alva's guardian: a web message to her party, no e-mail although she has an address.
    let web = &webmessages[0]["body"];
    assert_eq!(web["party"]["partyId"], id_of(MARIA), "{}", text(web));
    assert!(text(&web["message"]).contains("Alva"), "{}", text(web));
    assert!(
        !text(&json!(emails)).contains("maria.sjoberg"),
        "Maria was e-mailed"
    );
    // No notice holds an address or a personnummer.
    for notice in emails.iter().chain(&webmessages) {
        let body = text(&notice["body"]);
        for part in ADDRESS_PARTS {
            assert!(!body.contains(part), "a notice holds an address: {body}");
        }
        for p in [MARTA, ALVA, OLLE, ANNA, ERIK, MARIA, LARS_EK] {
            for form in forms(p) {
                assert!(!body.contains(&form), "a notice holds a personnummer");
            }
        }
    }

    // Verksamhetsplanering: the nightly batch for the day, started by hand.
    let (status, answer) = flow
        .post(
            &format!("{}/api/routes/attendance-statistics/messages", flow.admin),
            &json!({"date": DATE}),
            None,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let rows = flow
        .wait_calls(
            "verksamhetsplanering",
            "POST",
            "/attendance-statistics",
            1,
            60,
        )
        .await;
    assert_eq!(rows.len(), 1, "{}", text(&json!(rows)));
    let stats = flow
        .get(&format!(
            "{}/verksamhetsplanering/attendance-statistics?schoolUnitCode=38120001&from={DATE}&to={DATE}",
            flow.sandbox
        ))
        .await;
    // Present: Olle 60 + 50, Alva 50; unexcused: Märta 60 + 50, Alva 60.
    assert_eq!(
        stats["data"],
        json!([{"schoolUnitCode": "38120001", "group": "7A", "date": DATE, "lessons": 2,
                "presentMinutes": 160, "absentMinutes": {"valid": 0, "invalid": 170}}]),
        "{stats}"
    );
    let delivered = text(&rows[0]["body"]);
    for p in [MARTA, ALVA, OLLE] {
        for form in forms(p) {
            assert!(!delivered.contains(&form), "statistics hold a personnummer");
        }
    }
    assert!(
        !delivered.contains(&id_of(MARTA)),
        "statistics name a student"
    );
    // A rerun replaces the row: still one, the same.
    let (status, _) = flow
        .post(
            &format!("{}/api/routes/attendance-statistics/messages", flow.admin),
            &json!({"date": DATE}),
            None,
        )
        .await;
    assert_eq!(status, 202);
    flow.wait_calls(
        "verksamhetsplanering",
        "POST",
        "/attendance-statistics",
        2,
        60,
    )
    .await;
    let again: Value = flow
        .get(&format!(
            "{}/verksamhetsplanering/attendance-statistics?schoolUnitCode=38120001&from={DATE}&to={DATE}",
            flow.sandbox
        ))
        .await;
    assert_eq!(again["data"], stats["data"]);

    // Nothing was repeated by the later polls, nothing dead-lettered.
    assert_eq!(absence_errands(&flow).await.len(), 2);
    assert_eq!(
        flow.calls_where("messaging", "POST", "/2281/", absence_notice)
            .await
            .len(),
        3
    );

    // The teacher corrects Olle's first lesson: he was not there after all (unexcused).
    // The correction is the same record, changed in place: seen, and a case opens for him.
    let olle_first = registered["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["student"]["id"] == id_of(OLLE)
                && r["calendarEvent"]["displayName"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("Matematik"))
        })
        .and_then(|r| r["id"].as_str())
        .expect("Olle's Matematik record")
        .to_string();
    let (status, corrected) = flow
        .post(
            &format!("{}/larplattform/_correct-attendance", flow.sandbox),
            &json!({"id": olle_first, "present": false, "absence": "invalid"}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{corrected}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while absence_errands(&flow).await.len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let after = absence_errands(&flow).await;
    assert_eq!(after.len(), 3, "the correction opened no case");
    assert!(
        after
            .iter()
            .any(|e| e["body"]["stakeholders"][0]["personId"] == id_of(OLLE)),
        "{}",
        text(&json!(after))
    );

    flow.assert_no_dead_letters().await;
    flow.stop(&[MARTA, ALVA, OLLE, ANNA, ERIK, MARIA, LARS_EK])
        .await;
}

/// The errands case management got for unexcused absence.
async fn absence_errands(flow: &Flow) -> Vec<serde_json::Value> {
    flow.calls("casedata", "POST", "/2281/SBK_SCHOOL/errands")
        .await
        .into_iter()
        .filter(|c| c["body"]["caseType"] == "UNEXCUSED_ABSENCE")
        .collect()
}

/// A notice of unexcused absence (an e-mail's subject, a web message's text): this flow's
/// own, beside the guardian notices of the leave applications seeded in OeP.
fn absence_notice(call: &Value) -> bool {
    call["body"]["subject"] == "Ogiltig frånvaro"
        || call["body"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Ogiltig frånvaro"))
}
