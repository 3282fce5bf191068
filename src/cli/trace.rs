//! `knut trace ID`: a message's journey through a running knut, from its journal, through
//! the admin API (`GET /api/trace/{id}`, [`crate::admin::trace`]).
//!
//! ```text
//! knut trace ID [--json] [--admin HOST:PORT]
//! ```
//!
//! `ID` is a correlation id (a UUID) or a business key's value (an OeP FlowInstanceID, an
//! errand number; `name=value` for one key only). Prints the hops in time order as a table
//! (or the journey as JSON with `--json`); exits 1 with the admin API's explanation when
//! nothing is found or something is wrong.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::{admin_address, admin_client, authorized, unreachable};
use crate::admin::trace::Journey;
use crate::config::Config;

/// Run `knut trace`; prints the journey, or the problem on standard error.
pub async fn run(
    config: &Config,
    root: &std::path::Path,
    id: &str,
    json: bool,
    admin: Option<String>,
) -> ExitCode {
    // A personnummer typed in by mistake never leaves this process: no request is made.
    if let Some(why) = refused(id) {
        eprintln!("knut: {why}");
        return ExitCode::FAILURE;
    }
    let admin = admin_address(config, admin);
    let segment: String = percent_encoding_segment(id.trim());
    let url = format!("http://{admin}/api/trace/{segment}");
    let response = match authorized(admin_client().get(&url), root, &admin)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", unreachable(&admin, &e));
            return ExitCode::FAILURE;
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|p| p.get("detail")?.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("the admin API answered HTTP {status}: {}", text.trim()));
        eprintln!("knut: {detail}");
        return ExitCode::FAILURE;
    }
    match serde_json::from_str::<Journey>(&text) {
        Ok(journey) if json => match serde_json::to_string_pretty(&journey) {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("knut: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(journey) => {
            println!("{}", table(&journey));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("knut: the admin API at {admin} answered something unexpected: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why `id` is not sent, if it is not: it is no correlation id and, as a business key's
/// value (after `name=`), it is refused — a personnummer in any form, or 10 digits in a
/// row, among others. The text never repeats the id.
fn refused(id: &str) -> Option<String> {
    let id = id.trim();
    if uuid::Uuid::parse_str(id).is_ok() {
        return None;
    }
    let value = match id.split_once('=') {
        Some((name, value)) if crate::core::keys::name_problem(name).is_none() => value,
        _ => id,
    };
    crate::core::keys::value_problem(value).map(|why| {
        format!(
            "the id {why}; nothing was sent. Give a correlation id (a UUID) or a business key's value (an OeP FlowInstanceID, an errand number; `name=value` for one key)"
        )
    })
}

/// `text` as one path segment.
fn percent_encoding_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'=' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The journey as a table in time order: when, route, step, outcome, duration, detail and
/// the correlation id's first 8 characters; a header with the correlation ids and keys.
pub fn table(j: &Journey) -> String {
    let mut out = format!(
        "journey of {}: {} hop(s), {} correlation id(s)",
        j.query,
        j.hops.len(),
        j.correlation_ids.len()
    );
    if !j.keys.is_empty() {
        let keys: Vec<String> = j
            .keys
            .iter()
            .map(|k| format!("{}={}", k.name, k.value))
            .collect();
        let _ = write!(out, "; keys {}", keys.join(", "));
    }
    for c in &j.correlation_ids {
        let _ = write!(out, "\n  {c}");
    }
    let rows: Vec<[String; 7]> = j
        .hops
        .iter()
        .map(|h| {
            [
                h.at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                h.route.clone(),
                h.step.clone(),
                h.outcome.clone(),
                duration(h.duration_us),
                h.detail.clone().unwrap_or_default(),
                h.correlation_id.simple().to_string()[..8].to_string(),
            ]
        })
        .collect();
    let heads = [
        "AT (UTC)",
        "ROUTE",
        "STEP",
        "OUTCOME",
        "DURATION",
        "DETAIL",
        "CORRELATION",
    ];
    let mut widths: Vec<usize> = heads.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let pad = w.saturating_sub(cell.chars().count());
                let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
            }
        }
        l
    };
    let _ = write!(out, "\n{}", line(&heads));
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        let _ = write!(out, "\n{}", line(&cells));
    }
    if j.truncated {
        let _ = write!(
            out,
            "\n(cut: the journey goes on beyond {} hops or {} correlation ids; search by a correlation id above for one part)",
            j.hops.len(),
            j.correlation_ids.len()
        );
    }
    for note in &j.notes {
        let _ = write!(out, "\n({note})");
    }
    out
}

/// Microseconds as people read them: `850µs`, `12.3ms`, `2.41s`.
fn duration(us: i64) -> String {
    match us {
        ..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::trace::{Hop, Key};

    #[test]
    fn the_table_lists_hops_in_order_with_their_correlation() {
        let c = uuid::Uuid::parse_str("0193a1b2-0000-7000-8000-000000000001").unwrap();
        let at = chrono::DateTime::from_timestamp_micros(1_800_000_000_000_000).unwrap();
        let hop = |route: &str, step: &str, outcome: &str, us: i64, detail: Option<&str>| Hop {
            at,
            route: route.into(),
            step: step.into(),
            outcome: outcome.into(),
            duration_us: us,
            detail: detail.map(str::to_string),
            correlation_id: c,
            message_id: c,
        };
        let j = Journey {
            query: "90017".into(),
            correlation_ids: vec![c],
            keys: vec![Key {
                name: "flowInstanceId".into(),
                value: "90017".into(),
            }],
            hops: vec![
                hop(
                    "case-open",
                    "steps[1].enrich casedata.find-errand",
                    "ok",
                    12_300,
                    Some("HTTP 200"),
                ),
                hop("case-open", "end", "ok", 2_410_000, None),
            ],
            truncated: true,
            notes: vec!["the key `batch` is carried by more than 20 correlation ids and was not followed; search by `name=value` for it".into()],
        };
        let t = table(&j);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("2 hop(s), 1 correlation id(s); keys flowInstanceId=90017"));
        assert!(lines[2].starts_with("AT (UTC)"));
        assert!(
            lines[3].contains("steps[1].enrich casedata.find-errand")
                && lines[3].contains("12.3ms")
                && lines[3].contains("HTTP 200")
                && lines[3].ends_with("0193a1b2")
        );
        assert!(lines[4].contains("2.41s"));
        assert!(lines[5].starts_with("(cut:"));
        assert!(lines[6].contains("`batch`"));
        assert_eq!(duration(850), "850µs");
        assert_eq!(percent_encoding_segment("a b/c=1"), "a%20b%2Fc=1");
    }

    /// A personnummer in any form is refused before anything is sent, and not repeated.
    #[test]
    fn a_personnummer_is_refused_locally() {
        for id in [
            "130412+2383",
            "20130412-2383",
            "130412 2383",
            "2013-04-12-2383",
            "student=201304122383",
            "\u{ff11}\u{ff13}0412-2383",
        ] {
            let why = refused(id).unwrap_or_else(|| panic!("{id} refused"));
            assert!(!why.contains("2383"), "{why}");
        }
        for id in [
            "90017",
            "flowInstanceId=90017",
            "SKOL-2026-000007",
            "0193a1b2-0000-7000-8000-000000000001",
        ] {
            assert_eq!(refused(id), None, "{id}");
        }
    }
}
