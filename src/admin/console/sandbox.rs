//! The development page: the sandbox's simulated systems, what each received (its inbox)
//! and its fault, with a button to make its next calls fail and one to end that. The console
//! forwards the form to the sandbox's own `_fault` control; only in the development
//! profile, while the sandbox runs.

use axum::Extension;
use axum::extract::{Form, Path, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{State, error_page};
use crate::admin::auth::Principal;
use crate::core::redact;

/// Calls of an inbox the page shows (the newest).
const SHOWN_CALLS: usize = 5;

#[derive(Debug, Serialize)]
struct CallRow {
    time: String,
    method: String,
    path: String,
    status: Option<u64>,
    fault: bool,
}

#[derive(Debug, Serialize)]
struct SystemRow {
    name: String,
    what: String,
    calls: usize,
    recent: Vec<CallRow>,
    /// The fault in force, in words.
    fault: Option<String>,
}

/// The sandbox's base address, or why there is none.
fn base(s: &State) -> Result<String, &'static str> {
    if !s.console.development {
        return Err("The sandbox runs only in the development profile (knut run --dev).");
    }
    match s.console.sandbox.get() {
        Some(addr) => Ok(format!("http://{addr}/sandbox")),
        None => {
            Err("This development instance runs without the sandbox (sandbox.enabled = false).")
        }
    }
}

fn no_sandbox(why: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, "No sandbox here", why)
}

async fn get_json(s: &State, url: &str) -> Option<Value> {
    let r = s.http.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// A system name as the sandbox's index gives it: lower-case letters, digits and `-`.
fn system_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) async fn page(
    AxumState(s): AxumState<State>,
    who: Option<Extension<Principal>>,
) -> Response {
    let base = match base(&s) {
        Ok(b) => b,
        Err(why) => return no_sandbox(why),
    };
    let Some(index) = get_json(&s, &base).await else {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sandbox does not answer",
            "Try again in a moment.",
        );
    };
    let mut systems = Vec::new();
    for sys in index["systems"].as_array().into_iter().flatten() {
        let Some(name) = sys["system"].as_str().filter(|n| system_name(n)) else {
            continue;
        };
        let inbox = get_json(&s, &format!("{base}/{name}/_inbox")).await;
        let calls = inbox
            .as_ref()
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let recent = calls
            .iter()
            .rev()
            .take(SHOWN_CALLS)
            .map(|c| CallRow {
                time: c["time"].as_str().unwrap_or_default().to_string(),
                method: c["method"].as_str().unwrap_or_default().to_string(),
                // Decoded before it is masked: `%2B` hides no personnummer.
                path: redact::mask_path(c["path"].as_str().unwrap_or_default()),
                status: c["answer"]["status"].as_u64(),
                fault: c["fault"].as_bool().unwrap_or(false),
            })
            .collect();
        let fault = get_json(&s, &format!("{base}/{name}/_fault"))
            .await
            .and_then(|f| {
                let f = f.get("fault")?.as_object()?.clone();
                Some(format!(
                    "the next {} call(s) answer {}{}",
                    f.get("count").and_then(Value::as_u64).unwrap_or(0),
                    f.get("status").and_then(Value::as_u64).unwrap_or(0),
                    match f.get("delay_ms").and_then(Value::as_u64) {
                        Some(d) if d > 0 => format!(" after {d} ms"),
                        _ => String::new(),
                    }
                ))
            });
        systems.push(SystemRow {
            name: name.to_string(),
            what: sys["what"].as_str().unwrap_or_default().to_string(),
            calls: calls.len(),
            recent,
            fault,
        });
    }
    let mut ctx = tera::Context::new();
    ctx.insert("page", "sandbox");
    ctx.insert("systems", &systems);
    ctx.insert("sandbox", &base);
    super::pages::render(&s, "sandbox.html", ctx, who.as_deref(), StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub(super) struct FaultForm {
    status: u16,
    count: u32,
    #[serde(default)]
    delay_ms: u64,
}

fn back() -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_static("/console/sandbox"),
    );
    r
}

pub(super) async fn fault(
    AxumState(s): AxumState<State>,
    Path(system): Path<String>,
    Form(f): Form<FaultForm>,
) -> Response {
    let base = match base(&s) {
        Ok(b) => b,
        Err(why) => return no_sandbox(why),
    };
    if !system_name(&system) {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such system",
            "See the sandbox page.",
        );
    }
    let body = serde_json::json!({"status": f.status, "count": f.count.min(1000), "delay_ms": f.delay_ms.min(60_000)});
    match s
        .http
        .post(format!("{base}/{system}/_fault"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            tracing::info!(
                system,
                status = f.status,
                count = f.count,
                "sandbox fault set from the console"
            );
            back()
        }
        Ok(r) => error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The sandbox refused the fault",
            &format!(
                "It answered {}: a status is 400–599 (or 0 to only delay), a count at least 1.",
                r.status().as_u16()
            ),
        ),
        Err(e) => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sandbox does not answer",
            &e.to_string(),
        ),
    }
}

pub(super) async fn clear(AxumState(s): AxumState<State>, Path(system): Path<String>) -> Response {
    let base = match base(&s) {
        Ok(b) => b,
        Err(why) => return no_sandbox(why),
    };
    if !system_name(&system) {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such system",
            "See the sandbox page.",
        );
    }
    match s
        .http
        .delete(format!("{base}/{system}/_fault"))
        .send()
        .await
    {
        Ok(_) => back(),
        Err(e) => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sandbox does not answer",
            &e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn system_names_are_plain() {
        assert!(super::system_name("oep-integrator"));
        assert!(!super::system_name("../admin"));
        assert!(!super::system_name(""));
        assert!(!super::system_name("a/b"));
    }
}
