//! `to`: send the message to an adapter operation or write it to a file — a side effect.
//! The body goes on unchanged; an adapter's HTTP status is kept in `knut-response-status`.

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, eval_one, value_to_string};
use crate::core::envelope::{Envelope, is_json_type, is_xml_type};
use crate::expr::Program;

use super::BuildError;
use super::kind::{CheckCx, Edges, Problems, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `to`: an adapter operation, or a built-in endpoint (`file`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToSpec {
    /// Adapter name (a file `adapters/<name>.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Operation of the adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// jq program over the body giving the operation its input (its path placeholders,
    /// query and body read it); without it the operation gets the message as it is. The
    /// message goes on unchanged either way.
    #[serde(default, rename = "with", skip_serializing_if = "Option::is_none")]
    pub with_input: Option<String>,
    /// Write the body to a file (atomically: a temporary file renamed into place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTo>,
}

/// A file written by `to`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTo {
    /// The folder (relative to the root); created when missing.
    pub dir: String,
    /// jq expression giving the file name (default: `<message id>.json` or `.xml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl StepKind for ToSpec {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        let adapter = self.adapter.is_some() || self.operation.is_some();
        let both = self.adapter.is_some() && self.operation.is_some();
        if (adapter && self.file.is_some()) || (!both && self.file.is_none()) {
            out.problem(
                at,
                "`to` needs either `adapter` with `operation`, or `file`".into(),
                Some("`{adapter: <name>, operation: <name>}` or `{file: {dir: <folder>}}`"),
            );
        }
        if self.with_input.is_some() && self.file.is_some() {
            out.problem(
                &format!("{at}.with"),
                "`with` gives an adapter operation its input; a file gets the message".into(),
                Some("`with` together with `adapter` and `operation`"),
            );
        }
    }

    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        if let (Some(a), Some(o)) = (&self.adapter, &self.operation) {
            cx.adapter(at, "operation", a, o);
        }
        if let Some(with) = &self.with_input {
            cx.jq(&format!("{at}.with"), with);
        }
        if let Some(name) = self.file.as_ref().and_then(|f| f.name.as_ref()) {
            cx.jq(&format!("{at}.file.name"), name);
        }
    }

    fn edges(&self, g: &mut dyn Edges) {
        if let (Some(adapter), Some(op)) = (&self.adapter, &self.operation) {
            g.adapter(adapter, op);
        }
        if let Some(f) = &self.file {
            g.folder(&f.dir);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(To::new(self).map_err(|e| build_error(at, e))?))
    }
}

/// Header holding the status of the last adapter call.
pub const RESPONSE_STATUS: &str = "knut-response-status";

/// The `to` step.
pub enum To {
    /// Call an adapter operation.
    Adapter {
        /// Adapter name.
        adapter: String,
        /// Operation name.
        operation: String,
        /// The operation's input.
        with: super::With,
    },
    /// Write a file.
    File {
        /// Folder relative to the root.
        dir: String,
        /// jq program naming the file.
        name: Option<Program>,
    },
}

impl To {
    /// Build: adapter + operation, or file.
    pub fn new(spec: &ToSpec) -> Result<Self, String> {
        match (&spec.adapter, &spec.operation, &spec.file) {
            (Some(a), Some(o), None) => Ok(To::Adapter {
                adapter: a.clone(),
                operation: o.clone(),
                with: super::With::new(spec.with_input.as_deref())?,
            }),
            (None, None, Some(f)) => Ok(To::File {
                dir: f.dir.clone(),
                name: f
                    .name
                    .as_deref()
                    .map(|n| compile("file.name", n))
                    .transpose()?,
            }),
            _ => Err("write either `adapter` and `operation`, or `file`".into()),
        }
    }
}

/// Default file name of a message: its id with an extension from its content type.
pub fn default_file_name(m: &Envelope) -> String {
    let ext = if m.is_json() {
        "json"
    } else if is_xml_type(&m.content_type) {
        "xml"
    } else {
        "bin"
    };
    format!("{}.{ext}", m.id)
}

/// Is `name` a plain file name (no folders, no `..`, nothing hidden)?
pub fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
}

#[async_trait]
impl Step for To {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        match self {
            To::Adapter {
                adapter,
                operation,
                with,
            } => {
                let r = {
                    let input = with.input(&m)?;
                    cx.effects.call(adapter, operation, &input).await?
                };
                m.headers
                    .insert(RESPONSE_STATUS.to_string(), r.status.to_string());
            }
            To::File { dir, name } => {
                let file = match name {
                    Some(p) => {
                        let body = m.json_body()?;
                        value_to_string(&eval_one(p, "file.name", &body, &m)?)
                    }
                    None => default_file_name(&m),
                };
                if !safe_file_name(&file) {
                    return Err(StepError::permanent(
                        "file.name gave a name with a folder, `..` or a leading dot",
                    ));
                }
                let bytes = if is_json_type(&m.content_type) || m.is_json() {
                    // pretty JSON reads better for people picking files up
                    let v = m.json_body()?;
                    bytes::Bytes::from(serde_json::to_vec_pretty(&*v).unwrap_or_default())
                } else {
                    m.body.to_bytes()
                };
                cx.effects.write_file(dir, &file, bytes).await?;
            }
        }
        Ok(vec![m])
    }
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn file_names_stay_in_their_folder() {
        assert!(safe_file_name("elev-42.json"));
        assert!(!safe_file_name("../etc/passwd"));
        assert!(!safe_file_name("a/b.json"));
        assert!(!safe_file_name(".hidden"));
        assert!(!safe_file_name(""));
    }
}
