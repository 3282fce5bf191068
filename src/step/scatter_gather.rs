//! `scatter_gather`: the scatter-gather pattern for reads. The message is sent to several
//! adapter operations at once; their answers are gathered under `into` by source name, and
//! a source that fails or does not answer within its timeout is named under `missing` with
//! the reason instead of failing the message — a partial answer says what it lacks.
//!
//! ```yaml
//! - scatter_gather:
//!     into: sources
//!     timeout: 3s                    # per source, unless the source says otherwise
//!     sources:
//!       - { name: elevregister, adapter: elevregister, operation: list-unit-placements }
//!       - { name: ekonomi, adapter: datawarehouse, operation: resource-allocation, timeout: 2s }
//! ```
//! gives the body `{…, "sources": {"elevregister": …, "ekonomi": …}, "missing": []}`; when
//! the data warehouse is down, `"sources": {"elevregister": …}` and `"missing": [{"source":
//! "ekonomi", "reason": "datawarehouse.resource-allocation answered HTTP 503"}]`.
//!
//! Only for reads: every source is called again when the message is retried. A source
//! marked `required: true` fails the message (transient or permanent, as its call failed)
//! instead of being reported missing.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use serde_json::{Map, Value, json};

use super::{Context, Step, StepError};
use crate::core::envelope::{Body, Envelope, JSON};

use super::BuildError;
use super::kind::{CheckCx, Edges, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `scatter_gather`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScatterGatherSpec {
    /// Key of the body object the answers are stored under, by source name; the sources
    /// that did not answer are listed under `missing` as `{source, reason}`.
    pub into: String,
    /// How long each source may take (default 5s), unless it sets its own.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// The sources, called at the same time with the message.
    pub sources: Vec<GatherSource>,
}

/// One source of a `scatter_gather`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatherSource {
    /// The source's name: its answer's key, and how `missing` names it.
    pub name: String,
    /// Adapter name (a file `adapters/<name>.yaml`).
    pub adapter: String,
    /// Operation of the adapter (a read: it is called again when the message is retried).
    pub operation: String,
    /// jq program over the body giving the operation its input; without it the operation
    /// gets the message as it is.
    #[serde(default, rename = "with", skip_serializing_if = "Option::is_none")]
    pub with_input: Option<String>,
    /// How long this source may take.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// Without this source there is no answer: its failure fails the message (retried or
    /// dead-lettered as the call failed) instead of being listed as missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

impl StepKind for ScatterGatherSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        for (j, src) in self.sources.iter().enumerate() {
            cx.operation_with(
                &format!("{at}.sources[{j}]"),
                &src.adapter,
                &src.operation,
                src.with_input.as_deref(),
            );
        }
        if let Err(e) = ScatterGather::new(self) {
            cx.problem(at, e, None);
        }
    }

    fn edges(&self, g: &mut dyn Edges) {
        for src in &self.sources {
            g.adapter(&src.adapter, &src.operation);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(
            ScatterGather::new(self).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// Per-source timeout when neither the source nor the step names one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

struct Source {
    name: String,
    adapter: String,
    operation: String,
    with: super::With,
    timeout: Duration,
    required: bool,
}

/// The `scatter_gather` step.
pub struct ScatterGather {
    into: String,
    sources: Vec<Source>,
}

impl ScatterGather {
    /// Build from the route file's options: at least one source, names unique.
    pub fn new(spec: &ScatterGatherSpec) -> Result<Self, String> {
        if spec.sources.is_empty() {
            return Err("name at least one source".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &spec.sources {
            if !seen.insert(s.name.as_str()) {
                return Err(format!("two sources are named `{}`", s.name));
            }
        }
        if spec.into == "missing" {
            return Err(
                "`into` cannot be `missing`: that key lists the sources that did not answer".into(),
            );
        }
        let default = spec.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut sources = Vec::with_capacity(spec.sources.len());
        for s in &spec.sources {
            sources.push(Source {
                name: s.name.clone(),
                adapter: s.adapter.clone(),
                operation: s.operation.clone(),
                with: super::With::new(s.with_input.as_deref())?,
                timeout: s.timeout.unwrap_or(default),
                required: s.required,
            });
        }
        Ok(ScatterGather {
            into: spec.into.clone(),
            sources,
        })
    }
}

/// An answer's body as JSON (text as a string, nothing as null).
fn answer_json(body: Body) -> Value {
    match body {
        Body::Json(v) => v,
        Body::Bytes(b) if b.is_empty() => Value::Null,
        Body::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
    }
}

#[async_trait]
impl Step for ScatterGather {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let calls = self.sources.iter().map(|s| {
            let (m, effects) = (&m, cx.effects.clone());
            async move {
                let input = s.with.input(m)?;
                let call = effects.call(&s.adapter, &s.operation, &input);
                match tokio::time::timeout(s.timeout, call).await {
                    Ok(Ok(answer)) => Ok(answer_json(answer.body)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(StepError::transient(format!(
                        "{}.{} did not answer within {} ms",
                        s.adapter,
                        s.operation,
                        s.timeout.as_millis()
                    ))),
                }
            }
        });
        let answers = join_all(calls).await;
        let mut gathered = Map::new();
        let mut missing = Vec::new();
        for (s, answer) in self.sources.iter().zip(answers) {
            match answer {
                Ok(v) => {
                    gathered.insert(s.name.clone(), v);
                }
                Err(e) if s.required => {
                    return Err(StepError {
                        kind: e.kind,
                        message: format!(
                            "scatter_gather: required source `{}`: {}",
                            s.name, e.message
                        ),
                    });
                }
                Err(e) => {
                    tracing::info!(route = %cx.route, source = %s.name, reason = %e.message, correlation_id = %m.correlation_id, "a source is missing from the gathered answer");
                    missing.push(json!({"source": s.name, "reason": e.message}));
                }
            }
        }
        let mut body = m.take_json_body()?;
        let Value::Object(map) = &mut body else {
            return Err(StepError::permanent(format!(
                "scatter_gather needs a JSON object body to store `{}` in",
                self.into
            )));
        };
        map.insert(self.into.clone(), Value::Object(gathered));
        map.insert("missing".into(), Value::Array(missing));
        m.body = Body::Json(body);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{AdapterResponse, Effects};
    use bytes::Bytes;
    use std::sync::Arc;

    /// Sources by operation: `ok` answers, `down` fails transiently, `refuses` permanently,
    /// `slow` answers after a second.
    struct Systems;

    #[async_trait]
    impl Effects for Systems {
        async fn publish(&self, _: &str, _: &str, _: &Envelope) -> Result<(), StepError> {
            Ok(())
        }
        async fn call(
            &self,
            adapter: &str,
            operation: &str,
            e: &Envelope,
        ) -> Result<AdapterResponse, StepError> {
            let ok = |v: Value| {
                Ok(AdapterResponse {
                    status: 200,
                    content_type: JSON.into(),
                    body: Body::Json(v),
                })
            };
            match operation {
                "ok" => ok(json!({"from": adapter, "unit": e.json_body()?["unit"]})),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    ok(json!("late"))
                }
                "down" => Err(StepError::transient(format!(
                    "{adapter}.down answered HTTP 503"
                ))),
                _ => Err(StepError::permanent(format!(
                    "{adapter}.{operation} answered HTTP 404"
                ))),
            }
        }
        async fn write_file(&self, _: &str, _: &str, _: Bytes) -> Result<(), StepError> {
            Ok(())
        }
        async fn reply(&self, _: &str, _: &Envelope) -> Result<(), StepError> {
            Ok(())
        }
    }

    async fn cx() -> Context {
        Context {
            route: Arc::from("r"),
            effects: Arc::new(Systems),
            store: crate::store::Store::memory().await.unwrap(),
        }
    }

    fn source(name: &str, operation: &str, required: bool) -> GatherSource {
        GatherSource {
            name: name.into(),
            adapter: name.into(),
            operation: operation.into(),
            with_input: None,
            timeout: None,
            required,
        }
    }

    fn step(sources: Vec<GatherSource>) -> ScatterGather {
        ScatterGather::new(&ScatterGatherSpec {
            into: "sources".into(),
            timeout: Some(Duration::from_millis(200)),
            sources,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn answers_are_gathered_and_failures_named_missing() {
        let s = step(vec![
            source("a", "ok", false),
            source("b", "down", false),
            source("c", "slow", false),
            source("d", "refuses", false),
        ]);
        let started = std::time::Instant::now();
        let out = s
            .apply(Envelope::json(json!({"unit": "38120001"})), &cx().await)
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "sources are called at once"
        );
        let body = out[0].json_body().unwrap().into_owned();
        assert_eq!(
            body["sources"],
            json!({"a": {"from": "a", "unit": "38120001"}})
        );
        let missing: Vec<&str> = body["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["source"].as_str().unwrap())
            .collect();
        assert_eq!(missing, ["b", "c", "d"]);
        assert!(
            body["missing"][1]["reason"]
                .as_str()
                .unwrap()
                .contains("did not answer within 200 ms")
        );
        assert_eq!(body["unit"], "38120001");
    }

    #[tokio::test]
    async fn a_required_source_that_fails_fails_the_message_as_it_failed() {
        let down = step(vec![source("a", "ok", false), source("b", "down", true)]);
        let e = down
            .apply(Envelope::json(json!({})), &cx().await)
            .await
            .unwrap_err();
        assert_eq!(e.kind, crate::step::FailureKind::Transient);
        assert!(e.message.contains("required source `b`"), "{}", e.message);
        let refused = step(vec![source("d", "refuses", true)]);
        let e = refused
            .apply(Envelope::json(json!({})), &cx().await)
            .await
            .unwrap_err();
        assert_eq!(e.kind, crate::step::FailureKind::Permanent);
    }

    #[test]
    fn sources_must_be_named_once() {
        let spec = ScatterGatherSpec {
            into: "x".into(),
            timeout: None,
            sources: vec![source("a", "ok", false), source("a", "ok", false)],
        };
        assert!(ScatterGather::new(&spec).is_err());
        let empty = ScatterGatherSpec {
            into: "x".into(),
            timeout: None,
            sources: vec![],
        };
        assert!(ScatterGather::new(&empty).is_err());
    }
}
