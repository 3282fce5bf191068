//! `knut dlq`: the dead letters of a route of a running knut, through its admin API
//! ([`crate::admin::dlq`]).
//!
//! ```text
//! knut dlq list                       every route with its number of dead letters
//! knut dlq list ROUTE [--limit N] [--after ID]
//!                                     a page of a table: id, attempts, last failure, step, reason
//! knut dlq show ROUTE ID              one dead letter: headers and body, personnummer masked
//! knut dlq replay ROUTE ID | --all    hand it (them) to the route again, once
//! knut dlq discard ROUTE ID           remove it for good (journaled)
//! ```
//!
//! Every command takes `--admin HOST:PORT` (default: `admin.bind` of the configuration) and
//! exits 1 with the admin API's explanation when something is wrong.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;
use serde::de::DeserializeOwned;

use super::{admin_address, admin_client, authorized, unreachable};
use crate::admin::dlq::{
    DeadLetterDetail, DeadLetterList, DeadLetterOverview, DeadLetterSummary, Discarded, Replayed,
    ReplayedAll,
};
use crate::config::Config;

/// What to do with the dead letters of a route.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the dead letters of a route: id, attempts, last failure, step, reason; without
    /// a route, every route with its number of dead letters.
    List {
        /// The route id (none: the overview of every route).
        route: Option<String>,
        /// How many dead letters to list at most (1 to 1,000).
        #[arg(long, requires = "route", default_value_t = crate::admin::dlq::PAGE_DEFAULT)]
        limit: usize,
        /// List the ones after this dead letter (the last id of the previous page).
        #[arg(long, requires = "route")]
        after: Option<String>,
        /// Admin address of the running knut (default: admin.bind of the configuration).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Show one dead letter with its headers and body (personnummer masked).
    Show {
        /// The route id.
        route: String,
        /// The dead letter's message id (from `knut dlq list`).
        id: String,
        /// Admin address of the running knut (default: admin.bind of the configuration).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Hand a dead letter (or, with --all, every one) to its route again.
    Replay {
        /// The route id.
        route: String,
        /// The dead letter's message id (from `knut dlq list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Replay every dead letter of the route.
        #[arg(long)]
        all: bool,
        /// Admin address of the running knut (default: admin.bind of the configuration).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Remove a dead letter for good (the journal records it).
    Discard {
        /// The route id.
        route: String,
        /// The dead letter's message id (from `knut dlq list`).
        id: String,
        /// Admin address of the running knut (default: admin.bind of the configuration).
        #[arg(long)]
        admin: Option<String>,
    },
}

/// Run a `knut dlq` command; prints the result, or the problem on standard error.
pub async fn run(config: &Config, root: &std::path::Path, command: DlqCommand) -> ExitCode {
    let (method, admin, path) = match &command {
        DlqCommand::List {
            route: Some(route),
            limit,
            after,
            admin,
        } => {
            let after = after
                .as_deref()
                .map_or(String::new(), |a| format!("&after={}", percent(a)));
            let path = format!("routes/{route}/dlq?limit={limit}{after}");
            (Method::Get, admin, path)
        }
        DlqCommand::List {
            route: None, admin, ..
        } => (Method::Get, admin, "dlq".to_string()),
        DlqCommand::Show { route, id, admin } => {
            (Method::Get, admin, format!("routes/{route}/dlq/{id}"))
        }
        DlqCommand::Replay {
            route,
            id: Some(id),
            admin,
            ..
        } => (
            Method::Post,
            admin,
            format!("routes/{route}/dlq/{id}/replay"),
        ),
        DlqCommand::Replay {
            route,
            id: None,
            admin,
            ..
        } => (Method::Post, admin, format!("routes/{route}/dlq/replay")),
        DlqCommand::Discard { route, id, admin } => {
            (Method::Delete, admin, format!("routes/{route}/dlq/{id}"))
        }
    };
    let admin = admin_address(config, admin.clone());
    let url = format!("http://{admin}/api/{path}");
    let client = admin_client();
    let request = match method {
        Method::Get => client.get(&url),
        Method::Post => client.post(&url),
        Method::Delete => client.delete(&url),
    };
    let response = match authorized(request, root, &admin).send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", unreachable(&admin, &e));
            return ExitCode::FAILURE;
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        eprintln!("knut: {}", problem_detail(status.as_u16(), &text));
        return ExitCode::FAILURE;
    }
    let printed = match &command {
        DlqCommand::List { route: None, .. } => {
            parse(&text).map(|o: DeadLetterOverview| overview(&o))
        }
        DlqCommand::List { limit, .. } => parse(&text).map(|l: DeadLetterList| table(&l, *limit)),
        DlqCommand::Show { .. } => parse(&text).map(|d: DeadLetterDetail| detail(&d)),
        DlqCommand::Replay { id: Some(_), .. } => parse(&text).map(|r: Replayed| {
            format!(
                "replayed {} to route {} (correlation id {})",
                r.id, r.route, r.correlation_id
            )
        }),
        DlqCommand::Replay { id: None, .. } => parse(&text).map(|r: ReplayedAll| {
            let mut out = format!(
                "replayed {} dead letter(s) to route {}",
                r.replayed.len(),
                r.route
            );
            for id in &r.replayed {
                let _ = write!(out, "\n  {id}");
            }
            out
        }),
        DlqCommand::Discard { .. } => {
            parse(&text).map(|d: Discarded| format!("discarded {} of route {}", d.id, d.route))
        }
    };
    match printed {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("knut: the admin API at {admin} answered something unexpected: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Method {
    Get,
    Post,
    Delete,
}

/// `text` as a query value (an id is plain, but a mistyped one must not break the URL).
fn percent(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(text)
}

/// The `detail` of a problem+json answer, else the status and the text.
fn problem_detail(status: u16, text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|p| p.get("detail")?.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("the admin API answered HTTP {status}: {}", text.trim()))
}

/// One line of text at most `max` characters long.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The overview: the routes holding dead letters, with their counts and the age of their
/// oldest, most first; then how many routes hold none.
pub fn overview(o: &DeadLetterOverview) -> String {
    overview_at(o, chrono::Utc::now())
}

/// [`overview`], ages counted to `now`.
fn overview_at(o: &DeadLetterOverview, now: chrono::DateTime<chrono::Utc>) -> String {
    let holding: Vec<_> = o.routes.iter().filter(|r| r.count != Some(0)).collect();
    if holding.is_empty() {
        return format!("no dead letters ({} routes)", o.routes.len());
    }
    let width = holding
        .iter()
        .map(|r| r.route.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:<width$}  DEAD LETTERS  OLDEST", "ROUTE");
    for r in &holding {
        let n = r.count.map_or_else(|| "?".to_string(), |n| n.to_string());
        let oldest = r
            .oldest
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(
                || "-".to_string(),
                |t| age(now - t.with_timezone(&chrono::Utc)),
            );
        let _ = write!(out, "\n{:<width$}  {n:<12}  {oldest}", r.route);
    }
    let _ = write!(
        out,
        "\n{} dead letter(s) in {} route(s); {} route(s) hold none. `knut dlq list ROUTE` lists them.",
        o.total,
        holding.len(),
        o.routes.len() - holding.len()
    );
    out
}

/// An age as people read it: `45s`, `12m`, `3h 5m`, `2d 4h` (the two largest units).
fn age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, minutes) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The list as a table.
/// A page of dead letters as a table; the last line leads to the next page (asked with
/// `limit` per page).
pub fn table(list: &DeadLetterList, limit: usize) -> String {
    if list.dead_letters.is_empty() {
        return format!("no dead letters in {}", list.queue);
    }
    let row = |s: &DeadLetterSummary| {
        [
            s.id.to_string(),
            s.attempts.map_or_else(|| "-".into(), |a| a.to_string()),
            s.last_failure.clone().unwrap_or_else(|| "-".into()),
            s.step.clone().unwrap_or_else(|| "-".into()),
            one_line(s.reason.as_deref().unwrap_or("-"), 80),
        ]
    };
    let head = ["ID", "ATTEMPTS", "LAST FAILURE", "STEP", "REASON"].map(String::from);
    let rows: Vec<[String; 5]> = std::iter::once(head)
        .chain(list.dead_letters.iter().map(row))
        .collect();
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let n = list.dead_letters.len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match (list.next, list.total) {
        (Some(next), total) => {
            let of = total.map_or(String::new(), |t| format!(" of {t}"));
            let per_page = match limit {
                crate::admin::dlq::PAGE_DEFAULT => String::new(),
                n => format!(" --limit {n}"),
            };
            let _ = write!(
                out,
                "{n} dead letter{}{of} in {}; the next page: knut dlq list {}{per_page} --after {next}",
                plural(n),
                list.queue,
                list.route
            );
        }
        (None, _) => {
            let _ = write!(out, "{n} dead letter{} in {}", plural(n), list.queue);
        }
    }
    out
}

/// One dead letter, field by field, then its headers and body.
pub fn detail(d: &DeadLetterDetail) -> String {
    let s = &d.summary;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let fields = [
        ("id", s.id.to_string()),
        ("correlation id", s.correlation_id.to_string()),
        ("route", s.route.clone()),
        ("step", or_dash(&s.step)),
        ("reason", or_dash(&s.reason)),
        (
            "attempts",
            s.attempts.map_or_else(|| "-".into(), |a| a.to_string()),
        ),
        ("first failure", or_dash(&s.first_failure)),
        ("last failure", or_dash(&s.last_failure)),
        ("content type", s.content_type.clone()),
        ("size", format!("{} bytes", s.size)),
    ];
    for (name, value) in fields {
        let _ = writeln!(out, "{:<15} {value}", format!("{name}:"));
    }
    out.push_str("headers:\n");
    for (name, value) in &d.headers {
        let _ = writeln!(out, "  {name}: {value}");
    }
    out.push_str("body:\n");
    let pretty = serde_json::from_str::<serde_json::Value>(&d.body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    out.push_str(pretty.as_deref().unwrap_or(&d.body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::dlq::{PAGE_DEFAULT, RouteDeadLetters};

    #[test]
    fn the_overview_shows_each_holding_route_with_its_count_and_oldest_age() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let line = |route: &str, count: u64, oldest: Option<&str>| RouteDeadLetters {
            route: route.to_string(),
            count: Some(count),
            oldest: oldest.map(str::to_string),
        };
        let o = DeadLetterOverview {
            routes: vec![
                line("leave-intake", 12, Some("2026-12-04T09:30:00Z")),
                line("grades-export", 3, Some("2026-12-06T10:55:00Z")),
                line("attendance-poll", 1, None),
                line("placement-change", 0, None),
            ],
            total: 16,
        };
        let text = overview_at(&o, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["ROUTE", "DEAD", "LETTERS", "OLDEST"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["leave-intake", "12", "2d", "2h"]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["grades-export", "3", "1h", "5m"]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["attendance-poll", "1", "-"]
        );
        assert!(!text.contains("placement-change"), "{text}");
        assert!(
            lines[4].starts_with("16 dead letter(s) in 3 route(s); 1 route(s) hold none."),
            "{text}"
        );
        assert_eq!(age(chrono::TimeDelta::seconds(42)), "42s");
        assert_eq!(age(chrono::TimeDelta::seconds(-5)), "0s");
    }

    fn summary(reason: &str) -> DeadLetterSummary {
        DeadLetterSummary {
            id: uuid::Uuid::nil(),
            correlation_id: uuid::Uuid::nil(),
            route: "r".into(),
            step: Some("steps[1].to".into()),
            reason: Some(reason.into()),
            attempts: Some(3),
            first_failure: None,
            last_failure: Some("2026-11-23T10:00:01Z".into()),
            content_type: "application/json".into(),
            size: 12,
        }
    }

    #[test]
    fn table_aligns_columns_and_counts() {
        let list = DeadLetterList {
            route: "r".into(),
            queue: "knut.dlq.r".into(),
            total: Some(1),
            dead_letters: vec![summary("sink.deliver answered\nHTTP 503")],
            next: None,
        };
        let t = table(&list, PAGE_DEFAULT);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("ID "), "{t}");
        let col = lines[0].find("ATTEMPTS").expect("column");
        assert_eq!(&lines[1][col..col + 1], "3", "{t}");
        assert!(lines[1].ends_with("sink.deliver answered HTTP 503"), "{t}");
        assert_eq!(lines[2], "1 dead letter in knut.dlq.r");
        let empty = DeadLetterList {
            dead_letters: vec![],
            ..list.clone()
        };
        assert_eq!(table(&empty, PAGE_DEFAULT), "no dead letters in knut.dlq.r");
        let paged = DeadLetterList {
            total: Some(250),
            next: Some(uuid::Uuid::nil()),
            ..list
        };
        let t = table(&paged, PAGE_DEFAULT);
        assert!(
            t.ends_with(
                "1 dead letter of 250 in knut.dlq.r; the next page: knut dlq list r --after \
                 00000000-0000-0000-0000-000000000000"
            ),
            "{t}"
        );
        let t = table(&paged, 20);
        assert!(t.contains("knut dlq list r --limit 20 --after"), "{t}");
    }

    #[test]
    fn detail_pretty_prints_a_json_body() {
        let d = DeadLetterDetail {
            summary: summary("x"),
            headers: [("unit".to_string(), "7".to_string())].into(),
            body: r#"{"n":1}"#.into(),
        };
        let text = detail(&d);
        assert!(text.contains("attempts:       3"), "{text}");
        assert!(text.contains("  unit: 7"), "{text}");
        assert!(text.ends_with("{\n  \"n\": 1\n}"), "{text}");
    }

    #[test]
    fn problem_detail_is_shown_else_the_status() {
        assert_eq!(
            problem_detail(404, r#"{"detail":"there is no route `x`"}"#),
            "there is no route `x`"
        );
        assert_eq!(
            problem_detail(502, "bad gateway"),
            "the admin API answered HTTP 502: bad gateway"
        );
    }
}
