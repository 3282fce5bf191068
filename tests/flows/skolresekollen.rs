//! Seed 001, Skolresekollen: all four checks end to end. A skolskjuts decision for Märta
//! Lindqvist (applicants Anna and Erik), one for Alva Sjöberg (applicant Maria Sjöberg; both
//! with skyddad folkbokföring), one for Leo Nilsson (applicant Sara) and an elevresa decision
//! for Ebba Berg (applicant Johan Berg) are submitted to OeP, with one errand whose decision
//! text cannot be read, one OeP lists but will not return, one from before the
//! e-service's cut-off and one (Johan's, for Ebba) revoked in OeP after the register read
//! it; the polls put them in the register. Anna and Märta move together,
//! Erik emigrates, Maria moves, Ebba moves, Johan moves; IST's export gives Leo a full-time
//! fritidshem place. A case officer asks for a run: each check's report is e-mailed (HTML and
//! CSV, read here cell by cell) to its recipients, kept for download, lists the unchecked
//! errands and never names a protected address; CSN's seeded delivery grants Ebba a
//! boarding allowance (check `boarding-allowance`); a second run over the same changes sends
//! no row again.

use base64::Engine;
use serde_json::{Value, json};

use crate::flows::{Flow, On, text};

const ANNA: &str = "198503122387";
const ERIK: &str = "198309214578";
const MARTA: &str = "201304122383";
const MARIA: &str = "198402276649";
const ALVA: &str = "201409093224";
const EBBA: &str = "200908183429";
const JOHAN: &str = "198001019317";
const SARA: &str = "199007158620";
const LEO: &str = "201602201319";
/// Maria's new address: skyddad folkbokföring, so nothing may show it.
const HIDDEN_STREET: &str = "Dolda stigen 3";

fn b64(s: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap_or_default())
        .expect("base64");
    String::from_utf8(bytes).expect("UTF-8")
}

/// The cells of an HTML report's table rows (tags stripped, entities of the template's
/// escaping undone), in order; not those of the unchecked errands' table.
fn html_rows(html: &str) -> Vec<Vec<String>> {
    // The report's own table: before the list of unchecked errands (an <h2>).
    let report = html.split("<h2>").next().unwrap_or_default();
    let body = report.split("<tbody>").nth(1).unwrap_or_default();
    let body = body.split("</tbody>").next().unwrap_or_default();
    body.split("<tr>")
        .skip(1)
        .map(|tr| {
            tr.split("<td>")
                .skip(1)
                .map(|td| {
                    let cell = td.split("</td>").next().unwrap_or_default();
                    let mut text = String::new();
                    let mut in_tag = false;
                    for c in cell.chars() {
                        match c {
                            '<' => in_tag = true,
                            '>' => in_tag = false,
                            c if !in_tag => text.push(c),
                            _ => {}
                        }
                    }
                    text.replace("&#x2F;", "/").replace("&amp;", "&")
                })
                .collect()
        })
        .collect()
}

/// A CSV report's lines split into cells (every cell quoted, `;` between).
/// A report's e-mail (its attachment is named after the check): Skolresekollen's own,
/// beside the guardian notices of the leave applications seeded in OeP.
pub(crate) fn report_mail(call: &Value) -> bool {
    call["body"]["attachments"][0]["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("skolresekollen-"))
}

pub(crate) fn csv_rows(csv: &str) -> Vec<Vec<String>> {
    let csv = csv.strip_prefix('\u{feff}').expect("a byte-order mark");
    assert!(csv.ends_with("\r\n"), "CRLF line ends");
    csv.split_terminator("\r\n")
        .map(|line| {
            line.trim_matches('"')
                .split("\";\"")
                .map(|c| c.replace("\"\"", "\""))
                .collect()
        })
        .collect()
}

/// GET `url` with a bearer token: the status and the body as it came.
pub(crate) async fn bearer_get(flow: &Flow, url: &str, token: &str) -> (u16, String) {
    let r = flow
        .client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    // The bytes as they came (`text()` would drop a CSV's byte-order mark).
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap_or_default();
    (status, String::from_utf8(bytes.to_vec()).expect("UTF-8"))
}

/// Ask for a run; its id.
async fn run_checks(flow: &Flow, token: &str, body: Value) -> String {
    let (status, answer) = flow
        .post(
            &format!("{}/api/v1/skolresekollen/runs", flow.ingress),
            &body,
            Some(token),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    answer["runId"].as_str().expect("runId").to_string()
}

/// The kept report (JSON) of `run` and `check`, waiting for it.
async fn kept(flow: &Flow, token: &str, run: &str, check: &str) -> Value {
    let url = format!(
        "{}/api/v1/skolresekollen/reports?runId={run}&check={check}",
        flow.ingress
    );
    for _ in 0..150 {
        let (status, body) = bearer_get(flow, &url, token).await;
        if status == 200 {
            return serde_json::from_str(&body).expect("a JSON report");
        }
        assert_eq!(status, 404, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("no report {run}/{check}\n{}", flow.knut.log_tail());
}

/// The skolskjuts e-service's cut-off moved to 600 days ago, so that an errand submitted 700
/// days ago (within the polls' 1,100 days) is one from before it.
pub fn recent_cut_off(root: &std::path::Path) {
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(600);
    crate::flows::patch_file(
        root,
        "settings/skolresekollen.yaml",
        r#""136": { name: Ansökan om skolskjuts, submitted_from: "2021-01-01" }"#,
        &format!(r#""136": {{ name: Ansökan om skolskjuts, submitted_from: "{day}" }}"#),
    );
}

/// The named Skolresekollen polls (`routes/skolresekollen-<name>-poll.yaml`) every second
/// instead of every hour, so that what a test submits is read at once.
pub fn every_second(root: &std::path::Path, polls: &[&str]) {
    for poll in polls {
        crate::flows::patch_file(
            root,
            &format!("routes/skolresekollen-{poll}-poll.yaml"),
            "every: 1h",
            "every: 1s",
        );
    }
}

pub async fn run(on: On) {
    let flow = Flow::start_with(on, "skolresekollen", |root| {
        // An e-mail holds one row here, so that a report longer than that is seen.
        crate::flows::patch_file(
            root,
            "settings/skolresekollen.yaml",
            "email_max_rows: 500",
            "email_max_rows: 1",
        );
        recent_cut_off(root);
        every_second(root, &["skolskjuts", "elevresa"]);
    })
    .await;
    let sandbox = &flow.sandbox;

    // The decisions, as OeP exports them.
    let skolskjuts = std::fs::read_to_string(
        crate::root::repo().join("tests/fixtures/oep/skolskjuts-valdbarn.xml"),
    )
    .expect("fixture");
    let alvas = skolskjuts
        .replace("910001", "910002")
        .replace(MARTA, ALVA)
        .replace(ANNA, MARIA)
        .replace(ERIK, MARIA);
    // Leo's, applied for by Sara (his one guardian): IST's export gives him a full-time
    // fritidshem place from 2026-12-01, within the decision (check fritids-fulltime).
    let second_guardian = {
        let first = skolskjuts.find("</Guardian>").expect("a guardian") + "</Guardian>".len();
        let end = skolskjuts[first..]
            .find("</Guardian>")
            .expect("a second guardian")
            + first
            + "</Guardian>".len();
        first..end
    };
    let mut leos = skolskjuts.clone();
    leos.replace_range(second_guardian.clone(), "");
    let leos = leos
        .replace("910001", "910004")
        .replace(MARTA, LEO)
        .replace(ANNA, SARA)
        .replace("Märta", "Leo")
        .replace("Anna", "Sara")
        .replace("Lindqvist", "Nilsson");
    std::fs::create_dir_all(flow.root().join("inbox/ist")).expect("inbox/ist");
    std::fs::copy(
        crate::root::repo().join("tests/fixtures/ist/placeringar.xlsx"),
        flow.root().join("inbox/ist/placeringar.xlsx"),
    )
    .expect("IST's export dropped");
    // One the register cannot read: its decision text neither grants nor denies.
    let undecided = skolskjuts
        .replace("910001", "910003")
        .replace("<![CDATA[Beviljad]]>", "<![CDATA[Vilande]]>");
    assert!(undecided.contains("Vilande"), "the fixture's decision text");
    let elevresa =
        std::fs::read_to_string(crate::root::repo().join("tests/fixtures/oep/elevresa.xml"))
            .expect("fixture");
    let withheld = skolskjuts.replace("910001", "910005");
    // Johan's, for Ebba: granted when the register reads it, revoked before the run (its
    // rows — Johan moved, Ebba elsewhere — must then be left out).
    let mut johans = skolskjuts.clone();
    johans.replace_range(second_guardian, "");
    let johans = johans
        .replace("910001", "910007")
        .replace(MARTA, EBBA)
        .replace(ANNA, JOHAN)
        .replace("Märta", "Ebba")
        .replace("Anna", "Johan")
        .replace("Lindqvist", "Berg");
    // One submitted before the e-service's cut-off (600 days ago here), when its form held
    // free text: it is never checked, though its people moved. It is within the polls'
    // 1,100 days, so only the cut-off leaves it out.
    let early_day = chrono::Utc::now().date_naive() - chrono::Days::new(700);
    let early = skolskjuts.replace("910001", "910006").replace(
        "<Posted>2026-08-10T09:12:00</Posted>",
        &format!("<Posted>{early_day}T09:12:00</Posted>"),
    );
    assert!(
        early.contains(&early_day.to_string()),
        "the fixture's submission time"
    );
    // The last one OeP lists but will not return (its export answers 500): unchecked.
    let exports = [skolskjuts, alvas, undecided, leos, elevresa, early, johans]
        .map(|export| (export, ""))
        .into_iter()
        .chain([(withheld, "?withheld=true")]);
    for (export, query) in exports {
        let (status, answer) = flow
            .post_bytes(
                &format!("{sandbox}/oep/_submit{query}"),
                "application/xml",
                export.into_bytes(),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
    }

    // The moves, today: Anna and Märta together (the same address, written differently),
    // Maria to a protected address, Ebba on her own, and Johan — Ebba's applicant, whose
    // move does not count for elevresa. Erik, Märta's other applying guardian, emigrates.
    for (person, street, postal, city, emigrated) in [
        (ANNA, "Södra vägen 4", "853 52", "Sundsvall", false),
        (MARTA, "SÖDRA VÄGEN 4", "85352", "Sundsvall", false),
        (MARIA, HIDDEN_STREET, "855 91", "Sundsvall", false),
        (EBBA, "Storgatan 10", "852 30", "Sundsvall", false),
        (JOHAN, "Byvägen 1", "861 91", "Sundsvall", false),
        (ERIK, "Karl Johans gate 1", "0154", "Oslo", true),
    ] {
        let (status, answer) = flow
            .post(
                &format!("{sandbox}/citizen/_move"),
                &json!({"personNumber": person, "emigrated": emigrated,
                        "address": {"address": street, "postalCode": postal, "city": city}}),
                None,
            )
            .await;
        assert_eq!(status, 200, "move: {answer}");
    }

    // A case officer's token; without one the API refuses.
    let (refused, problem) = flow
        .post(
            &format!("{}/api/v1/skolresekollen/runs", flow.ingress),
            &json!({}),
            None,
        )
        .await;
    assert_eq!(refused, 401, "{problem}");
    let token = flow.token(json!({"sub": "handlaggare-skolskjuts"})).await;
    let (bad, problem) = flow
        .post(
            &format!("{}/api/v1/skolresekollen/runs", flow.ingress),
            &json!({"backtrackDays": 45}),
            Some(&token),
        )
        .await;
    assert_eq!(bad, 422, "{problem}");

    // Dry runs until the polls have filled the register (guardian-moved: Anna, Erik, Maria
    // and, from Johan's errand, Johan and Ebba; one row in student-moved) and read CSN's
    // seeded delivery (Ebba's boarding allowance: one row in boarding-allowance); a dry run
    // sends nothing.
    let mut ready = false;
    for _ in 0..40 {
        let dry = run_checks(&flow, &token, json!({"dryRun": true})).await;
        let guardian = kept(&flow, &token, &dry, "guardian-moved").await;
        let student = kept(&flow, &token, &dry, "student-moved").await;
        let boarding = kept(&flow, &token, &dry, "boarding-allowance").await;
        let fritids = kept(&flow, &token, &dry, "fritids-fulltime").await;
        if guardian["rows"] == 5
            && student["rows"] == 1
            && boarding["rows"] == 1
            && fritids["rows"] == 1
            && guardian["html"]
                .as_str()
                .is_some_and(|h| h.contains("910003") && h.contains("910005"))
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        ready,
        "the register never held the three decisions and CSN's hit\n{}",
        flow.knut.log_tail()
    );
    assert!(
        flow.calls_where("messaging", "POST", "/2281/email", report_mail)
            .await
            .is_empty(),
        "a dry run sent e-mail"
    );

    // Johan's errand is revoked in OeP: the run asks OeP again and leaves its rows out.
    let revoke = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Body>\
        <setStatus xmlns=\"http://www.oeplatform.org/version/1.0/schemas/integration/callback\">\
        <flowInstanceID>910007</flowInstanceID><statusAlias>Återkallat</statusAlias></setStatus>\
        </SOAP-ENV:Body></SOAP-ENV:Envelope>";
    let (status, answer) = flow
        .post_bytes(
            &format!("{sandbox}/oep/api/callback"),
            "text/xml; charset=utf-8",
            revoke.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(status, 200, "setStatus: {answer}");

    // The run: one e-mail per report and recipient.
    let run = run_checks(&flow, &token, json!({})).await;
    let mails = flow
        .wait_calls_where("messaging", "POST", "/2281/email", report_mail, 4, 60)
        .await;
    assert_eq!(mails.len(), 4, "{}", text(&json!(mails)));
    // The e-mail of a check (its attachment is named after it), to its recipient.
    let mail_of = |check: &str, to: &str| {
        let name = format!("skolresekollen-{check}-");
        mails
            .iter()
            .find(|m| {
                m["body"]["attachments"][0]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&name))
            })
            .map(|m| m["body"].clone())
            .filter(|m| m["emailAddress"] == to)
            .unwrap_or_else(|| panic!("no {check} e-mail to {to}: {}", text(&json!(mails))))
    };

    // guardian-moved, to the skolskjuts officers: Anna (moved with Märta: one row), Erik
    // (emigrated: U), Maria (protected: no address), sorted by school and case number.
    let mail = mail_of("guardian-moved", "skolskjuts@sundsvall.example");
    assert_eq!(mail["sender"]["name"], "Skolresekollen");
    let html = b64(&mail["htmlMessage"]);
    assert!(html.contains("<h1>Automatisk avstämning av adress för VH med beviljad Skolskjuts och/eller elev med beviljad Skolskjuts som flyttat.</h1>"), "{html}");
    assert!(
        html.contains("<p>Kontroll av: Ändrad folkbokföring</p>"),
        "{html}"
    );
    assert!(html.contains("<p>Körning slutförd: 20"), "{html}");
    assert!(html.contains("<a href=\"https://e-tjanster.sundsvall.se/admin/flowinstanceadmin/overview/910001\">910001</a>"), "{html}");
    let want = vec![
        vec![
            "910001",
            "2026-08-17 – 2029-06-15",
            "Södra vägen 4, 853 52 SUNDSVALL",
            "",
            "Anna Lindqvist",
            "Vårdnadshavare",
            "",
        ],
        vec![
            "910001",
            "2026-08-17 – 2029-06-15",
            "Karl Johans gate 1, 0154 OSLO",
            "U",
            "Erik Lindqvist",
            "Vårdnadshavare",
            "",
        ],
        vec![
            "910002",
            "2026-08-17 – 2029-06-15",
            "Skyddad adress",
            "",
            "Maria Sjöberg",
            "Vårdnadshavare",
            "J",
        ],
    ];
    // The e-mail holds the first row (email_max_rows: 1 here) and says where the rest is;
    // the whole report is downloaded below.
    assert_eq!(html_rows(&html), want[..1], "{html}");
    assert!(
        html.contains("Rapporten har 3 rader; här och i den bifogade CSV-filen visas de 1 första."),
        "{html}"
    );
    // The errand that could not be read is listed with why, never skipped.
    assert!(
        html.contains("<h2>Ärenden som inte kunde kontrolleras</h2>")
            && html.contains(">910003</a></td><td>beslutstexten varken beviljar eller avslår</td>"),
        "{html}"
    );
    // And the one OeP would not return, with why.
    assert!(
        html.contains(">910005</a></td><td>OeP lämnade inte ut ärendet: oep.get-instance answered HTTP 500</td>"),
        "{html}"
    );
    let attachment = &mail["attachments"][0];
    assert_eq!(attachment["contentType"], "text/csv; charset=utf-8");
    assert!(
        attachment["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("skolresekollen-guardian-moved-")),
        "{attachment}"
    );
    let csv = b64(&attachment["content"]);
    let rows = csv_rows(&csv);
    assert_eq!(
        rows[0],
        vec![
            "Ärendenummer i e-tjänsten",
            "Beslutsperiod",
            "Ny adress",
            "U(tvandrad) eller A(vliden)",
            "Namn",
            "Roll",
            "Sekretessmarkerad personuppgift",
            "Länk till ärendet"
        ]
    );
    for (got, want) in rows[1..].iter().zip(&want) {
        assert_eq!(&got[..7], &want[..], "{csv}");
        assert!(got[7].ends_with(&format!("/overview/{}", want[0])), "{csv}");
    }
    assert_eq!(rows.len(), 2, "{csv}");

    // student-moved, to the elevresa officers: Ebba only (Johan's move does not count).
    let mail = mail_of("student-moved", "elevresor@sundsvall.example");
    let html = b64(&mail["htmlMessage"]);
    assert!(
        html.contains("<h1>Automatisk avstämning av adress för elev med beviljad Elevresa</h1>"),
        "{html}"
    );
    assert_eq!(
        html_rows(&html),
        vec![vec![
            "920001",
            "2026-08-17 – 2027-06-11",
            "Storgatan 10, 852 30 SUNDSVALL",
            "",
            ""
        ]],
        "{html}"
    );
    let csv = csv_rows(&b64(&mail["attachments"][0]["content"]));
    assert_eq!(csv.len(), 2);
    assert_eq!(
        csv[1][..5],
        [
            "920001",
            "2026-08-17 – 2027-06-11",
            "Storgatan 10, 852 30 SUNDSVALL",
            "",
            ""
        ]
    );

    // boarding-allowance, to the elevresa officers: Ebba, from CSN's file.
    let mail = mail_of("boarding-allowance", "elevresor@sundsvall.example");
    let html = b64(&mail["htmlMessage"]);
    assert!(
        html.contains("<p>Kontroll av: Inackorderingstillägg</p>"),
        "{html}"
    );
    assert_eq!(
        html_rows(&html),
        vec![vec![
            "920001",
            "2026-08-17 – 2027-06-11",
            "Inläst fil från CSN"
        ]],
        "{html}"
    );
    let csv = csv_rows(&b64(&mail["attachments"][0]["content"]));
    assert_eq!(
        csv[0][..3],
        ["Ärendenummer i e-tjänsten", "Beslutsperiod", "Källa"]
    );
    assert_eq!(
        csv[1][..3],
        ["920001", "2026-08-17 – 2027-06-11", "Inläst fil från CSN"]
    );

    // fritids-fulltime, to the skolskjuts officers: Leo's full-time place from IST's export.
    let mail = mail_of("fritids-fulltime", "skolskjuts@sundsvall.example");
    let html = b64(&mail["htmlMessage"]);
    assert!(
        html.contains("<p>Kontroll av: Fritidshemsplats (heltid)</p>"),
        "{html}"
    );
    assert_eq!(
        html_rows(&html),
        vec![vec![
            "910004",
            "2026-08-17 – 2029-06-15",
            "Sara Nilsson",
            "2026-12-01"
        ]],
        "{html}"
    );

    // Kept for download: the whole report (both rows; the e-mail held one).
    let sent_html = b64(&mail_of("guardian-moved", "skolskjuts@sundsvall.example")["htmlMessage"]);
    let (status, html) = bearer_get(
        &flow,
        &format!(
            "{}/api/v1/skolresekollen/reports?runId={run}&check=guardian-moved&format=html",
            flow.ingress
        ),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(html_rows(&html), want, "{html}");
    assert!(
        !html.contains("910006"),
        "an errand from before the cut-off: {html}"
    );
    assert_ne!(html, sent_html);
    let (status, csv) = bearer_get(
        &flow,
        &format!(
            "{}/api/v1/skolresekollen/reports?runId={run}&check=student-moved&format=csv",
            flow.ingress
        ),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(csv_rows(&csv).len(), 2);
    let (status, problem) = bearer_get(
        &flow,
        &format!(
            "{}/api/v1/skolresekollen/reports?runId=20200101-060000-000&check=student-moved",
            flow.ingress
        ),
        &token,
    )
    .await;
    assert_eq!(status, 404, "{problem}");

    // Nothing the messaging system received names the protected address or a personnummer.
    let everything = text(&json!(flow.inbox("messaging").await));
    let decoded: String = flow
        .calls("messaging", "POST", "/2281/email")
        .await
        .iter()
        .map(|m| b64(&m["body"]["htmlMessage"]) + &b64(&m["body"]["attachments"][0]["content"]))
        .collect();
    for secret in [
        HIDDEN_STREET,
        "855 91",
        MARIA,
        ANNA,
        MARTA,
        ALVA,
        EBBA,
        JOHAN,
        ERIK,
        SARA,
        LEO,
    ] {
        assert!(!everything.contains(secret), "the e-mail holds {secret}");
        assert!(!decoded.contains(secret), "a report holds {secret}");
    }

    // A second run over the same changes sends both reports again, with no row in them.
    let again = run_checks(&flow, &token, json!({})).await;
    assert_ne!(again, run);
    let mails = flow
        .wait_calls_where("messaging", "POST", "/2281/email", report_mail, 8, 60)
        .await;
    assert_eq!(mails.len(), 8, "{}", text(&json!(mails)));
    for mail in &mails[4..] {
        let html = b64(&mail["body"]["htmlMessage"]);
        assert!(html_rows(&html).is_empty(), "a row sent again: {html}");
        assert!(html.contains("Inga ärenden att granska"), "{html}");
        // Still unchecked, still listed: in the reports of skolskjuts's checks.
        let check = mail["body"]["attachments"][0]["name"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            html.contains(">910003</a>") && html.contains(">910005</a>"),
            check.starts_with("skolresekollen-guardian-moved-")
                || check.starts_with("skolresekollen-fritids-fulltime-"),
            "{html}"
        );
    }

    // Metakatalogen's file of address changes (seed note 2021-05-18), dropped in
    // inbox/metakatalogen/: Sara has moved too, and the file holds every change so far, as
    // `changedaddress` answers them. It is checked at once (the move checks only): Sara's
    // row is sent; the others' rows were sent by the run above and are not sent again.
    let (status, answer) = flow
        .post(
            &format!("{sandbox}/citizen/_move"),
            &json!({"personNumber": SARA,
                    "address": {"address": "Granvägen 12", "postalCode": "856 33", "city": "Sundsvall"}}),
            None,
        )
        .await;
    assert_eq!(status, 200, "move: {answer}");
    let changes = flow
        .client
        .get(format!(
            "{sandbox}/citizen/api/v3/citizen/2281/changedaddress"
        ))
        .query(&[(
            "changedDateFrom",
            format!(
                "{}T00:00:00+01:00",
                chrono::Utc::now().date_naive() - chrono::Days::new(2)
            ),
        )])
        .send()
        .await
        .expect("changedaddress")
        .bytes()
        .await
        .expect("changedaddress body");
    std::fs::create_dir_all(flow.root().join("inbox/metakatalogen")).expect("inbox");
    std::fs::write(
        flow.root().join("inbox/metakatalogen/adressandringar.json"),
        &changes,
    )
    .expect("the file dropped");
    let mails = flow
        .wait_calls_where("messaging", "POST", "/2281/email", report_mail, 10, 60)
        .await;
    assert_eq!(mails.len(), 10, "{}", text(&json!(mails)));
    let from_file: Vec<Value> = mails[8..].iter().map(|m| m["body"].clone()).collect();
    let names: Vec<&str> = from_file
        .iter()
        .filter_map(|m| m["attachments"][0]["name"].as_str())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("skolresekollen-guardian-moved-"))
            && names
                .iter()
                .any(|n| n.starts_with("skolresekollen-student-moved-")),
        "the file's run makes the move checks' reports: {names:?}"
    );
    for mail in &from_file {
        let html = b64(&mail["htmlMessage"]);
        let rows = html_rows(&html);
        if mail["attachments"][0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("skolresekollen-guardian-moved-"))
        {
            assert_eq!(
                rows,
                vec![vec![
                    "910004",
                    "2026-08-17 – 2029-06-15",
                    "Granvägen 12, 856 33 SUNDSVALL",
                    "",
                    "Sara Nilsson",
                    "Vårdnadshavare",
                    "",
                ]],
                "{html}"
            );
        } else {
            assert!(rows.is_empty(), "a row sent again: {html}");
        }
    }
    assert!(
        flow.root()
            .join("inbox/metakatalogen/processed/adressandringar.json")
            .exists(),
        "the read file is kept in processed/"
    );

    flow.assert_no_dead_letters().await;
    flow.stop(&[ANNA, ERIK, MARTA, MARIA, ALVA, EBBA, JOHAN, SARA, LEO])
        .await;
}
