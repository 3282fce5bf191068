//! `audit`: one row of the access audit for each message — who (`actor`), on whose behalf,
//! what (`action`), which `resource`, under which `right`, `allowed` or not — appended to
//! the state store before the message goes on unchanged. For guardian access and "my
//! cases": every view, list, login, approval and refusal (seed 002: every login and view
//! logged; a report of who viewed and who did not).
//!
//! ```yaml
//! - audit:
//!     action: '"view-case"'
//!     actor: '$headers["knut-claim-personalNumber"]'
//!     on_behalf_of: .child
//!     resource: .caseId
//!     right: .right
//!     allowed: .allowed
//! ```
//!
//! Each key is a jq program over the body (with `$headers`): a literal text is quoted
//! (`'"view-case"'`). With `each`, one row per output of that program, the other keys
//! reading the output instead of the body (`each: '.children[]'`, `on_behalf_of:
//! .civicNo`: a row on each child's behalf); no output, no row. People are stored only as HMAC-SHA256 hashes under the instance's
//! audit key (a personnummer in any form is one person); `action`, `resource` and `right`
//! refuse a personnummer-shaped value (a permanent failure that does not repeat it). The
//! row is written before the step passes the message on, so an `audit` before a `reply`
//! is in the store before the caller has the answer. A store that cannot be reached is a
//! transient failure, retried.

use async_trait::async_trait;
use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kind::{CheckCx, Problems, StepKind, build_error};
use super::{BuildError, Context, Step, StepError, compile, eval_one, value_to_string, vars};
use crate::core::envelope::Envelope;
use crate::expr::Program;
use crate::resources::Resources;
use crate::store::{AccessRecord, StoreError, has_personnummer_shape};

/// The rights an access is done under (the vocabulary of guardian access).
pub const RIGHTS: &[&str] = &[
    "own",
    "guardian-view",
    "guardian-approve",
    "delegation",
    "power-of-attorney",
];

/// Options of `audit`: each a jq program over the body (with `$headers`); a literal text is
/// quoted, e.g. `'"view-case"'`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// What was done, e.g. `'"view-case"'`, `'"list-cases"'`, `'"login"'`, `'"approve"'`.
    pub action: String,
    /// Who did it: a personnummer (stored hashed), or another identity such as a staff
    /// token's `sub` (hashed as it is), e.g. `'$headers["knut-claim-personalNumber"]'`.
    pub actor: String,
    /// On whose behalf (the child, the person who delegated), stored hashed; null for
    /// nobody's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// What it concerned, e.g. `.caseId`; never a personnummer (refused); null for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The right it was done under: `own`, `guardian-view`, `guardian-approve`,
    /// `delegation` or `power-of-attorney` (e.g. `'"guardian-view"'`, or `.right`); null
    /// for none (a refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right: Option<String>,
    /// Whether it was allowed: `true` (default), `false` (a refusal), or a jq program
    /// giving a boolean, e.g. `.allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Allowed>,
    /// One row per output of this jq program over the body, the other keys reading that
    /// output instead of the body (with `$headers` as ever), e.g. `'.children[] | {caller:
    /// $caller, child: .civicNo}'`; no output, no row. Without it, one row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<String>,
}

/// `allowed`: a literal boolean, or a jq program giving one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Allowed {
    /// `true` or `false`.
    Literal(bool),
    /// A jq program giving a boolean.
    Jq(String),
}

/// jq's nullary builtins that are values, not mistakes, as a bare word.
const JQ_WORDS: &[&str] = &["null", "true", "false", "empty", "now", "input", "not"];

impl AuditSpec {
    /// The jq programs with their keys.
    fn programs(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("action", self.action.as_str()), ("actor", &self.actor)];
        for (key, p) in [
            ("on_behalf_of", &self.on_behalf_of),
            ("resource", &self.resource),
            ("right", &self.right),
        ] {
            if let Some(p) = p {
                out.push((key, p.as_str()));
            }
        }
        if let Some(Allowed::Jq(p)) = &self.allowed {
            out.push(("allowed", p));
        }
        if let Some(p) = &self.each {
            out.push(("each", p));
        }
        out
    }
}

/// A bare word where a quoted text was meant (`view-case` for `'"view-case"'`).
fn bare_word(program: &str) -> Option<&str> {
    let p = program.trim();
    let word = !p.is_empty()
        && p.starts_with(|c: char| c.is_ascii_alphabetic())
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (word && !JQ_WORDS.contains(&p)).then_some(p)
}

/// The text a quoted jq literal holds (`"own"` → `own`).
fn literal(program: &str) -> Option<&str> {
    let p = program.trim();
    p.strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .filter(|t| !t.contains(['"', '\\']))
}

impl StepKind for AuditSpec {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        for (key, program) in self.programs() {
            if let Some(word) = bare_word(program) {
                out.problem(
                    &format!("{at}.{key}"),
                    format!(
                        "`{key}` is a jq program, and a bare word is a call of a function \
                         `{word}`, not the text"
                    ),
                    Some(&format!("a quoted text: `'\"{word}\"'`")),
                );
            }
        }
        if let Some(right) = self.right.as_deref().and_then(literal)
            && !RIGHTS.contains(&right)
        {
            out.problem(
                &format!("{at}.right"),
                "not one of the rights of guardian access".into(),
                Some(&format!("one of: {}", RIGHTS.join(", "))),
            );
        }
    }

    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        for (key, program) in self.programs() {
            cx.jq(&format!("{at}.{key}"), program);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn Step>, BuildError> {
        Ok(Box::new(Audit::new(self).map_err(|e| build_error(at, e))?))
    }
}

/// The `audit` step.
pub struct Audit {
    action: Program,
    actor: Program,
    on_behalf_of: Option<Program>,
    resource: Option<Program>,
    right: Option<Program>,
    allowed: Result<bool, Program>,
    each: Option<Program>,
}

impl Audit {
    /// Build; every program must compile.
    pub fn new(spec: &AuditSpec) -> Result<Self, String> {
        let optional =
            |key: &str, p: &Option<String>| p.as_deref().map(|p| compile(key, p)).transpose();
        Ok(Audit {
            action: compile("action", &spec.action)?,
            actor: compile("actor", &spec.actor)?,
            on_behalf_of: optional("on_behalf_of", &spec.on_behalf_of)?,
            resource: optional("resource", &spec.resource)?,
            right: optional("right", &spec.right)?,
            allowed: match &spec.allowed {
                None => Ok(true),
                Some(Allowed::Literal(b)) => Ok(*b),
                Some(Allowed::Jq(p)) => Err(compile("allowed", p)?),
            },
            each: optional("each", &spec.each)?,
        })
    }
}

/// A text from a program's output: strings and numbers as text; null (or an empty text)
/// is none. Anything else is an error naming the key, never the value.
fn text(key: &str, v: &Value) -> Result<Option<String>, StepError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(_) | Value::Number(_) => Ok(Some(value_to_string(v))),
        _ => Err(StepError::permanent(format!(
            "audit: `{key}` gave a {}, not a text",
            kind(v)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "text",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// A plain (unhashed) column's text: refused when it has a personnummer's shape.
fn plain(key: &str, v: Option<String>) -> Result<Option<String>, StepError> {
    match v {
        Some(t) if has_personnummer_shape(&t) => Err(StepError::permanent(format!(
            "audit: `{key}` has the shape of a personnummer, which the access audit never holds \
             in plain text; give a case id (people go in `actor` and `on_behalf_of`, hashed)"
        ))),
        v => Ok(v),
    }
}

impl Audit {
    /// The row the programs make of `body` (the message's, or an output of `each`).
    fn record(&self, body: &Value, m: &Envelope, cx: &Context) -> Result<AccessRecord, StepError> {
        let eval = |key: &str, p: &Program| -> Result<Value, StepError> {
            eval_one(p, &format!("audit {key}"), body, m)
        };
        let optional = |key: &str, p: &Option<Program>| -> Result<Option<String>, StepError> {
            match p {
                Some(p) => text(key, &eval(key, p)?),
                None => Ok(None),
            }
        };
        let action = plain("action", text("action", &eval("action", &self.action)?)?)?
            .ok_or_else(|| StepError::permanent("audit: `action` gave no text"))?;
        let actor = text("actor", &eval("actor", &self.actor)?)?.ok_or_else(|| {
            StepError::permanent("audit: `actor` gave no one (null or an empty text)")
        })?;
        let allowed = match &self.allowed {
            Ok(b) => *b,
            Err(p) => match eval("allowed", p)? {
                Value::Bool(b) => b,
                other => {
                    return Err(StepError::permanent(format!(
                        "audit: `allowed` gave a {}, not true or false",
                        kind(&other)
                    )));
                }
            },
        };
        Ok(AccessRecord {
            at: Utc::now(),
            actor,
            on_behalf_of: optional("on_behalf_of", &self.on_behalf_of)?,
            action,
            resource: plain("resource", optional("resource", &self.resource)?)?,
            right: plain("right", optional("right", &self.right)?)?,
            allowed,
            route: cx.route.to_string(),
            correlation_id: m.correlation_id,
        })
    }
}

#[async_trait]
impl Step for Audit {
    async fn apply(&self, m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        // Every row is made before any is written: a program failing for one writes none.
        let records = {
            let body = m.json_body()?;
            match &self.each {
                None => vec![self.record(&body, &m, cx)?],
                Some(each) => each
                    .run(&body, &vars(&m))
                    .map_err(|e| StepError::permanent(format!("audit each: {e}")))?
                    .iter()
                    .map(|input| self.record(input, &m, cx))
                    .collect::<Result<_, _>>()?,
            }
        };
        for record in &records {
            cx.store
                .access_audit_append(record)
                .await
                .map_err(|e| match e {
                    StoreError::InvalidValue { .. } => StepError::permanent(format!("audit: {e}")),
                    e => StepError::transient(format!("audit: state store: {e}")),
                })?;
        }
        Ok(vec![m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::FailureKind;
    use crate::store::{AccessAuditQuery, Store};
    use serde_json::json;

    fn spec(yaml: &str) -> AuditSpec {
        serde_saphyr::from_str(yaml).expect("an audit spec")
    }

    struct Collect(Vec<(String, String, Option<String>)>);
    impl Problems for Collect {
        fn problem(&mut self, path: &str, message: String, expected: Option<&str>) {
            self.0
                .push((path.into(), message, expected.map(str::to_string)));
        }
    }

    async fn cx(store: Store) -> Context {
        crate::step::test_effects::context("guardian-case", store)
    }

    // Fictional: valid check digits, never a real person.
    const GUARDIAN: &str = "197903141237";
    const CHILD: &str = "201304122383";

    #[test]
    fn a_bare_word_and_an_unknown_right_are_named_with_the_fix() {
        let mut out = Collect(Vec::new());
        spec("{action: view-case, actor: .who, right: '\"guardian_view\"'}")
            .lint("steps[0].audit", &mut out);
        assert_eq!(out.0.len(), 2, "{:?}", out.0);
        assert_eq!(out.0[0].0, "steps[0].audit.action");
        assert_eq!(
            out.0[0].2.as_deref(),
            Some("a quoted text: `'\"view-case\"'`")
        );
        assert_eq!(out.0[1].0, "steps[0].audit.right");
        assert!(out.0[1].2.as_deref().unwrap().contains("guardian-view"));
        let mut out = Collect(Vec::new());
        spec("{action: '\"login\"', actor: .who, right: .right, allowed: false, resource: null}")
            .lint("steps[0].audit", &mut out);
        assert!(out.0.is_empty(), "{:?}", out.0);
        assert_eq!(
            spec("{action: '\"a\"', actor: .a, allowed: .ok}").allowed,
            Some(Allowed::Jq(".ok".into()))
        );
    }

    #[tokio::test]
    async fn a_row_is_appended_and_the_message_passes_unchanged() {
        let store = Store::memory().await.unwrap();
        let cx = cx(store.clone()).await;
        let step = Audit::new(&spec(
            "{action: '\"view-case\"', actor: '$headers[\"knut-claim-personalNumber\"]', \
             on_behalf_of: .child, resource: .caseId, right: '\"guardian-view\"'}",
        ))
        .unwrap();
        let mut m = Envelope::json(json!({"child": "20130412-2383", "caseId": 4711}));
        m.headers
            .insert("knut-claim-personalNumber".into(), "19790314-1237".into());
        let out = step.apply(m.clone(), &cx).await.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].body.to_bytes(), m.body.to_bytes());
        assert_eq!(out[0].headers, m.headers);
        let rows = store
            .access_audit_query(&AccessAuditQuery {
                actor: Some(store.audit_hash(GUARDIAN).unwrap()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.on_behalf_of, Some(store.audit_hash(CHILD).unwrap()));
        assert_eq!(
            (r.action.as_str(), r.resource.as_deref(), r.right.as_deref()),
            ("view-case", Some("4711"), Some("guardian-view"))
        );
        assert!(r.allowed);
        assert_eq!(
            (r.route.as_str(), r.correlation_id),
            ("guardian-case", m.correlation_id)
        );
    }

    #[tokio::test]
    async fn each_writes_one_row_per_output_and_none_when_one_fails() {
        let store = Store::memory().await.unwrap();
        let cx = cx(store.clone()).await;
        let step = Audit::new(&spec(
            "{each: '.caller as $c | .children[] | {caller: $c, child: .civicNo, age}', \
             action: '\"list-cases\"', actor: .caller, on_behalf_of: .child, \
             right: 'if .age < 15 then \"guardian-approve\" else \"guardian-view\" end'}",
        ))
        .unwrap();
        let body = json!({"caller": GUARDIAN, "children": [
            {"civicNo": CHILD, "age": 13}, {"civicNo": "200806062394", "age": 18}]});
        step.apply(Envelope::json(body), &cx).await.unwrap();
        let rows = store
            .access_audit_query(&AccessAuditQuery::default())
            .await
            .unwrap();
        let mut rights: Vec<_> = rows
            .iter()
            .map(|r| (r.on_behalf_of.clone(), r.right.clone()))
            .collect();
        rights.sort();
        let mut want = vec![
            (
                Some(store.audit_hash(CHILD).unwrap()),
                Some("guardian-approve".to_string()),
            ),
            (
                Some(store.audit_hash("200806062394").unwrap()),
                Some("guardian-view".to_string()),
            ),
        ];
        want.sort();
        assert_eq!(rights, want);
        assert!(
            rows.iter()
                .all(|r| r.actor == store.audit_hash(GUARDIAN).unwrap())
        );

        // No output, no row; an output the programs cannot read writes no row at all.
        step.apply(
            Envelope::json(json!({"caller": GUARDIAN, "children": []})),
            &cx,
        )
        .await
        .unwrap();
        let bad = json!({"caller": GUARDIAN, "children": [{"civicNo": CHILD, "age": 9}, {"civicNo": [], "age": 9}]});
        assert!(step.apply(Envelope::json(bad), &cx).await.is_err());
        let after = store
            .access_audit_query(&AccessAuditQuery::default())
            .await
            .unwrap();
        assert_eq!(after.len(), 2);
    }

    #[tokio::test]
    async fn a_refusal_and_the_wrong_values_fail_without_repeating_them() {
        let store = Store::memory().await.unwrap();
        let cx = cx(store.clone()).await;
        let refusal = Audit::new(&spec(
            "{action: '\"view-case\"', actor: .who, resource: .caseId, allowed: .ok}",
        ))
        .unwrap();
        let m = Envelope::json(json!({"who": "staff-ada", "caseId": "c-1", "ok": false}));
        refusal.apply(m, &cx).await.unwrap();
        let rows = store
            .access_audit_query(&AccessAuditQuery::default())
            .await
            .unwrap();
        assert_eq!((rows.len(), rows[0].allowed), (1, false));
        assert_eq!(rows[0].actor, store.audit_hash("staff-ada").unwrap());

        for (body, says) in [
            (
                json!({"who": "staff-ada", "caseId": CHILD, "ok": true}),
                "`resource` has the shape of a personnummer",
            ),
            (
                json!({"who": null, "caseId": "c-1", "ok": true}),
                "`actor` gave no one",
            ),
            (
                json!({"who": "a", "caseId": "c-1", "ok": "yes"}),
                "`allowed` gave a text",
            ),
            (
                json!({"who": "a", "caseId": {"id": CHILD}, "ok": true}),
                "`resource` gave a object",
            ),
        ] {
            let err = refusal.apply(Envelope::json(body), &cx).await.unwrap_err();
            assert_eq!(err.kind, FailureKind::Permanent);
            assert!(err.message.contains(says), "{}", err.message);
            assert!(!err.message.contains("2383"), "{}", err.message);
        }
        // Nothing more was written.
        assert_eq!(
            store
                .access_audit_query(&AccessAuditQuery::default())
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_store_that_fails_is_a_transient_failure() {
        let store = Store::memory().await.unwrap();
        let cx = cx(store.clone()).await;
        store.close().await;
        let step = Audit::new(&spec("{action: '\"login\"', actor: .who}")).unwrap();
        let err = step
            .apply(Envelope::json(json!({"who": GUARDIAN})), &cx)
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::Transient);
        assert!(!err.message.contains("1237"), "{}", err.message);
    }
}
