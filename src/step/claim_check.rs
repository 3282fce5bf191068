//! `claim_check`: the Claim Check pattern with a single-use ticket. `issue` keeps a value
//! in the state store and gives the message an unguessable token for it; `redeem` takes a
//! token presented later, says whether it is good, and uses it up — once, under any
//! concurrency. For a one-time link to a case (issue 12; seed 002: a view "shared by a
//! one-time link"): the link carries the token, the store what it stands for.
//!
//! ```yaml
//! - claim_check: { name: case-links, issue: '{caseId, sharer: .caller}', valid_for: '24 * 3600', into: link }
//! - claim_check: { name: case-links, redeem: '$headers["knut-param-token"]', into: link }
//! - claim_check: { name: case-links, release: '$headers["knut-param-token"]' }
//! ```
//!
//! - **issue**: 32 bytes of the operating system's random generator, base64url without
//!   padding (43 characters) — the token. The value is kept under the token's SHA-256 (hex)
//!   in the named cache of the state store, never under the token itself, so a copy of the
//!   store holds no usable token; the token carries nothing but chance, so nothing is
//!   learnt from it. `into` becomes `{token, expires}` (RFC 3339, UTC). `valid_for` is a jq
//!   program giving the seconds the token is good for (more than 0, at most 366 days).
//! - **redeem**: `into` becomes `{status, expires, value}`: `unknown` (not a token this
//!   store issued — forged, altered, mistyped, or forgotten `keep` after it expired;
//!   `expires` and `value` null), `expired`, `used` (redeemed before by another message),
//!   or `valid` (this message is the one that uses it: the first, or a retry of the first).
//!   The use is claimed as an idempotent consumer claims a key (one atomic statement; of
//!   any number of concurrent redeems exactly one is `valid`); a message that is
//!   dead-lettered frees its claim, so a view that failed does not use the link up.
//! - **release**: frees this message's claim on the token (a use that could not be
//!   completed, e.g. the system behind it was down): the token can be redeemed again.
//!
//! A token is known for `keep` (default 30 days) after it expired, so that it answers
//! `expired` rather than `unknown`, then forgotten. Tokens and values are never logged.
//! A store that cannot be reached is a transient failure, retried.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kind::{CheckCx, Problems, StepKind, build_error};
use super::{BuildError, Context, Step, StepError, compile, eval_one};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::expr::Program;
use crate::resources::Resources;
use crate::store::{Claim, has_personnummer_shape};

/// The random bytes of a token.
const TOKEN_BYTES: usize = 32;
/// A token's length: 32 bytes in base64url without padding.
const TOKEN_CHARS: usize = 43;
/// The longest a token may be valid.
const MAX_VALID_SECONDS: f64 = 366.0 * 24.0 * 3600.0;
/// How long a token is known after it expired, by default.
const DEFAULT_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Options of `claim_check`: exactly one of `issue`, `redeem` and `release`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimCheckSpec {
    /// The tickets' name, shared by the routes that issue and redeem them, e.g.
    /// `case-links` (a cache of the state store by that name holds them).
    pub name: String,
    /// jq expression over the body giving the value the new token stands for, kept in the
    /// state store (never in the token), e.g. `'{caseId, sharer: .caller}'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
    /// With `issue`: jq expression giving how many seconds the token is valid, more than 0
    /// and at most 366 days, e.g. `'.hours * 3600'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_for: Option<String>,
    /// jq expression giving a presented token to check and use up: `into` becomes
    /// `{status: valid|used|expired|unknown, expires, value}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeem: Option<String>,
    /// jq expression giving a token this message redeemed, whose use is undone (it can be
    /// redeemed again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// With `issue`: how long a token is still known after it expired, so that it is
    /// `expired` rather than `unknown`, e.g. `30d` (the default).
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub keep: Option<Duration>,
    /// Key of the body object that takes `{token, expires}` (`issue`) or `{status,
    /// expires, value}` (`redeem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
}

/// What a `claim_check` step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Issue,
    Redeem,
    Release,
}

impl ClaimCheckSpec {
    /// The one operation named, with its program's source.
    fn op(&self) -> Result<(Op, &str), String> {
        let named: Vec<(Op, &str)> = [
            (Op::Issue, &self.issue),
            (Op::Redeem, &self.redeem),
            (Op::Release, &self.release),
        ]
        .into_iter()
        .filter_map(|(op, p)| p.as_deref().map(|p| (op, p)))
        .collect();
        match named.as_slice() {
            [one] => Ok(*one),
            _ => Err(
                "a claim_check step names exactly one of `issue`, `redeem` and `release`".into(),
            ),
        }
    }

    fn shape(&self) -> Result<Op, String> {
        let (op, _) = self.op()?;
        if self.name.trim().is_empty() {
            return Err("`name` names the tickets (shared by the routes that use them)".into());
        }
        match op {
            Op::Issue if self.valid_for.is_none() => {
                Err("`issue` needs `valid_for`: the seconds the token is valid".into())
            }
            Op::Issue | Op::Redeem if self.into.is_none() => Err(
                "`issue` and `redeem` need `into`: the key of the body that takes the answer"
                    .into(),
            ),
            Op::Redeem | Op::Release if self.valid_for.is_some() || self.keep.is_some() => {
                Err("`valid_for` and `keep` belong to `issue`".into())
            }
            Op::Release if self.into.is_some() => {
                Err("`release` answers nothing: leave `into` out".into())
            }
            _ => Ok(op),
        }
    }
}

impl StepKind for ClaimCheckSpec {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        if let Err(e) = self.shape() {
            out.problem(
                at,
                e,
                Some("e.g. `{name: case-links, redeem: '$headers[\"knut-param-token\"]', into: link}`"),
            );
        }
    }

    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        if let Ok((op, program)) = self.op() {
            let field = match op {
                Op::Issue => "issue",
                Op::Redeem => "redeem",
                Op::Release => "release",
            };
            cx.jq(&format!("{at}.{field}"), program);
        }
        if let Some(p) = &self.valid_for {
            cx.jq(&format!("{at}.valid_for"), p);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn Step>, BuildError> {
        Ok(Box::new(
            ClaimCheck::new(self).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// The `claim_check` step.
pub struct ClaimCheck {
    name: String,
    op: Op,
    program: Program,
    valid_for: Option<Program>,
    keep: Duration,
    into: String,
}

impl ClaimCheck {
    /// Build; the programs must compile and exactly one operation be named.
    pub fn new(spec: &ClaimCheckSpec) -> Result<Self, String> {
        let op = spec.shape()?;
        let (_, program) = spec.op()?;
        Ok(ClaimCheck {
            name: spec.name.clone(),
            op,
            program: compile("claim_check", program)?,
            valid_for: spec
                .valid_for
                .as_deref()
                .map(|p| compile("valid_for", p))
                .transpose()?,
            keep: spec.keep.unwrap_or(DEFAULT_KEEP),
            into: spec.into.clone().unwrap_or_default(),
        })
    }

    /// The idempotency scope the uses of this step's tokens are claimed in.
    fn scope(&self) -> String {
        format!("claim_check/{}", self.name)
    }
}

/// A new token: 32 random bytes, base64url without padding. A token that happened to hold
/// a personnummer's shape is drawn again, so that no answer or log can show one.
fn new_token() -> String {
    use rand::RngCore as _;
    loop {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        if !has_personnummer_shape(&token) {
            return token;
        }
    }
}

/// Whether `text` can be a token this step issued (length and alphabet).
fn token_shaped(text: &str) -> bool {
    text.len() == TOKEN_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The key a token's value is kept under: its SHA-256, hex.
fn key_of(token: &str) -> String {
    super::cache::sha256_hex(token)
}

fn store_error(e: impl std::fmt::Display) -> StepError {
    StepError::transient(format!("claim_check: state store: {e}"))
}

/// The seconds `valid_for` gave, checked.
fn seconds(v: &Value) -> Result<i64, StepError> {
    match v.as_f64() {
        Some(s) if s > 0.0 && s <= MAX_VALID_SECONDS => Ok(s.ceil() as i64),
        _ => Err(StepError::permanent(
            "claim_check: `valid_for` must give a number of seconds, more than 0 and at most \
             366 days",
        )),
    }
}

/// How a redeemed token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Valid,
    Used,
    Expired,
    Unknown,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Used => "used",
            Status::Expired => "expired",
            Status::Unknown => "unknown",
        }
    }
}

/// A stored ticket: `{expires, value}`. Anything else is a permanent failure (the store
/// holds what only this step writes).
fn ticket(text: &str) -> Result<(DateTime<Utc>, Value), StepError> {
    let bad = || StepError::permanent("claim_check: a stored ticket is not one this step wrote");
    let mut stored: Value = serde_json::from_str(text).map_err(|_| bad())?;
    let expires = stored
        .get("expires")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .ok_or_else(bad)?
        .with_timezone(&Utc);
    Ok((
        expires,
        stored
            .get_mut("value")
            .map(Value::take)
            .unwrap_or(Value::Null),
    ))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl ClaimCheck {
    async fn redeem(&self, token: &Value, m: &Envelope, cx: &Context) -> Result<Value, StepError> {
        let unknown = json!({"status": Status::Unknown.as_str(), "expires": null, "value": null});
        let Some(token) = token.as_str().filter(|t| token_shaped(t)) else {
            return Ok(unknown);
        };
        let key = key_of(token);
        let rows = cx
            .store
            .cache_get(&self.name, &key)
            .await
            .map_err(store_error)?;
        let Some((_, text)) = rows.iter().find(|(member, _)| member.is_empty()) else {
            return Ok(unknown);
        };
        let (expires, value) = ticket(text)?;
        let status = if Utc::now() >= expires {
            Status::Expired
        } else {
            match cx
                .store
                .claim_key(&self.scope(), &key, m.id)
                .await
                .map_err(store_error)?
            {
                Claim::First | Claim::SameMessage => Status::Valid,
                Claim::Duplicate => Status::Used,
            }
        };
        Ok(json!({"status": status.as_str(), "expires": rfc3339(expires), "value": value}))
    }
}

#[async_trait]
impl Step for ClaimCheck {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let (given, valid_for) = {
            let body = m.json_body()?;
            let given = eval_one(&self.program, "claim_check", &body, &m)?;
            let valid_for = match &self.valid_for {
                Some(p) => Some(seconds(&eval_one(p, "claim_check valid_for", &body, &m)?)?),
                None => None,
            };
            (given, valid_for)
        };
        let answer = match self.op {
            Op::Issue => {
                let seconds = valid_for.unwrap_or_default();
                let expires = Utc::now() + chrono::Duration::seconds(seconds);
                let token = new_token();
                let text =
                    serde_json::to_string(&json!({"expires": rfc3339(expires), "value": given}))
                        .map_err(|e| StepError::permanent(format!("claim_check: value: {e}")))?;
                let ttl = Duration::from_secs(seconds.unsigned_abs()) + self.keep;
                cx.store
                    .cache_set(&self.name, &key_of(&token), &text, Some(ttl))
                    .await
                    .map_err(store_error)?;
                json!({"token": token, "expires": rfc3339(expires)})
            }
            Op::Redeem => self.redeem(&given, &m, cx).await?,
            Op::Release => {
                if let Some(token) = given.as_str().filter(|t| token_shaped(t)) {
                    cx.store
                        .release_key(&self.scope(), &key_of(token), m.id)
                        .await
                        .map_err(store_error)?;
                }
                return Ok(vec![m]);
            }
        };
        let mut body = m.json_body()?.into_owned();
        let Value::Object(map) = &mut body else {
            return Err(StepError::permanent(
                "claim_check: `issue` and `redeem` put their answer into the body, which must be \
                 a JSON object",
            ));
        };
        map.insert(self.into.clone(), answer);
        m.body = Body::Json(body);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn spec(yaml: &str) -> ClaimCheckSpec {
        serde_saphyr::from_str(yaml).expect("a claim_check spec")
    }

    fn step(yaml: &str) -> ClaimCheck {
        ClaimCheck::new(&spec(yaml)).expect("builds")
    }

    async fn context() -> Context {
        crate::step::test_effects::context(
            "r",
            crate::store::Store::memory().await.expect("a store"),
        )
    }

    async fn run(s: &ClaimCheck, m: Envelope, cx: &Context) -> Value {
        let out = s.apply(m, cx).await.expect("applies");
        out[0].json_body().expect("json").into_owned()
    }

    fn issue() -> ClaimCheck {
        step("{name: links, issue: '{caseId}', valid_for: .seconds, into: link}")
    }

    fn redeem() -> ClaimCheck {
        step("{name: links, redeem: .token, into: link}")
    }

    #[test]
    fn exactly_one_operation_with_its_own_keys() {
        assert_eq!(
            issue_spec_shape("{name: l, issue: ., valid_for: '60', into: x}"),
            Ok(Op::Issue)
        );
        assert_eq!(
            issue_spec_shape("{name: l, redeem: .t, into: x}"),
            Ok(Op::Redeem)
        );
        assert_eq!(issue_spec_shape("{name: l, release: .t}"), Ok(Op::Release));
        for (bad, says) in [
            ("{name: l}", "exactly one of"),
            ("{name: l, issue: ., redeem: .t, into: x}", "exactly one of"),
            ("{name: l, issue: ., into: x}", "needs `valid_for`"),
            ("{name: l, issue: ., valid_for: '1'}", "need `into`"),
            ("{name: l, redeem: .t}", "need `into`"),
            (
                "{name: l, redeem: .t, into: x, keep: 1d}",
                "belong to `issue`",
            ),
            ("{name: l, release: .t, into: x}", "leave `into` out"),
            ("{name: ' ', release: .t}", "`name`"),
        ] {
            let err = issue_spec_shape(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    fn issue_spec_shape(yaml: &str) -> Result<Op, String> {
        spec(yaml).shape()
    }

    #[test]
    fn tokens_are_random_base64url_and_never_personnummer_shaped() {
        let a = new_token();
        assert!(token_shaped(&a), "{a}");
        assert_ne!(a, new_token());
        assert!(!token_shaped("short"));
        assert!(!token_shaped(&format!("{}=", &a[..42])));
        assert!(!token_shaped(&format!("{a}x")));
        for _ in 0..2000 {
            assert!(!has_personnummer_shape(&new_token()));
        }
        assert_eq!(key_of("abc").len(), 64);
        assert_ne!(key_of(&a), a);
    }

    /// Issued, then redeemed once: the second redeem (another message) is `used`; a retry
    /// of the first is still `valid`; an altered token is `unknown`, and the store holds the
    /// token only as its hash.
    #[tokio::test]
    async fn a_token_is_good_once() {
        let cx = context().await;
        let issued = run(
            &issue(),
            Envelope::json(json!({"caseId": "casedata-7", "seconds": 3600})),
            &cx,
        )
        .await;
        let token = issued["link"]["token"]
            .as_str()
            .expect("a token")
            .to_string();
        assert!(token_shaped(&token));
        assert!(
            issued["link"]["expires"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        assert!(
            cx.store
                .cache_get("links", &token)
                .await
                .expect("reads")
                .is_empty()
        );
        assert_eq!(
            cx.store
                .cache_get("links", &key_of(&token))
                .await
                .expect("reads")
                .len(),
            1
        );

        let first = Envelope::json(json!({"token": token}));
        let got = run(&redeem(), first.clone(), &cx).await;
        assert_eq!(got["link"]["status"], "valid", "{got}");
        assert_eq!(got["link"]["value"], json!({"caseId": "casedata-7"}));
        assert_eq!(got["link"]["expires"], issued["link"]["expires"]);
        let again = run(&redeem(), first.clone(), &cx).await;
        assert_eq!(
            again["link"]["status"], "valid",
            "a retry of the same message"
        );
        let second = run(&redeem(), Envelope::json(json!({"token": token})), &cx).await;
        assert_eq!(second["link"]["status"], "used", "{second}");
        assert_eq!(second["link"]["value"], json!({"caseId": "casedata-7"}));

        let mut altered = token.clone().into_bytes();
        altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        for forged in [json!(altered), json!("x"), json!(null), json!(42)] {
            let got = run(&redeem(), Envelope::json(json!({"token": forged})), &cx).await;
            assert_eq!(
                got["link"],
                json!({"status": "unknown", "expires": null, "value": null}),
                "{forged}"
            );
        }
    }

    /// Released by the message that used it, a token can be redeemed again (by another).
    #[tokio::test]
    async fn a_released_use_can_be_made_again() {
        let cx = context().await;
        let issued = run(
            &issue(),
            Envelope::json(json!({"caseId": "c", "seconds": 60})),
            &cx,
        )
        .await;
        let token = issued["link"]["token"].clone();
        let first = Envelope::json(json!({"token": token}));
        assert_eq!(
            run(&redeem(), first.clone(), &cx).await["link"]["status"],
            "valid"
        );
        let release = step("{name: links, release: .token}");
        release.apply(first, &cx).await.expect("released");
        let other = run(&redeem(), Envelope::json(json!({"token": token})), &cx).await;
        assert_eq!(other["link"]["status"], "valid");
    }

    /// Of concurrent redeems of one token exactly one is `valid`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_redeems_use_it_once() {
        let cx = context().await;
        let issued = run(
            &issue(),
            Envelope::json(json!({"caseId": "c", "seconds": 60})),
            &cx,
        )
        .await;
        let token = issued["link"]["token"].clone();
        let s = Arc::new(redeem());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (s, cx, token) = (s.clone(), cx.clone(), token.clone());
                tokio::spawn(async move {
                    run(&s, Envelope::json(json!({"token": token})), &cx).await["link"]["status"]
                        .clone()
                })
            })
            .collect();
        let mut valid = 0;
        for t in tasks {
            let status = t.await.expect("joins");
            assert!(status == "valid" || status == "used", "{status}");
            valid += usize::from(status == "valid");
        }
        assert_eq!(valid, 1);
    }

    /// An expired ticket is `expired` (and not used up); a wrong `valid_for` is refused.
    #[tokio::test]
    async fn expired_and_invalid_validity() {
        let cx = context().await;
        let token = new_token();
        let past = rfc3339(Utc::now() - chrono::Duration::seconds(5));
        cx.store
            .cache_set(
                "links",
                &key_of(&token),
                &json!({"expires": past, "value": {"caseId": "c"}}).to_string(),
                None,
            )
            .await
            .expect("set");
        let got = run(&redeem(), Envelope::json(json!({"token": token})), &cx).await;
        assert_eq!(got["link"]["status"], "expired");
        assert_eq!(got["link"]["value"], json!({"caseId": "c"}));
        for bad in [json!(0), json!(-5), json!("3600"), json!(400 * 24 * 3600)] {
            let Err(err) = issue()
                .apply(Envelope::json(json!({"caseId": "c", "seconds": bad})), &cx)
                .await
            else {
                panic!("{bad} was taken for a validity");
            };
            assert!(err.message.contains("valid_for"), "{}", err.message);
        }
    }
}
