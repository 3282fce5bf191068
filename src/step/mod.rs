//! Steps: the Enterprise Integration Patterns a route is made of, one module per kind.
//!
//! A step takes one message and gives zero (filtered, aggregated), one or many (split)
//! messages. Steps with side effects reach the outside world only through [`Effects`], so
//! the same route runs in `knut run` (real broker, real adapters) and in `knut test`
//! (recorded publishes, mocked adapter responses).

pub mod aggregate;
pub mod choice;
pub mod csv_to_json;
pub mod enrich;
pub mod excel_to_json;
pub mod filter;
pub mod fixed_to_json;
pub mod idempotent;
pub mod json_to_xml;
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
use serde_json::Value;

pub use crate::core::effects::{AdapterResponse, Effects};
pub use crate::core::error::{Failure, FailureKind, StepError};
pub use crate::core::value_to_string;

use crate::core::envelope::Envelope;
use crate::expr::{Program, Vars};
use crate::resources::Resources;
use crate::route::model::StepSpec;
use crate::store::Store;

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
                let out = placed.step.apply(m, cx).await;
                crate::telemetry::metrics::step_duration(&cx.route, placed.kind, t.elapsed());
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

/// Build one step from its spec.
pub fn build(spec: &StepSpec, path: &str, res: &Resources) -> Result<Box<dyn Step>, BuildError> {
    let err = |message: String| BuildError {
        path: path.to_string(),
        message,
    };
    Ok(match spec {
        StepSpec::XmlToJson(s) => Box::new(xml_to_json::XmlToJson::new(s)),
        StepSpec::JsonToXml(s) => Box::new(json_to_xml::JsonToXml::new(s)),
        StepSpec::CsvToJson(s) => Box::new(csv_to_json::CsvToJson::new(s).map_err(err)?),
        StepSpec::ExcelToJson(s) => Box::new(excel_to_json::ExcelToJson::new(s).map_err(err)?),
        StepSpec::FixedToJson(s) => Box::new(fixed_to_json::FixedToJson::new(s).map_err(err)?),
        StepSpec::Validate(s) => Box::new(validate::Validate::new(s, res).map_err(err)?),
        StepSpec::Transform(s) => Box::new(transform::Transform::new(s, res).map_err(err)?),
        StepSpec::Set(s) => Box::new(set::Set::new(s).map_err(err)?),
        StepSpec::Choice(s) => Box::new(choice::Choice::new(s, path, res)?),
        StepSpec::Filter(s) => Box::new(filter::Filter::new(s).map_err(err)?),
        StepSpec::Split(s) => Box::new(split::Split::new(s, path).map_err(err)?),
        StepSpec::Aggregate(s) => Box::new(aggregate::Aggregate::new(s, path).map_err(err)?),
        StepSpec::Enrich(s) => Box::new(enrich::Enrich::new(s)),
        StepSpec::ScatterGather(s) => Box::new(scatter_gather::ScatterGather::new(s).map_err(err)?),
        StepSpec::To(s) => Box::new(to::To::new(s).map_err(err)?),
        StepSpec::Publish(s) => Box::new(publish::Publish::new(s, path).map_err(err)?),
        StepSpec::Idempotent(s) => Box::new(idempotent::Idempotent::new(s).map_err(err)?),
        StepSpec::Log(s) => Box::new(log::Log::new(s).map_err(err)?),
        StepSpec::Reply(s) => Box::new(reply::Reply::new(s)),
        StepSpec::VerifySignature(s) => {
            Box::new(verify_signature::VerifySignature::new(s, &res.root).map_err(err)?)
        }
    })
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
