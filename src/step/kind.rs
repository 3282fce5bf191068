//! What a step kind is made of, in one place: its options as route files write them (the
//! spec: serde + JSON Schema, whose doc comments are the reference), what `knut check`
//! asks of them, the edges `knut graph` draws from them, and the running step they build.
//!
//! A step kind is one module of [`crate::step`] holding its spec, an implementation of
//! [`StepKind`] and its [`super::Step`]; it is registered by one line in the list of
//! [`super::StepSpec`]. The route loader, `knut check`, `knut graph`, the route schema and
//! the runtime all go through that list, so a new kind touches its module and that line.

use super::{BuildError, Step, StepSpec};
use crate::resources::Resources;

/// Where a step kind reports what is wrong with its options. `path` is the YAML path in
/// the route file (`steps[2].to.adapter`), so the report gets file, line and column.
pub trait Problems {
    /// A problem at `path`; `expected` says what would be right.
    fn problem(&mut self, path: &str, message: String, expected: Option<&str>);
}

/// What `knut check` checks a step's references against: the root's schemas, templates
/// and adapters, the jq compiler, the exchanges routes bind, the route's endpoint.
pub trait CheckCx: Problems {
    /// `name` must be a schema of `schemas/`.
    fn schema(&mut self, path: &str, name: &str);
    /// `name` must be a template of `transforms/`.
    fn template(&mut self, path: &str, name: &str);
    /// `program` must compile.
    fn jq(&mut self, path: &str, program: &str);
    /// `file` under `transforms/` must hold a jq program that compiles.
    fn jq_file(&mut self, path: &str, file: &str);
    /// `adapter` (named at `{path}.adapter`) must have `operation` (at `{path}.{field}`);
    /// false when the adapter itself is unknown.
    fn adapter(&mut self, path: &str, field: &str, adapter: &str, operation: &str) -> bool;
    /// An operation call (`enrich`, `call`, `to`, a `scatter_gather` source) at `path`:
    /// `adapter` must have `operation`, and its `with:` program (at `{path}.with`) compile.
    fn operation_with(&mut self, path: &str, adapter: &str, operation: &str, with: Option<&str>) {
        self.adapter(path, "operation", adapter, operation);
        if let Some(with) = with {
            self.jq(&format!("{path}.with"), with);
        }
    }
    /// A route of this route's plane must bind `key` (a routing key, `{jq}` placeholders
    /// allowed) on `exchange`; `path` is the target's path (its `.key` is reported).
    fn publish(&mut self, path: &str, exchange: &str, key: &str);
    /// Whether the route starts from `http` (a synchronous caller may wait).
    fn starts_from_http(&self) -> bool;
}

/// What `knut graph` draws from a step: the route's node to these.
pub trait Edges {
    /// A call of an adapter operation.
    fn adapter(&mut self, adapter: &str, operation: &str);
    /// A publish to an exchange with a routing key.
    fn exchange(&mut self, exchange: &str, key: &str);
    /// A file written to a folder.
    fn folder(&mut self, dir: &str);
}

/// One step kind's behaviour around its spec. Only `build` is required.
pub trait StepKind {
    /// Checks that need no other file (shapes, numbers), reported when the route loads.
    /// `at` is the step's path (`steps[2].to`).
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        let _ = (at, out);
    }

    /// Cross-references: schemas, templates, adapters, jq programs, bindings.
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        let _ = (at, cx);
    }

    /// The edges `knut graph` draws from the route to what this step reaches.
    fn edges(&self, g: &mut dyn Edges) {
        let _ = g;
    }

    /// The running step at `at`.
    fn build(&self, at: &str, res: &Resources) -> Result<Box<dyn Step>, BuildError>;

    /// Nested step lists (a `choice`'s branches) with their paths relative to the step's
    /// own path (`when[0].steps`, `otherwise`).
    fn branches(&self) -> Vec<(String, &[StepSpec])> {
        Vec::new()
    }
}

/// A [`BuildError`] at `at`.
pub fn build_error(at: &str, message: impl Into<String>) -> BuildError {
    BuildError {
        path: at.to_string(),
        message: message.into(),
    }
}
