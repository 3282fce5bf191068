//! Skolresekollen at scale (issue 11): a run of the checks over 10,000 address changes
//! against a register of 20,000 errands, on the sandbox, with the shipped routes.
//!
//! ```console
//! $ cargo bench --bench skolresekollen   # optional: KNUT_BENCH_ERRANDS, KNUT_BENCH_MOVES
//! ```
//!
//! It starts `knut run` (release build, embedded broker, the sandbox in the process) over a
//! copy of the shipped root with the Skolresekollen polls every 2 s, and then, as the
//! municipality's systems would hold them:
//! - Metakatalogen: for every errand a guardian and a child (skolskjuts, 3 in 4) or an
//!   applicant and a student (elevresa), fictional, with valid personnummer;
//! - OeP: the errands, granted, as FlowInstance exports (the shapes of the fixtures);
//! - the moves: 6 of 10 an applying guardian, 1.5 of 10 a child on its own, 2.5 of 10 a
//!   student, all today.
//!
//! Measured: how long the polls take to put every errand in the register (OeP listing and
//! fetching each export, the register route), and how long a run takes from its request
//! (POST /api/v1/skolresekollen/runs) until every report is kept, e-mailed and its rows
//! remembered as sent — once with
//! every row new, once more over the same changes (every row already sent). It checks
//! the rows the reports hold against what the data says, and prints knut's peak RSS.
//! Traffic stays on 127.0.0.1; the bench ends knut when it is done.

#[path = "../tests/support/flows.rs"]
mod flows;
#[path = "../tests/support/knut.rs"]
mod knut;
#[path = "../tests/support/rabbit.rs"]
mod rabbit;
#[path = "../tests/support/root.rs"]
mod root;

use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A valid personnummer (12 digits) for a birth date and a serial (0–999).
fn personnummer(born: NaiveDate, serial: usize) -> String {
    let nine = format!(
        "{:02}{:02}{:02}{:03}",
        born.year() % 100,
        born.month(),
        born.day(),
        serial % 1000
    );
    let sum: u32 = nine
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
            d / 10 + d % 10
        })
        .sum();
    format!("{}{nine}{}", born.year() / 100, (10 - sum % 10) % 10)
}

/// The `n`th person born in `year`: a distinct date and serial for every `n`.
fn person_of(year: i32, n: usize) -> String {
    let day =
        NaiveDate::from_ymd_opt(year, 1, 1).expect("a date") + chrono::Days::new((n % 360) as u64);
    personnummer(day, n / 360 + 100)
}

struct Scenario {
    /// (guardian, child) per skolskjuts errand.
    skolskjuts: Vec<(String, String)>,
    /// (applicant, student) per elevresa errand.
    elevresa: Vec<(String, String)>,
}

fn scenario(errands: usize) -> Scenario {
    let skolskjuts_n = errands * 3 / 4;
    Scenario {
        skolskjuts: (0..skolskjuts_n)
            .map(|i| (person_of(1980, i), person_of(2013, i)))
            .collect(),
        elevresa: (0..errands - skolskjuts_n)
            .map(|i| (person_of(1975, i), person_of(2009, i)))
            .collect(),
    }
}

fn person(number: &str, given: &str, street: &str, since: &str, children: &[&String]) -> Value {
    json!({"personNumber": number, "givenname": given, "lastname": "Bench",
           "address": {"address": street, "postalCode": "852 30", "city": "Sundsvall"},
           "since": since, "custodianFor": children})
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    ct: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut req = client.post(url).header("content-type", ct).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn counter(
    client: &reqwest::Client,
    admin: u16,
    token: &str,
    name: &str,
    route: &str,
) -> u64 {
    let Ok(r) = client
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .bearer_auth(token)
        .send()
        .await
    else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    let label = format!("route=\"{route}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Where a run is measured: knut's ingress and admin, the sandbox.
struct At<'a> {
    ingress: &'a str,
    sandbox: &'a str,
    admin: u16,
    admin_token: &'a str,
}

/// Ask for a run and wait until every check's report is kept, e-mailed and its rows
/// remembered as sent (skolresekollen-report done with each); (run id, seconds, rows per
/// check).
async fn timed_run(
    client: &reqwest::Client,
    at: &At<'_>,
    token: &str,
    reports_before: usize,
) -> (String, f64, Vec<(String, u64)>) {
    let (ingress, sandbox) = (at.ingress, at.sandbox);
    let started = Instant::now();
    let (status, answer) = post(
        client,
        &format!("{ingress}/api/v1/skolresekollen/runs"),
        b"{}".to_vec(),
        "application/json",
        Some(token),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let run: Value = serde_json::from_str(&answer).expect("JSON");
    let id = run["runId"].as_str().expect("runId").to_string();
    let checks = [
        "guardian-moved",
        "student-moved",
        "boarding-allowance",
        "fritids-fulltime",
    ];
    let mut rows = Vec::new();
    for check in checks {
        let url = format!("{ingress}/api/v1/skolresekollen/reports?runId={id}&check={check}");
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let r = client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .expect("GET report");
            if r.status().as_u16() == 200 {
                let report: Value = r.json().await.expect("JSON report");
                rows.push((check.to_string(), report["rows"].as_u64().unwrap_or(0)));
                break;
            }
            assert!(Instant::now() < deadline, "no {check} report within 15 min");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // …and e-mailed (one per report and recipient: one each).
    loop {
        let inbox: Value = client
            .get(format!("{sandbox}/messaging/_inbox"))
            .send()
            .await
            .expect("inbox")
            .json()
            .await
            .expect("JSON inbox");
        let mails = inbox.as_array().map_or(0, |a| {
            a.iter()
                .filter(|c| c["path"] == "/2281/email" && c["fault"] != true)
                .count()
        });
        let done = counter(
            client,
            at.admin,
            at.admin_token,
            "knut_messages_out_total",
            "skolresekollen-report",
        )
        .await;
        if mails >= reports_before + checks.len() && done >= (reports_before + checks.len()) as u64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (id, started.elapsed().as_secs_f64(), rows)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let errands = env_usize("KNUT_BENCH_ERRANDS", 20_000);
    let moves = env_usize("KNUT_BENCH_MOVES", 10_000);
    let s = scenario(errands);
    let today = chrono::Local::now().date_naive().to_string();

    // knut over a copy of the shipped root (the flows' harness: its own sandbox, every
    // adapter pointed at it, the embedded broker), the polls every 2 s.
    let flow = flows::Flow::start_with(flows::On::Embedded, "skolresekollen-bench", |root| {
        for poll in ["skolskjuts", "elevresa"] {
            flows::patch_file(
                root,
                &format!("routes/skolresekollen-{poll}-poll.yaml"),
                "every: 1h",
                "every: 2s",
            );
        }
    })
    .await;
    let (client, sandbox, ingress) = (&flow.client, &flow.sandbox, &flow.ingress);
    let (knut, admin_token) = (&flow.knut, &flow.admin_token);

    // Metakatalogen: everyone, at an old address; then the movers, at a new one today.
    let setup = Instant::now();
    let mut people = Vec::new();
    for (g, c) in &s.skolskjuts {
        people.push(person(
            g,
            "Vårdnadshavare",
            "Gamla vägen 1",
            "2020-01-01",
            &[c],
        ));
        people.push(person(c, "Barn", "Gamla vägen 1", "2020-01-01", &[]));
    }
    for (a, st) in &s.elevresa {
        people.push(person(a, "Sökande", "Gamla vägen 2", "2020-01-01", &[st]));
        people.push(person(st, "Elev", "Gamla vägen 2", "2020-01-01", &[]));
    }
    let guardians = moves * 6 / 10;
    let children = moves * 15 / 100;
    let students = moves - guardians - children;
    assert!(
        guardians + children <= s.skolskjuts.len() && students <= s.elevresa.len(),
        "more moves than people: raise KNUT_BENCH_ERRANDS"
    );
    let mut movers = Vec::new();
    for (i, (g, c)) in s.skolskjuts.iter().enumerate().take(guardians) {
        movers.push(person(
            g,
            "Vårdnadshavare",
            &format!("Nya vägen {i}"),
            &today,
            &[c],
        ));
    }
    for (i, (_, c)) in s
        .skolskjuts
        .iter()
        .enumerate()
        .skip(guardians)
        .take(children)
    {
        movers.push(person(c, "Barn", &format!("Egna vägen {i}"), &today, &[]));
    }
    for (i, (_, st)) in s.elevresa.iter().enumerate().take(students) {
        movers.push(person(st, "Elev", &format!("Elevvägen {i}"), &today, &[]));
    }
    for batch in people.chunks(2_000).chain(movers.chunks(2_000)) {
        let (status, answer) = post(
            client,
            &format!("{sandbox}/citizen/_persons"),
            serde_json::to_vec(batch).expect("JSON"),
            "application/json",
            None,
        )
        .await;
        assert_eq!(status, 200, "persons: {answer}");
    }

    // OeP: the errands, granted.
    let fixture = |name: &str| {
        std::fs::read_to_string(root::repo().join("tests/fixtures/oep").join(name))
            .expect("fixture")
    };
    let (skolskjuts_xml, elevresa_xml) =
        (fixture("skolskjuts-valdbarn.xml"), fixture("elevresa.xml"));
    let mut exports = Vec::with_capacity(errands);
    for (i, (g, c)) in s.skolskjuts.iter().enumerate() {
        exports.push(
            skolskjuts_xml
                .replace("910001", &(1_000_000 + i).to_string())
                .replace("201304122383", c)
                .replace("198503122387", g)
                .replace("198309214578", g),
        );
    }
    for (i, (a, st)) in s.elevresa.iter().enumerate() {
        exports.push(
            elevresa_xml
                .replace("920001", &(2_000_000 + i).to_string())
                .replace("198001019317", a)
                .replace("200908183429", st),
        );
    }
    let submit = format!("{sandbox}/oep/_submit");
    let mut pending = tokio::task::JoinSet::new();
    for export in exports {
        if pending.len() >= 8 {
            let (status, answer) = pending
                .join_next()
                .await
                .expect("a submit")
                .expect("joined");
            assert_eq!(status, 201, "submit: {answer}");
        }
        let (client, url) = (client.clone(), submit.clone());
        pending.spawn(async move {
            post(&client, &url, export.into_bytes(), "application/xml", None).await
        });
    }
    while let Some(done) = pending.join_next().await {
        let (status, answer) = done.expect("joined");
        assert_eq!(status, 201, "submit: {answer}");
    }
    println!(
        "setup: {} people ({} moved today), {errands} errands submitted in {:.1} s",
        people.len(),
        movers.len(),
        setup.elapsed().as_secs_f64()
    );

    // The register fills from the polls.
    let filling = Instant::now();
    let deadline = filling + Duration::from_secs(1_800);
    loop {
        let done = counter(
            client,
            knut.admin,
            admin_token,
            "knut_messages_out_total",
            "skolresekollen-register",
        )
        .await;
        if done >= errands as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the register holds {done} of {errands} after 30 min\n{}",
            knut.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fill = filling.elapsed().as_secs_f64();
    println!(
        "register: {errands} errands polled, fetched and kept in {fill:.1} s ({:.0} errands/s)",
        errands as f64 / fill
    );

    // The runs.
    let token = {
        let (status, answer) = post(
            client,
            &format!("{sandbox}/idp/token"),
            br#"{"sub": "bench"}"#.to_vec(),
            "application/json",
            None,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        serde_json::from_str::<Value>(&answer).expect("JSON")["access_token"]
            .as_str()
            .expect("a token")
            .to_string()
    };
    let at = At {
        ingress,
        sandbox,
        admin: knut.admin,
        admin_token,
    };
    let (_, first, rows) = timed_run(client, &at, &token, 0).await;
    println!("run 1 ({moves} address changes, every row new): {first:.1} s, rows {rows:?}");
    let want = [
        ("guardian-moved".to_string(), (guardians + children) as u64),
        ("student-moved".to_string(), students as u64),
        ("boarding-allowance".to_string(), 0),
        ("fritids-fulltime".to_string(), 0),
    ];
    assert_eq!(rows, want, "the reports hold other rows than the data says");
    let (_, second, rows) = timed_run(client, &at, &token, want.len()).await;
    println!("run 2 (the same changes, every row already sent): {second:.1} s, rows {rows:?}");
    assert!(
        rows.iter().all(|(_, n)| *n == 0),
        "a row sent again: {rows:?}"
    );
    if let Some(rss) = knut.pid().and_then(peak_rss_mb) {
        println!("knut peak RSS: {rss:.0} MB");
    }
    flow.stop(&[]).await;
}
