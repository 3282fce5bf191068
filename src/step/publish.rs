//! `publish`: publish the message to an exchange; a list of targets is a recipient list.
//! Each published message has an id derived from the current one and the target, so a retry
//! republishes the same ids and consumers downstream can recognise the duplicate.
//!
//! A routing key may hold `{jq}` placeholders filled from the body
//! (`application.{.familyId}.submitted`): a dynamic router on a topic exchange. A key the
//! message cannot fill (a placeholder gives nothing or null) is a permanent failure, and a
//! filled key no route binds is refused by the broker (`Unroutable`) — never dropped.
//!
//! With `with`, what is published is a jq program's output over the body (an event made of
//! the message: `with: '{kind, errandId, recipients}'`), its key filled from that output,
//! and the message goes on unchanged.
//!
//! An exchange of an outlet (`outlets/<name>.yaml`: a queue a system outside Knutpunkt reads)
//! gets the message in the outlet's format: XML in its encoding, say (see [`crate::outlet`]).

use async_trait::async_trait;

use super::{Context, Step, StepError, vars};
use crate::core::envelope::Envelope;
use crate::expr::interpolate::{Interpolated, Part};
use crate::outlet::Outlet;

use super::BuildError;
use super::kind::{CheckCx, Edges, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `publish`: one target or a list (recipient list).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PublishSpec {
    /// One target.
    One(PublishTarget),
    /// Several targets: a recipient list.
    Many(Vec<PublishTarget>),
}

impl PublishSpec {
    /// All targets.
    pub fn targets(&self) -> &[PublishTarget] {
        match self {
            PublishSpec::One(t) => std::slice::from_ref(t),
            PublishSpec::Many(v) => v,
        }
    }
}

/// Where `publish` sends a message.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishTarget {
    /// A topic exchange (declared durable).
    pub exchange: String,
    /// Routing key. `{jq}` placeholders are filled from the body (a dynamic router), e.g.
    /// `application.{.familyId}.submitted`; a placeholder that gives nothing is a permanent
    /// failure, and a key no route binds is refused by the broker.
    pub key: String,
    /// jq program over the body giving the message to publish (JSON); its key's
    /// placeholders are filled from it, and the message goes on unchanged. Default: the
    /// message as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
}

impl StepKind for PublishSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        let many = matches!(self, PublishSpec::Many(_));
        for (j, t) in self.targets().iter().enumerate() {
            let target = if many {
                format!("{at}[{j}]")
            } else {
                at.to_string()
            };
            cx.publish(&target, &t.exchange, &t.key);
            if let Some(with) = &t.with {
                cx.jq(&format!("{target}.with"), with);
            }
        }
    }

    fn edges(&self, g: &mut dyn Edges) {
        for t in self.targets() {
            g.exchange(&t.exchange, &t.key);
        }
    }

    fn build(&self, at: &str, res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        let mut step = Publish::new(self, at).map_err(|e| build_error(at, e))?;
        for t in &mut step.targets {
            t.outlet = res.outlets.by_exchange(&t.exchange).cloned();
        }
        Ok(Box::new(step))
    }
}

/// One target, its key compiled.
struct Target {
    exchange: String,
    /// The key as written (names the derived message id, so ids stay stable).
    key: String,
    template: Option<Interpolated>,
    /// What is published instead of the body.
    with: Option<crate::expr::Program>,
    /// The outlet owning the exchange: the message is written in its format.
    outlet: Option<Outlet>,
}

/// The `publish` step.
pub struct Publish {
    targets: Vec<Target>,
    path: String,
}

/// The key of a publish target as `knut check` sees it: literal text, each placeholder
/// replaced by [`crate::broker::topic::ANY_WORD`].
pub fn key_shape(key: &str) -> Result<String, String> {
    let t = Interpolated::parse(key, &format!("key `{key}`"))?;
    Ok(t.parts()
        .iter()
        .map(|p| match p {
            Part::Lit(s) => s.clone(),
            Part::Jq(_) => crate::broker::topic::ANY_WORD.to_string(),
        })
        .collect())
}

impl Publish {
    /// Build from the route file's options; every key placeholder must compile.
    pub fn new(spec: &PublishSpec, path: &str) -> Result<Self, String> {
        let targets = spec
            .targets()
            .iter()
            .map(|t: &PublishTarget| {
                let template = Interpolated::parse(&t.key, &format!("key `{}`", t.key))?;
                Ok(Target {
                    exchange: t.exchange.clone(),
                    key: t.key.clone(),
                    template: template.has_placeholders().then_some(template),
                    with: t
                        .with
                        .as_deref()
                        .map(|w| super::compile("with", w))
                        .transpose()?,
                    outlet: None,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Publish {
            targets,
            path: path.to_string(),
        })
    }
}

#[async_trait]
impl Step for Publish {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        for t in &self.targets {
            if let Some(with) = &t.with {
                let made = {
                    let body = m.json_body()?;
                    super::eval_one(with, "publish with", &body, &m)?
                };
                let key = match &t.template {
                    None => t.key.clone(),
                    Some(template) => template
                        .fill(&made, &vars(&m), str::to_string)
                        .map_err(|e| StepError::permanent(format!("publish key: {e}")))?,
                };
                let mut out = m.derive(
                    &format!("{}/{}/{}", self.path, t.exchange, t.key),
                    crate::core::envelope::Body::Json(made),
                    crate::core::envelope::JSON.to_string(),
                );
                // With traces on, the consuming route's span is a child of this step's.
                crate::telemetry::otel::inject(&mut out.headers);
                let out = match &t.outlet {
                    Some(outlet) => outlet.encode(&out).map_err(StepError::permanent)?,
                    None => out,
                };
                cx.effects.publish(&t.exchange, &key, &out).await?;
                continue;
            }
            let key = match &t.template {
                None => t.key.clone(),
                Some(template) => {
                    let body = m.json_body()?;
                    template
                        .fill(&body, &vars(&m), str::to_string)
                        .map_err(|e| StepError::permanent(format!("publish key: {e}")))?
                }
            };
            // The body moves into the published message and back: publishing only reads
            // it, so a parsed JSON body is never copied.
            let body = std::mem::take(&mut m.body);
            let mut out = m.derive(
                &format!("{}/{}/{}", self.path, t.exchange, t.key),
                body,
                m.content_type.clone(),
            );
            crate::telemetry::otel::inject(&mut out.headers);
            if let Some(outlet) = &t.outlet {
                // The outlet's copy is written apart; the message keeps its body.
                let written = outlet.encode(&out).map_err(StepError::permanent);
                m.body = out.body;
                cx.effects.publish(&t.exchange, &key, &written?).await?;
                continue;
            }
            let published = cx.effects.publish(&t.exchange, &key, &out).await;
            m.body = out.body;
            published?;
        }
        Ok(vec![m])
    }
}
