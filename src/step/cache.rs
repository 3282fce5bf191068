//! `cache`: values kept under a key in a named cache in the state store (SQLite, or
//! PostgreSQL shared by several instances), for routes that must remember what another
//! route saw — e.g. the school-transport decisions by person number, written by the route
//! that polls the e-service and read by the route that checks the day's moves.
//!
//! ```yaml
//! - cache: { name: decisions, add: '"person/\(.child)"', value: '{caseNumber, period}', ttl: 1100d }
//! - cache: { name: decisions, get: '"person/\(.personNumber)"', into: decisions }
//! ```
//!
//! One of `set` (the value under the key, replacing what it held), `add` (the value to the
//! set under the key; the same value again is one member, its expiry renewed), `get` (what
//! the key holds, put under `into` of the body: a value that was `set`, or the list of a
//! set's members; null when it holds nothing, so read a set as `(.into // [])`), `get_all`
//! (every key its expression gives, at once: `into` becomes an object from each key that
//! holds something to what it holds — the day's moved people looked up in one step), `remove`
//! (the value from the set under the key)
//! and `delete` (the key), each naming its key with a jq expression — for `set`, `add`,
//! `remove` and `delete` every output of it is a key (a decision kept under each person it
//! concerns: `add: '.persons[] | "person/\(.)"'`), for `get` the first. `value` (a jq
//! expression, default the body) is what `set`, `add` and `remove` keep or take away.
//! Keys and values are never logged; a store that cannot be reached is a transient
//! failure, retried.

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::kind::{CheckCx, Problems, StepKind, build_error};
use super::{BuildError, Context, Step, StepError, compile, eval_one, value_to_string};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::expr::Program;
use crate::resources::Resources;

/// Options of `cache`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// The cache's name, shared by the routes that use it.
    pub name: String,
    /// jq expression giving the key under which `value` replaces what the key held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// jq expression giving the key to whose set `value` is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<String>,
    /// jq expression giving the key whose value (or set's members, as a list) is put under `into`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get: Option<String>,
    /// jq expression whose every output is a key to look up: `into` becomes an object from each key that holds something to what it holds (a key that holds nothing is left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_all: Option<String>,
    /// jq expression giving the key from whose set `value` is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<String>,
    /// jq expression giving the key to forget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<String>,
    /// jq expression over the body giving the value that `set`, `add` and `remove` keep or take away (default: the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// jq expression naming the value within the set (`add`, `remove`), e.g. `.caseNumber`: adding a value under a name already there replaces it, and `remove` takes the named one away whatever it holds (default: the value itself names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// How long a value that is `set` or `add`ed lasts, e.g. `1100d` (default: until it is replaced, removed or deleted).
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub ttl: Option<Duration>,
    /// Key of the body object that `get` puts what it found under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
}

/// What a `cache` step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    Add,
    Get,
    GetAll,
    Remove,
    Delete,
}

impl Op {
    /// The option that names the operation.
    fn field(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::Add => "add",
            Op::Get => "get",
            Op::GetAll => "get_all",
            Op::Remove => "remove",
            Op::Delete => "delete",
        }
    }
}

impl CacheSpec {
    /// The one operation named, with its key program's source.
    fn op(&self) -> Result<(Op, &str), String> {
        let named: Vec<(Op, &str)> = [
            (Op::Set, &self.set),
            (Op::Add, &self.add),
            (Op::Get, &self.get),
            (Op::GetAll, &self.get_all),
            (Op::Remove, &self.remove),
            (Op::Delete, &self.delete),
        ]
        .into_iter()
        .filter_map(|(op, key)| key.as_deref().map(|k| (op, k)))
        .collect();
        match named.as_slice() {
            [one] => Ok(*one),
            _ => Err(
                "a cache step names exactly one of `set`, `add`, `get`, `get_all`, `remove` and \
                 `delete`, \
                 with the jq expression giving its key"
                    .into(),
            ),
        }
    }

    fn shape(&self) -> Result<Op, String> {
        let (op, _) = self.op()?;
        if self.name.trim().is_empty() {
            return Err("`name` names the cache (shared by the routes that use it)".into());
        }
        match op {
            Op::Get | Op::GetAll if self.into.is_none() => Err(format!(
                "`{}` needs `into`: the key of the body that takes what was found",
                op.field()
            )),
            Op::Get | Op::GetAll | Op::Delete if self.value.is_some() || self.ttl.is_some() => {
                Err(format!(
                    "`value` and `ttl` belong to `set`, `add` and `remove`, not `{}`",
                    op.field()
                ))
            }
            Op::Set | Op::Add | Op::Remove | Op::Delete if self.into.is_some() => {
                Err("`into` belongs to `get` and `get_all`".into())
            }
            Op::Remove if self.ttl.is_some() => Err("`ttl` belongs to `set` and `add`".into()),
            Op::Set | Op::Get | Op::GetAll | Op::Delete if self.member.is_some() => {
                Err("`member` names a value in a set: it belongs to `add` and `remove`".into())
            }
            _ => Ok(op),
        }
    }
}

impl StepKind for CacheSpec {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        if let Err(e) = self.shape() {
            out.problem(
                at,
                e,
                Some("e.g. `{name: decisions, get: '\"person/\\(.personNumber)\"', into: decisions}`"),
            );
        }
    }

    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        if self.shape().is_err() {
            return;
        }
        if let Ok((op, key)) = self.op() {
            cx.jq(&format!("{at}.{}", op.field()), key);
        }
        if let Some(value) = &self.value {
            cx.jq(&format!("{at}.value"), value);
        }
        if let Some(member) = &self.member {
            cx.jq(&format!("{at}.member"), member);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn Step>, BuildError> {
        Ok(Box::new(Cache::new(self).map_err(|e| build_error(at, e))?))
    }
}

/// The `cache` step.
pub struct Cache {
    name: String,
    op: Op,
    key: Program,
    value: Option<Program>,
    member: Option<Program>,
    ttl: Option<Duration>,
    into: Option<String>,
}

impl Cache {
    /// Build; the expressions must compile and exactly one operation be named.
    pub fn new(spec: &CacheSpec) -> Result<Self, String> {
        let op = spec.shape()?;
        let (_, key) = spec.op()?;
        Ok(Cache {
            name: spec.name.clone(),
            op,
            key: compile("key", key)?,
            value: spec
                .value
                .as_deref()
                .map(|v| compile("value", v))
                .transpose()?,
            member: spec
                .member
                .as_deref()
                .map(|v| compile("member", v))
                .transpose()?,
            ttl: spec.ttl,
            into: spec.into.clone(),
        })
    }
}

/// A set member's name: a hash of the value's JSON text (the value itself may be personal
/// data and stays out of the key).
fn member_of(text: &str) -> String {
    sha256_hex(text)
}

/// The SHA-256 of `text` in lower-case hex: a store key that never shows what it stands for.
pub(crate) fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a key holds, from its rows: a value that was `set`, the list of a set's members,
/// or null.
pub(crate) fn held(rows: &[(String, String)]) -> Result<Value, StepError> {
    let parse = |text: &str| {
        serde_json::from_str::<Value>(text)
            .map_err(|e| StepError::permanent(format!("cache: a stored value: {e}")))
    };
    Ok(match rows {
        [] => Value::Null,
        [(member, text)] if member.is_empty() => parse(text)?,
        many => Value::Array(
            many.iter()
                .map(|(_, text)| parse(text))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn store_error(e: impl std::fmt::Display) -> StepError {
    StepError::transient(format!("cache: state store: {e}"))
}

#[async_trait]
impl Step for Cache {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let (keys, value, named) = {
            let body = m.json_body()?;
            let mut keys: Vec<String> = match self.op {
                Op::Get => vec![value_to_string(&eval_one(
                    &self.key,
                    "cache key",
                    &body,
                    &m,
                )?)],
                _ => self
                    .key
                    .run(&body, &super::vars(&m))
                    .map_err(|e| StepError::permanent(format!("cache key: {e}")))?
                    .iter()
                    .map(value_to_string)
                    .collect(),
            };
            if self.op == Op::GetAll {
                keys.sort();
                keys.dedup();
            }
            if keys.iter().any(String::is_empty) {
                return Err(StepError::permanent(
                    "cache: the key expression gave an empty key",
                ));
            }
            let value = match (&self.value, self.op) {
                (_, Op::Get | Op::GetAll | Op::Delete) => None,
                (Some(p), _) => Some(eval_one(p, "cache value", &body, &m)?),
                (None, _) => Some(body.as_ref().clone()),
            };
            let named = match &self.member {
                Some(p) => Some(value_to_string(&eval_one(p, "cache member", &body, &m)?))
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        StepError::permanent("cache: the member expression gave an empty name")
                    })
                    .map(Some)?,
                None => None,
            };
            (keys, value, named)
        };
        let store = &cx.store;
        let text = value
            .map(|v| serde_json::to_string(&v))
            .transpose()
            .map_err(|e| StepError::permanent(format!("cache: value: {e}")))?;
        match (self.op, text) {
            (Op::Get | Op::GetAll, _) => {
                let found = if self.op == Op::Get {
                    let key = keys.first().map(String::as_str).unwrap_or_default();
                    held(
                        &store
                            .cache_get(&self.name, key)
                            .await
                            .map_err(store_error)?,
                    )?
                } else {
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    let mut all = serde_json::Map::new();
                    for (key, rows) in store
                        .cache_get_keys(&self.name, &keys)
                        .await
                        .map_err(store_error)?
                    {
                        all.insert(key, held(&rows)?);
                    }
                    Value::Object(all)
                };
                let into = self.into.as_deref().unwrap_or("cached");
                let mut body = m.json_body()?.into_owned();
                match &mut body {
                    Value::Object(map) => {
                        map.insert(into.to_string(), found);
                    }
                    _ => {
                        return Err(StepError::permanent(
                            "cache: `get` and `get_all` put what they found into the body, which must be a JSON object",
                        ));
                    }
                }
                m.body = Body::Json(body);
                m.content_type = JSON.to_string();
            }
            (Op::Set, Some(text)) => {
                // Every key in one transaction.
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                store
                    .cache_set_keys(&self.name, &keys, &text, self.ttl)
                    .await
                    .map_err(store_error)?;
            }
            (op, text) => {
                for key in &keys {
                    match (op, &text) {
                        (Op::Add, Some(text)) => {
                            let member = named.clone().unwrap_or_else(|| member_of(text));
                            store
                                .cache_add(&self.name, key, &member, text, self.ttl)
                                .await
                                .map_err(store_error)?
                        }
                        (Op::Remove, Some(text)) => {
                            let member = named.clone().unwrap_or_else(|| member_of(text));
                            store
                                .cache_delete(&self.name, key, Some(&member))
                                .await
                                .map_err(store_error)?
                        }
                        (Op::Delete, _) => store
                            .cache_delete(&self.name, key, None)
                            .await
                            .map_err(store_error)?,
                        _ => {}
                    }
                }
            }
        }
        Ok(vec![m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> CacheSpec {
        serde_saphyr::from_str(yaml).expect("a cache spec")
    }

    #[test]
    fn exactly_one_operation_with_its_own_keys() {
        assert_eq!(spec("{name: d, set: .k}").shape(), Ok(Op::Set));
        assert_eq!(spec("{name: d, get: .k, into: found}").shape(), Ok(Op::Get));
        assert_eq!(
            spec("{name: d, get_all: '.k[]', into: found}").shape(),
            Ok(Op::GetAll)
        );
        for (bad, says) in [
            ("{name: d}", "exactly one of"),
            ("{name: d, set: .k, get: .k}", "exactly one of"),
            ("{name: d, get: .k}", "needs `into`"),
            ("{name: d, get_all: .k}", "`get_all` needs `into`"),
            (
                "{name: d, get_all: .k, into: f, member: .id}",
                "`member` names a value",
            ),
            ("{name: d, get: .k, into: f, value: .}", "belong to `set`"),
            ("{name: d, add: .k, into: f}", "`into` belongs to `get`"),
            ("{name: d, remove: .k, ttl: 1d}", "`ttl` belongs"),
            ("{name: d, set: .k, member: .id}", "`member` names a value"),
            ("{name: ' ', set: .k}", "`name`"),
        ] {
            let err = spec(bad).shape().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_member_is_named_by_a_hash_of_its_value() {
        let m = member_of(r#"{"caseNumber":"1"}"#);
        assert_eq!(m.len(), 64);
        assert_eq!(m, member_of(r#"{"caseNumber":"1"}"#));
        assert_ne!(m, member_of(r#"{"caseNumber":"2"}"#));
    }
}
