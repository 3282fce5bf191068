//! Steps: the Enterprise Integration Patterns a route is made of, one module per kind.
//!
//! A step takes one message and gives zero (filtered, aggregated), one or many (split)
//! messages. Steps with side effects reach the outside world only through [`Effects`], so
//! the same route runs in `knut run` (real broker, real adapters) and in `knut test`
//! (recorded publishes, mocked adapter responses).

pub mod aggregate;
pub mod audit;
pub mod audit_lookup;
pub mod cache;
pub mod call;
pub mod choice;
pub mod claim_check;
pub mod csv_to_json;
pub mod enrich;
pub mod excel_to_json;
pub mod expire;
pub mod filter;
pub mod fixed_to_json;
pub mod idempotent;
pub mod include;
pub mod json_to_xml;
pub mod kind;
pub mod log;
pub mod publish;
pub mod reply;
pub mod scatter_gather;
pub mod set;
pub mod split;
pub mod to;
pub mod transform;
pub mod validate;
pub mod verify_signature;
pub mod xml_to_json;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::FutureExt as _;
use serde_json::Value;
use tracing::Instrument as _;

pub use crate::core::effects::{AdapterResponse, Effects};
pub use crate::core::error::{Failure, FailureKind, StepError};
pub use crate::core::value_to_string;

use crate::core::envelope::Envelope;
use crate::expr::{Program, Vars};
use crate::resources::Resources;
use crate::store::Store;
use crate::telemetry::otel;

/// What a step runs with.
#[derive(Clone)]
pub struct Context {
    /// The route id.
    pub route: Arc<str>,
    /// Side effects.
    pub effects: Arc<dyn Effects>,
    /// The state store.
    pub store: Store,
}

/// One step kind's behaviour.
#[async_trait]
pub trait Step: Send + Sync {
    /// Process one message into zero, one or many.
    async fn apply(&self, message: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError>;
}

/// A step and where it stands in its route.
struct Placed {
    path: String,
    kind: &'static str,
    step: Box<dyn Step>,
}

/// A sequence of steps.
#[derive(Default)]
pub struct Pipeline {
    steps: Vec<Placed>,
}

/// Why a route's steps could not be built. The loader's `check` reports these with positions
/// first; this is the last line of defence.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct BuildError {
    /// The step's path.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Pipeline {
    /// Build the steps at `base` (e.g. `steps`, `steps[1].choice.when[0].steps`).
    pub fn build(specs: &[StepSpec], base: &str, res: &Resources) -> Result<Pipeline, BuildError> {
        // The steps' jq programs read the root's settings as `$settings`.
        crate::expr::with_settings(res.settings.clone(), || Self::build_steps(specs, base, res))
    }

    fn build_steps(
        specs: &[StepSpec],
        base: &str,
        res: &Resources,
    ) -> Result<Pipeline, BuildError> {
        let mut steps = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let path = format!("{base}[{i}].{}", spec.kind());
            let step = build(spec, &path, res)?;
            steps.push(Placed {
                path,
                kind: spec.kind(),
                step,
            });
        }
        Ok(Pipeline { steps })
    }

    /// Number of top-level steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True without steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Run a message through every step.
    pub async fn run(&self, message: Envelope, cx: &Context) -> Result<Vec<Envelope>, Failure> {
        self.run_from(0, message, cx).await
    }

    /// Run a message through the steps from index `start` on (a completed aggregate resumes
    /// after its step).
    pub async fn run_from(
        &self,
        start: usize,
        message: Envelope,
        cx: &Context,
    ) -> Result<Vec<Envelope>, Failure> {
        let mut current = vec![message];
        for placed in self.steps.iter().skip(start) {
            let mut next = Vec::with_capacity(current.len());
            for m in current {
                let t = Instant::now();
                let (message_id, correlation_id) = (m.id, m.correlation_id);
                // With traces on, a span per step (a no-op span otherwise).
                let span = otel::step_span(&cx.route, &placed.path, placed.kind);
                // A step that panics fails the message permanently (dead-lettered with the
                // reason) instead of dropping the delivery to be redelivered for ever. The
                // panic's own text is left out: it may quote the message.
                let out = match std::panic::AssertUnwindSafe(
                    // An adapter call the step makes is journaled under its path.
                    crate::core::effects::in_step(&placed.path, placed.step.apply(m, cx)),
                )
                .catch_unwind()
                .instrument(span.clone())
                .await
                {
                    Ok(out) => out,
                    Err(_) => Err(StepError::permanent(format!(
                        "the {} step panicked (a fault in knut, not in the message's system; \
                         the log has where)",
                        placed.kind
                    ))),
                };
                crate::telemetry::metrics::step_duration(&cx.route, placed.kind, t.elapsed());
                otel::step_outcome(
                    &span,
                    match &out {
                        Ok(v) if v.is_empty() => "stopped",
                        Ok(_) => "ok",
                        Err(e) if e.kind == FailureKind::Transient => "transient",
                        Err(_) => "permanent",
                    },
                    out.is_err(),
                );
                journal_step(cx, &placed.path, message_id, correlation_id, &out, t);
                match out {
                    Ok(mut v) => next.append(&mut v),
                    Err(error) => {
                        return Err(Failure {
                            step: placed.path.clone(),
                            error,
                        });
                    }
                }
            }
            if next.is_empty() {
                return Ok(next);
            }
            current = next;
        }
        Ok(current)
    }

    /// The index of the top-level step at `path`, if any.
    pub fn index_of(&self, path: &str) -> Option<usize> {
        self.steps.iter().position(|p| p.path == path)
    }
}

/// The message journal's row of one step: its outcome (`ok`, `stopped` when no message came
/// out, `failed` with the error kind), duration, and the business keys of what it gave.
fn journal_step(
    cx: &Context,
    path: &str,
    message_id: uuid::Uuid,
    correlation_id: uuid::Uuid,
    out: &Result<Vec<Envelope>, StepError>,
    started: Instant,
) {
    let (outcome, detail) = match out {
        Ok(v) if v.is_empty() => ("stopped", None),
        Ok(v) if v.len() == 1 => ("ok", None),
        Ok(v) => ("ok", Some(format!("{} messages", v.len()))),
        Err(e) if e.kind == FailureKind::Transient => ("failed", Some("transient".to_string())),
        Err(_) => ("failed", Some("permanent".to_string())),
    };
    cx.effects.hop(crate::core::effects::Hop {
        message_id,
        correlation_id,
        keys_of: out.as_ref().ok().and_then(|v| v.first()),
        step: path,
        outcome,
        took: started.elapsed(),
        detail,
    });
}

/// The step kinds: one line each, its name in route files, its spec (the options, whose doc
/// comments are the reference) and, through the spec's [`kind::StepKind`], its checks, graph
/// edges and build. Adding a kind is a module of its own and one line here.
macro_rules! step_kinds {
    ($($(#[doc = $doc:literal])* $name:literal => $variant:ident($spec:ty),)*) => {
        /// One step. Exactly one key, naming the step kind (an Enterprise Integration Pattern).
        #[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub enum StepSpec {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant($spec),)*
        }

        impl StepSpec {
            /// Every step kind's name, in the registry's order.
            pub const KINDS: &'static [&'static str] = &[$($name),*];

            /// The step kind's name as written in route files.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(StepSpec::$variant(_) => $name,)*
                }
            }

            /// The kind's behaviour around this spec: checks, edges, build.
            pub fn behaviour(&self) -> &dyn kind::StepKind {
                match self {
                    $(StepSpec::$variant(s) => s,)*
                }
            }
        }
    };
}

step_kinds! {
    /// Parse an XML body into JSON (see docs/routes.md, XML ↔ JSON).
    "xml_to_json" => XmlToJson(xml_to_json::XmlToJsonSpec),
    /// Serialise a JSON body as XML.
    "json_to_xml" => JsonToXml(json_to_xml::JsonToXmlSpec),
    /// Read a CSV body (`;`, Windows-1252 by default) into a JSON array of rows.
    "csv_to_json" => CsvToJson(crate::codec::CsvOptions),
    /// Read an Excel workbook's sheet (.xlsx, .xls) into a JSON array of rows.
    "excel_to_json" => ExcelToJson(crate::codec::ExcelOptions),
    /// Read fixed-width text (Windows-1252 by default) into a JSON array of rows.
    "fixed_to_json" => FixedToJson(crate::codec::FixedOptions),
    /// Validate the JSON body against a schema; failure is permanent (dead letter).
    "validate" => Validate(validate::ValidateSpec),
    /// Replace the body: a jq program or a Tera template.
    "transform" => Transform(transform::TransformSpec),
    /// Set headers from jq expressions over the body.
    "set" => Set(set::SetSpec),
    /// Content-based router: the first `when` whose predicate holds runs its steps; else `otherwise`.
    "choice" => Choice(choice::ChoiceSpec),
    /// Message filter: messages for which the predicate is not true stop here.
    "filter" => Filter(filter::FilterSpec),
    /// Message expiration: a message whose time (from the body) is more than `after` past
    /// stops here.
    "expire" => Expire(expire::ExpireSpec),
    /// Splitter: one message per output of a jq program.
    "split" => Split(split::SplitSpec),
    /// Aggregator: collect correlated messages into one.
    "aggregate" => Aggregate(aggregate::AggregateSpec),
    /// Content enricher: call an adapter operation (a read) and keep its answer under a key.
    "enrich" => Enrich(enrich::EnrichSpec),
    /// Call an adapter operation that changes something (a write) and keep its answer under
    /// a key, e.g. the id of what it created.
    "call" => Call(call::CallSpec),
    /// Scatter-gather: call several adapter operations at once (reads) and gather their
    /// answers; a source that fails or is late is named under `missing`.
    "scatter_gather" => ScatterGather(scatter_gather::ScatterGatherSpec),
    /// Send to an adapter operation or a built-in endpoint (a side effect).
    "to" => To(to::ToSpec),
    /// Publish to an exchange; a list is a recipient list.
    "publish" => Publish(publish::PublishSpec),
    /// Idempotent consumer: stop messages whose key was already processed.
    "idempotent" => Idempotent(idempotent::IdempotentSpec),
    /// Keep values under a key in a named cache of the state store (`set`, `add` to a set,
    /// `remove`, `delete`), or `get` what a key holds into the body.
    "cache" => Cache(cache::CacheSpec),
    /// Claim check with single-use tickets: `issue` keeps a value in the state store and
    /// gives an unguessable token for it; `redeem` says whether a presented token is good
    /// and uses it up, once under any concurrency.
    "claim_check" => ClaimCheck(claim_check::ClaimCheckSpec),
    /// Append one row to the access audit (who, on whose behalf, what, which right,
    /// allowed or not; the people hashed) before the message goes on unchanged.
    "audit" => Audit(audit::AuditSpec),
    /// Look up the access audit: for each question (who, on whose behalf, what, which
    /// resources) how many allowed rows it holds and the newest one's time.
    "audit_lookup" => AuditLookup(audit_lookup::AuditLookupSpec),
    /// Write a log line (personnummer are masked).
    "log" => Log(log::LogSpec),
    /// Answer the synchronous HTTP request that started this message.
    "reply" => Reply(reply::ReplySpec),
    /// The steps of a shared fragment (`fragments/<name>.yaml`), run in place.
    "include" => Include(include::IncludeSpec),
    /// Verify a JWS with a detached payload (RFC 7515 appendix F) over a text of the
    /// message against trusted public keys; an unsigned message, a signature that does not
    /// verify or the wrong signer is permanent (dead letter).
    "verify_signature" => VerifySignature(verify_signature::VerifySignatureSpec),
}

/// Build one step from its spec.
pub fn build(spec: &StepSpec, path: &str, res: &Resources) -> Result<Box<dyn Step>, BuildError> {
    spec.behaviour().build(path, res)
}

/// Every step of `steps` (at `base`, e.g. `steps`) with its path (`steps[1]`,
/// `steps[2].choice.when[0].steps[0]`, `steps[2].choice.otherwise[1]`), in file order,
/// branches included.
pub fn with_paths<'a>(steps: &'a [StepSpec], base: &str) -> Vec<(String, &'a StepSpec)> {
    fn walk<'a>(base: &str, steps: &'a [StepSpec], out: &mut Vec<(String, &'a StepSpec)>) {
        for (i, step) in steps.iter().enumerate() {
            let path = format!("{base}[{i}]");
            out.push((path.clone(), step));
            let at = format!("{path}.{}", step.kind());
            for (rel, branch) in step.behaviour().branches() {
                walk(&format!("{at}.{rel}"), branch, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(base, steps, &mut out);
    out
}

/// `with:` of a step that calls an adapter operation (`enrich`, `call`, `to`): a jq program
/// over the message whose output is the operation's input — its path placeholders, query
/// and body read that — so nothing is staged in the message for it. Without `with:` the
/// operation gets the message as it is.
pub struct With(Option<Program>);

impl With {
    /// Compile `with:` (field `with`).
    pub fn new(program: Option<&str>) -> Result<With, String> {
        program.map(|p| compile("with", p)).transpose().map(With)
    }

    /// The message the operation gets: `m` itself, or a copy (same ids and headers) whose
    /// body is the `with:` program's output.
    pub fn input<'a>(&self, m: &'a Envelope) -> Result<std::borrow::Cow<'a, Envelope>, StepError> {
        let Some(program) = &self.0 else {
            return Ok(std::borrow::Cow::Borrowed(m));
        };
        let body = m.json_body()?;
        let value = eval_one(program, "with", &body, m)?;
        Ok(std::borrow::Cow::Owned(m.with_body(
            crate::core::envelope::Body::Json(value),
            crate::core::envelope::JSON,
        )))
    }
}

/// Compile a jq program of a step, naming the field on error.
pub(crate) fn compile(field: &str, src: &str) -> Result<Program, String> {
    Program::compile(src).map_err(|e| format!("{field}: {e}"))
}

/// `$headers` for jq programs.
pub(crate) fn vars(message: &Envelope) -> Vars {
    Vars::of(message)
}

/// Run a jq program for one value; no output is a permanent error.
pub(crate) fn eval_one(
    program: &Program,
    what: &str,
    input: &Value,
    message: &Envelope,
) -> Result<Value, StepError> {
    one_output(what, program.first(input, &vars(message)))
}

/// [`eval_one`] on a value that is not needed afterwards (see [`Program::first_owned`]).
pub(crate) fn eval_one_owned(
    program: &Program,
    what: &str,
    input: Value,
    message: &Envelope,
) -> Result<Value, StepError> {
    one_output(what, program.first_owned(input, &vars(message)))
}

fn one_output(
    what: &str,
    first: Result<Option<Value>, crate::expr::ExprError>,
) -> Result<Value, StepError> {
    first
        .map_err(|e| StepError::permanent(format!("{what}: {e}")))?
        .ok_or_else(|| StepError::permanent(format!("{what}: the jq program gave no output")))
}

/// For the steps' unit tests: effects that go nowhere (publishes, files and replies
/// vanish; every adapter call fails), and a context over them.
#[cfg(test)]
pub(crate) mod test_effects {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::{Context, StepError};
    use crate::core::effects::{AdapterResponse, Effects};
    use crate::core::envelope::Envelope;
    use crate::store::Store;

    /// Effects that go nowhere.
    pub(crate) struct Nothing;

    #[async_trait]
    impl Effects for Nothing {
        async fn publish(&self, _: &str, _: &str, _: &Envelope) -> Result<(), StepError> {
            Ok(())
        }
        async fn call(&self, a: &str, o: &str, _: &Envelope) -> Result<AdapterResponse, StepError> {
            Err(StepError::permanent(format!("no {a}.{o} here")))
        }
        async fn write_file(&self, _: &str, _: &str, _: bytes::Bytes) -> Result<(), StepError> {
            Ok(())
        }
        async fn reply(&self, _: &str, _: &Envelope) -> Result<(), StepError> {
            Ok(())
        }
    }

    /// A context of route `route` over [`Nothing`] and `store`.
    pub(crate) fn context(route: &str, store: Store) -> Context {
        Context {
            route: Arc::from(route),
            effects: Arc::new(Nothing),
            store,
        }
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;

    struct Panics;

    #[async_trait]
    impl Step for Panics {
        async fn apply(&self, _: Envelope, _: &Context) -> Result<Vec<Envelope>, StepError> {
            panic!("a bug that quotes 20130412-2383");
        }
    }

    /// A panicking step fails the message permanently, naming the step and never the
    /// panic's text, so the worker dead-letters it instead of dropping the delivery.
    #[tokio::test]
    async fn a_panicking_step_is_a_permanent_failure() {
        let pipeline = Pipeline {
            steps: vec![Placed {
                path: "steps[0].transform".into(),
                kind: "transform",
                step: Box::new(Panics),
            }],
        };
        let cx = test_effects::context("r", crate::store::Store::memory().await.expect("a store"));
        let failure = pipeline
            .run(Envelope::json(serde_json::json!({})), &cx)
            .await
            .expect_err("the panic is a failure");
        assert_eq!(failure.step, "steps[0].transform");
        assert_eq!(failure.error.kind, FailureKind::Permanent);
        assert!(
            failure.error.message.contains("panicked"),
            "{}",
            failure.error.message
        );
        assert!(
            !failure.error.message.contains("2383"),
            "{}",
            failure.error.message
        );
    }
}
