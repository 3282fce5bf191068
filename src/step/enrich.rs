//! `enrich`: the content enricher. Calls an adapter operation that reads (a lookup) and
//! keeps its answer under a key of the body. `with:` gives the operation its input.
//!
//! With `each:` the operation is called once per output of a jq program (a composed
//! message processor: split, call, gather, in one step), at most `concurrency` calls at
//! once, and `into` gets the answers as a list in the order of the outputs. A failed call
//! fails the step, unless `missing` names a key: then its place holds null and the key
//! lists `{index, reason}` for each — for lookups where a partial answer is better than
//! none, said so in the message.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kind::{CheckCx, Edges, StepKind, build_error};
use super::{BuildError, Context, Step, StepError, With, compile, vars};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::expr::Program;
use crate::resources::Resources;
use futures::StreamExt;

/// Options of `enrich`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrichSpec {
    /// Adapter name (a file `adapters/<name>.yaml`).
    pub adapter: String,
    /// Operation of the adapter (a read: it is called again when the message is retried).
    pub operation: String,
    /// jq program over the body giving the operation its input (its path placeholders,
    /// query and body read it), e.g. `{personId: .guardian.id}`; without it the operation
    /// gets the message as it is.
    #[serde(default, rename = "with", skip_serializing_if = "Option::is_none")]
    pub with_input: Option<String>,
    /// Key of the body object the answer is stored under.
    pub into: String,
    /// jq program over the body whose outputs are the inputs of one call each (instead of
    /// `with`), e.g. `.cases[] | {flowInstanceID: .}`; `into` gets the answers as a list in
    /// that order (an empty list when there are none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<String>,
    /// With `each`: calls at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// With `each`: a key of the body listing the calls that failed, as `{index, reason}`
    /// (their answers are null). Without it a failed call fails the step (retried when
    /// transient, like any call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// `enrich` calls at once with `each` when `concurrency` is not given.
const EACH_CONCURRENCY: usize = 4;

impl StepKind for EnrichSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.operation_with(
            at,
            &self.adapter,
            &self.operation,
            self.with_input.as_deref(),
        );
        if let Some(each) = &self.each {
            cx.jq(&format!("{at}.each"), each);
        }
        if let Err(message) = self.each_rules() {
            cx.problem(at, message, None);
        }
    }

    fn edges(&self, g: &mut dyn Edges) {
        g.adapter(&self.adapter, &self.operation);
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn Step>, BuildError> {
        self.each_rules().map_err(|e| build_error(at, e))?;
        if let Some(each) = &self.each {
            return Ok(Box::new(EnrichEach {
                adapter: self.adapter.clone(),
                operation: self.operation.clone(),
                each: compile("each", each).map_err(|e| build_error(at, e))?,
                into: self.into.clone(),
                concurrency: self.concurrency.unwrap_or(EACH_CONCURRENCY),
                missing: self.missing.clone(),
            }));
        }
        Ok(Box::new(
            CallInto::new(
                "enrich",
                &self.adapter,
                &self.operation,
                self.with_input.as_deref(),
                &self.into,
            )
            .map_err(|e| build_error(at, e))?,
        ))
    }
}

impl EnrichSpec {
    /// `each` excludes `with`; `concurrency` and `missing` belong to `each`.
    fn each_rules(&self) -> Result<(), String> {
        match (&self.each, &self.with_input) {
            (Some(_), Some(_)) => Err(
                "`each` and `with` exclude each other: `each` gives every call its input".into(),
            ),
            (None, _) if self.concurrency.is_some() || self.missing.is_some() => {
                Err("`concurrency` and `missing` belong to `each`".into())
            }
            _ if self.concurrency == Some(0) => Err("`concurrency` must be at least 1".into()),
            _ => Ok(()),
        }
    }
}

/// `enrich` with `each`: one call per output, the answers gathered in order.
struct EnrichEach {
    adapter: String,
    operation: String,
    each: Program,
    into: String,
    concurrency: usize,
    missing: Option<String>,
}

#[async_trait]
impl Step for EnrichEach {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let mut body = m.json_body()?.into_owned();
        let inputs = self
            .each
            .run(&body, &vars(&m))
            .map_err(|e| StepError::permanent(format!("each: {e}")))?;
        let calls = inputs.into_iter().map(|input| {
            let message = m.with_body(Body::Json(input), JSON);
            async move {
                cx.effects
                    .call(&self.adapter, &self.operation, &message)
                    .await
                    .map(|r| answer_value(r.body))
            }
        });
        let results: Vec<Result<Value, StepError>> = futures::stream::iter(calls)
            .buffered(self.concurrency)
            .collect()
            .await;
        let mut answers = Vec::with_capacity(results.len());
        let mut missing = Vec::new();
        for (index, result) in results.into_iter().enumerate() {
            match (result, &self.missing) {
                (Ok(v), _) => answers.push(v),
                (Err(e), Some(_)) => {
                    answers.push(Value::Null);
                    missing.push(serde_json::json!({"index": index, "reason": e.message}));
                }
                (Err(e), None) => return Err(e),
            }
        }
        let Value::Object(map) = &mut body else {
            return Err(StepError::permanent(format!(
                "enrich needs a JSON object body to store `{}` in",
                self.into
            )));
        };
        map.insert(self.into.clone(), Value::Array(answers));
        if let Some(key) = &self.missing {
            map.insert(key.clone(), Value::Array(missing));
        }
        m.body = Body::Json(body);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}

/// An answer's body as a JSON value: JSON as it is, nothing as null, other bytes as text.
fn answer_value(body: Body) -> Value {
    match body {
        Body::Json(v) => v,
        Body::Bytes(b) if b.is_empty() => Value::Null,
        Body::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// Call an adapter operation with the message (or its `with:` input) and keep the answer
/// under a key of the body: `enrich` (a read) and `call` (a write) both run this.
pub struct CallInto {
    kind: &'static str,
    adapter: String,
    operation: String,
    with: With,
    into: String,
}

impl CallInto {
    /// Build; `with` must compile.
    pub fn new(
        kind: &'static str,
        adapter: &str,
        operation: &str,
        with: Option<&str>,
        into: &str,
    ) -> Result<Self, String> {
        Ok(CallInto {
            kind,
            adapter: adapter.to_string(),
            operation: operation.to_string(),
            with: With::new(with)?,
            into: into.to_string(),
        })
    }
}

#[async_trait]
impl Step for CallInto {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let response = {
            let input = self.with.input(&m)?;
            cx.effects
                .call(&self.adapter, &self.operation, &input)
                .await?
        };
        let result = answer_value(response.body);
        let mut body = m.json_body()?.into_owned();
        let Value::Object(map) = &mut body else {
            return Err(StepError::permanent(format!(
                "{} needs a JSON object body to store `{}` in",
                self.kind, self.into
            )));
        };
        map.insert(self.into.clone(), result);
        m.body = Body::Json(body);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}
