//! Loading route files: YAML → [`Route`], every problem reported as a [`Diagnostic`] with
//! `file:line:col`, the YAML path, what was expected and "did you mean".
//!
//! Route files are `routes/**/*.yaml` and `routes/**/*.yml` under the root, except
//! `*.test.yaml` / `*.test.yml` (route tests). Each file holds one route.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_saphyr::granit_parser::{Event, Parser};

use super::diagnostic::{Diagnostic, printable_name};
use super::model::{Claims, From, PollFrom, Route, StepSpec};
use crate::step::kind::Problems;

/// A route read from its file, with the positions of its values.
#[derive(Debug, Clone)]
pub struct LoadedRoute {
    /// The route.
    pub route: Route,
    /// The file it came from, relative to the root.
    pub file: PathBuf,
    /// Positions of the file's values by YAML path.
    pub positions: Positions,
    /// The fragments its `include` steps put in, by the path prefix of their steps
    /// (`steps[2].include.`), so a problem in one is reported in the fragment's file.
    pub includes: Vec<(String, std::sync::Arc<super::fragment::LoadedFragment>)>,
}

impl LoadedRoute {
    /// A diagnostic about the value at `yaml_path` in this route's file (positioned at the
    /// value, or at its nearest written ancestor when the value was defaulted). A path
    /// inside an included fragment is reported in the fragment's file, at its own path.
    pub fn diagnostic(&self, yaml_path: &str, message: impl Into<String>) -> Diagnostic {
        let inner = self
            .includes
            .iter()
            .filter(|(prefix, _)| yaml_path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len());
        if let Some((prefix, f)) = inner {
            let rest = &yaml_path[prefix.len()..];
            return Diagnostic::new(
                f.file.clone(),
                f.positions.locate(rest),
                rest,
                format!(
                    "{} (included by route `{}`, {})",
                    message.into(),
                    self.route.route,
                    self.file.display()
                ),
            );
        }
        Diagnostic::new(
            self.file.clone(),
            self.positions.locate(yaml_path),
            yaml_path,
            message,
        )
    }
}

/// One node of the YAML document: a value, or a mapping key.
#[derive(Debug, Clone)]
struct Node {
    path: String,
    parent: String,
    is_key: bool,
    start: usize,
    end: usize,
}

/// Positions of a YAML document's values, by YAML path (`steps[2].validate.schema`,
/// `from.http.path`; the document itself is the empty path).
#[derive(Debug, Clone, Default)]
pub struct Positions {
    values: HashMap<String, (usize, usize)>,
    keys: BTreeMap<String, Vec<(String, usize, usize)>>,
    nodes: Vec<Node>,
    line_starts: Vec<usize>,
}

impl Positions {
    /// 1-based line and column of the value at `yaml_path`, if it is written in the file.
    pub fn get(&self, yaml_path: &str) -> Option<(usize, usize)> {
        self.values.get(yaml_path).copied()
    }

    /// Position of `yaml_path`, or of its nearest ancestor that is written in the file,
    /// or `(1, 1)`.
    pub fn locate(&self, yaml_path: &str) -> (usize, usize) {
        let mut p = yaml_path;
        loop {
            if let Some(pos) = self.get(p) {
                return pos;
            }
            match parent_path(p) {
                Some(parent) => p = parent,
                None => return (1, 1),
            }
        }
    }

    /// The keys written in the mapping at `yaml_path`, with their positions, in file order.
    pub fn keys(&self, yaml_path: &str) -> &[(String, usize, usize)] {
        self.keys.get(yaml_path).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Build the positions of `text` by walking its YAML events. Returns what it could map
    /// when the YAML is not well-formed (syntax errors are reported by the deserialiser).
    pub fn of(text: &str) -> Positions {
        let mut pos = Positions {
            line_starts: line_starts(text),
            ..Positions::default()
        };
        pos.walk(text);
        pos
    }

    fn walk(&mut self, text: &str) {
        enum Frame {
            Map {
                path: String,
                node: usize,
                key: Option<String>,
            },
            Seq {
                path: String,
                node: usize,
                index: usize,
            },
        }
        let mut stack: Vec<Frame> = Vec::new();
        let mut docs = 0usize;
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let (line, column) = (span.start.line(), span.start.col() + 1);
            let (start, end) = (span.start.index(), span.end.index());
            match event {
                Event::DocumentStart(..) => {
                    docs += 1;
                    if docs > 1 {
                        break; // one route per file; the deserialiser reports extra documents
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    let node = match stack.pop() {
                        Some(Frame::Map { node, .. } | Frame::Seq { node, .. }) => node,
                        None => break,
                    };
                    if let Some(n) = self.nodes.get_mut(node) {
                        n.end = end.max(n.start + 1);
                    }
                    after_value(&mut stack);
                }
                Event::Scalar(..)
                | Event::Alias(..)
                | Event::MappingStart(..)
                | Event::SequenceStart(..) => {
                    // Where does this node sit?
                    let (path, parent, is_key) = match stack.last_mut() {
                        None => (String::new(), String::new(), false),
                        Some(Frame::Seq { path, index, .. }) => {
                            (format!("{path}[{index}]"), path.clone(), false)
                        }
                        Some(Frame::Map { path, key, .. }) => match key {
                            None => {
                                let name = match &event {
                                    Event::Scalar(v, ..) => v.to_string(),
                                    _ => "?".to_string(),
                                };
                                let kp = join_key(path, &name);
                                self.keys.entry(path.clone()).or_default().push((
                                    name.clone(),
                                    line,
                                    column,
                                ));
                                *key = Some(name);
                                (kp, path.clone(), true)
                            }
                            Some(k) => (join_key(path, k), path.clone(), false),
                        },
                    };
                    if !is_key {
                        self.values.entry(path.clone()).or_insert((line, column));
                    }
                    self.nodes.push(Node {
                        path: path.clone(),
                        parent,
                        is_key,
                        start,
                        end: end.max(start + 1),
                    });
                    let node = self.nodes.len() - 1;
                    match event {
                        Event::MappingStart(..) => stack.push(Frame::Map {
                            path: if is_key { "?".into() } else { path },
                            node,
                            key: None,
                        }),
                        Event::SequenceStart(..) => stack.push(Frame::Seq {
                            path: if is_key { "?".into() } else { path },
                            node,
                            index: 0,
                        }),
                        _ if is_key => {}
                        _ => after_value(&mut stack),
                    }
                }
                _ => {}
            }
        }

        /// A value is complete: advance the enclosing collection.
        fn after_value(stack: &mut [Frame]) {
            match stack.last_mut() {
                Some(Frame::Map { key, .. }) => {
                    // A complete value after a key closes the pair; a complete complex
                    // key (rare) is followed by its value.
                    if key.is_some() {
                        *key = None;
                    } else {
                        *key = Some("?".into());
                    }
                }
                Some(Frame::Seq { index, .. }) => *index += 1,
                None => {}
            }
        }
    }

    /// Char index of a 1-based line/column.
    fn index_of(&self, line: usize, column: usize) -> usize {
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        start + column.saturating_sub(1)
    }

    /// The innermost node containing the 1-based `line`:`column`, or the last one before it.
    fn node_at(&self, line: usize, column: usize) -> Option<&Node> {
        let idx = self.index_of(line, column);
        let containing = self
            .nodes
            .iter()
            .filter(|n| n.start <= idx && idx < n.end)
            .min_by_key(|n| (n.end - n.start, usize::MAX - n.start));
        containing.or_else(|| self.nodes.iter().rfind(|n| n.start <= idx))
    }
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → `` → None.
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']')
        && let Some(i) = path.rfind('[')
    {
        return Some(&path[..i]);
    }
    Some(path.rfind('.').map_or("", |i| &path[..i]))
}

fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    for (i, c) in text.chars().enumerate() {
        if c == '\n' {
            starts.push(i + 1);
        }
    }
    starts
}

/// Route ids: lowercase letter first, then lowercase letters, digits and `-`; at most 63.
pub fn is_valid_route_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('a'..='z'))
        && id.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

/// Load every route file under `root/routes` (see the module doc), sorted by file name.
///
/// All problems of all files are returned together; cross-file problems (duplicate route
/// ids, two routes serving the same HTTP path and method) name both files.
pub fn load_routes(root: &Path) -> Result<Vec<LoadedRoute>, Vec<Diagnostic>> {
    let dir = root.join("routes");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = Vec::new();
    let mut diags = Vec::new();
    for ext in ["yaml", "yml"] {
        let pattern = format!(
            "{}/**/*.{ext}",
            glob::Pattern::escape(&dir.to_string_lossy())
        );
        let paths = match glob::glob(&pattern) {
            Ok(p) => p,
            Err(e) => {
                diags.push(Diagnostic::new(
                    "routes",
                    (0, 0),
                    "",
                    format!("cannot list route files: {}", e.msg),
                ));
                continue;
            }
        };
        for entry in paths {
            match entry {
                Ok(p) => {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                    let is_test = name
                        .as_deref()
                        .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"));
                    if !is_test && p.is_file() {
                        files.push(p);
                    }
                }
                Err(e) => diags.push(Diagnostic::new(
                    relative(root, e.path()),
                    (0, 0),
                    "",
                    format!("cannot read: {}", e.error()),
                )),
            }
        }
    }
    files.sort();
    files.dedup();

    let mut routes = Vec::new();
    for path in files {
        let rel = relative(root, &path);
        let text = match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    diags.push(Diagnostic::new(
                        rel,
                        (0, 0),
                        "",
                        "the file is not UTF-8: save it as UTF-8",
                    ));
                    continue;
                }
            },
            Err(e) => {
                diags.push(Diagnostic::new(
                    rel,
                    (0, 0),
                    "",
                    format!("cannot read the file: {e}"),
                ));
                continue;
            }
        };
        match load_route_str(&rel, &text) {
            Ok(r) => routes.push(r),
            Err(d) => diags.extend(d),
        }
    }
    diags.extend(cross_file_checks(&routes));
    match super::fragment::load_fragments(root) {
        Ok(fragments) => diags.extend(super::fragment::resolve(&mut routes, &fragments)),
        Err(d) => diags.extend(d),
    }
    if diags.is_empty() {
        Ok(routes)
    } else {
        Err(diags)
    }
}

pub(super) fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// Duplicate route ids and duplicate HTTP path + method across routes.
fn cross_file_checks(routes: &[LoadedRoute]) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut ids: HashMap<&str, &LoadedRoute> = HashMap::new();
    let mut endpoints: HashMap<(String, &'static str), &LoadedRoute> = HashMap::new();
    for r in routes {
        let id = r.route.route.as_str();
        if let Some(first) = ids.get(id) {
            let (l, c) = first.positions.locate("route");
            diags.push(r.diagnostic(
                "route",
                format!(
                    "route id `{id}` is already used by {}:{l}:{c}: route ids must be unique",
                    first.file.display()
                ),
            ));
        } else {
            ids.insert(id, r);
        }
        if let From::Http(h) = &r.route.from {
            for (i, m) in h.methods.iter().enumerate() {
                let key = (h.path.clone(), m.as_str());
                if let Some(first) = endpoints.get(&key) {
                    let (l, c) = first.positions.locate("from.http.path");
                    diags.push(r.diagnostic(
                        &format!("from.http.methods[{i}]"),
                        format!(
                            "{} {} is already served by route `{}` ({}:{l}:{c}): \
                                 an HTTP path and method belong to one route",
                            m.as_str(),
                            h.path,
                            first.route.route,
                            first.file.display()
                        ),
                    ));
                } else {
                    endpoints.insert(key, r);
                }
            }
        }
    }
    diags
}

/// Load one route from `text`; `file` names it in diagnostics.
pub fn load_route_str(file: &Path, text: &str) -> Result<LoadedRoute, Vec<Diagnostic>> {
    let positions = Positions::of(text);
    let route: Route = match serde_saphyr::from_str(text) {
        Ok(r) => r,
        Err(e) => return Err(vec![from_yaml_error(file, &positions, &e)]),
    };
    let loaded = LoadedRoute {
        route,
        file: file.to_path_buf(),
        positions,
        includes: Vec::new(),
    };
    let diags = semantic_checks(&loaded);
    if diags.is_empty() {
        Ok(loaded)
    } else {
        Err(diags)
    }
}

/// Checks that need no other file: id pattern, step shapes, numeric minimums.
fn semantic_checks(r: &LoadedRoute) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    if !is_valid_route_id(&r.route.route) {
        d.push(
            r.diagnostic("route", "the route id is not valid")
                .with_expected(
                    "a lowercase letter, then lowercase letters, digits and `-` \
                     (at most 63 characters), e.g. `placement-change`",
                ),
        );
    }
    if let From::Poll(p) = &r.route.from {
        check_poll(r, p, &mut d);
    }
    if let From::Http(h) = &r.route.from {
        if h.auth.unauthenticated() == Some(Some(""))
            || h.auth
                .unauthenticated()
                .flatten()
                .is_some_and(|w| w.trim().is_empty())
        {
            d.push(
                r.diagnostic(
                    "from.http.auth.none",
                    "say why the route needs no credentials",
                )
                .with_expected("`auth: { none: \"<the reason, for reviewers>\" }`"),
            );
        }
        if let Claims::Named(named) = &h.claims {
            for (key, line, column) in r.positions.keys("from.http.claims") {
                if Claims::is_header_name(key) || !named.contains_key(key) {
                    continue;
                }
                let name = printable_name(key)
                    .map(|n| format!(" `{n}`"))
                    .unwrap_or_default();
                d.push(
                    Diagnostic::new(
                        r.file.clone(),
                        (*line, *column),
                        "from.http.claims",
                        format!(
                            "the header name{name} is not a simple name: it becomes the header \
                             `knut-claim-<name>`"
                        ),
                    )
                    .with_expected(
                        "letters, digits, `_` and `-`, e.g. `personalNumber: \
                         \"https://claims.oidc.se/1.0/personalNumber\"`",
                    ),
                );
            }
        }
        if let Some(limit) = &h.rate_limit {
            if !(limit.per_second > 0.0 && limit.per_second.is_finite()) {
                d.push(
                    r.diagnostic(
                        "from.http.rate_limit.per_second",
                        "per_second must be a positive number of requests a second",
                    )
                    .with_expected("e.g. `5` or `0.5`"),
                );
            }
            if limit.burst < 1 {
                d.push(
                    r.diagnostic("from.http.rate_limit.burst", "burst must be at least 1")
                        .with_expected("a whole number ≥ 1"),
                );
            }
        }
    }
    check_steps(r, "steps", &r.route.steps, &mut d);
    if r.route.errors.retry.attempts < 1 {
        d.push(
            r.diagnostic("errors.retry.attempts", "attempts must be at least 1")
                .with_expected("a whole number ≥ 1 (the first attempt counts)"),
        );
    }
    if r.route.consumer.prefetch < 1 {
        d.push(
            r.diagnostic("consumer.prefetch", "prefetch must be at least 1")
                .with_expected("a whole number ≥ 1"),
        );
    }
    if r.route.consumer.concurrency < 1 {
        d.push(
            r.diagnostic("consumer.concurrency", "concurrency must be at least 1")
                .with_expected("a whole number ≥ 1"),
        );
    }
    ordering_checks(r, &mut d);
    d
}

fn check_poll(r: &LoadedRoute, p: &PollFrom, d: &mut Vec<Diagnostic>) {
    if p.every.is_some() == p.cron.is_some() {
        d.push(
            r.diagnostic(
                "from.poll",
                "a poll needs exactly one of `every` and `cron`",
            )
            .with_expected("`every: 1m` or `cron: \"*/5 * * * *\"`"),
        );
    }
    if p.every.is_some_and(|e| e.is_zero()) {
        d.push(
            r.diagnostic("from.poll.every", "the interval must be longer than zero")
                .with_expected("a duration such as `30s` or `5m`"),
        );
    }
    let params_ok = |v: &serde_json::Value| match v {
        serde_json::Value::Object(_) => true,
        serde_json::Value::Array(list) => !list.is_empty() && list.iter().all(|e| e.is_object()),
        _ => false,
    };
    if p.params.as_ref().is_some_and(|v| !params_ok(v)) {
        d.push(
            r.diagnostic(
                "from.poll.params",
                "params must be a mapping (the list operation's message body) or a non-empty \
                 list of mappings (one list call each)",
            )
            .with_expected(
                "e.g. `{familyId: 412, status: Inkommen}` or `[{familyId: 136, status: Beviljat}, \
                 {familyId: 136, status: beslutad}]`",
            ),
        );
    }
    if p.page.as_ref().is_some_and(|page| page.max == 0) {
        d.push(
            r.diagnostic("from.poll.page.max", "a poll lists at least one page")
                .with_expected("a whole number ≥ 1 (default 100)"),
        );
    }
}

/// RabbitMQ closes a consumer's channel when it holds a delivery unacknowledged longer
/// than its `consumer_timeout` (30 min by default); an ordered route holds a failing
/// delivery through all its retries, so their delays together must stay well below that.
const MAX_ORDERED_RETRY_HOLD: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// `partitions` and the retry policy of an ordered route.
fn ordering_checks(r: &LoadedRoute, d: &mut Vec<Diagnostic>) {
    use super::model::MAX_PARTITIONS;
    let route = &r.route;
    if let Some(n) = route.partitions {
        if route.ordered_by.is_none() {
            d.push(
                r.diagnostic(
                    "partitions",
                    "`partitions` only applies to an ordered route, and this route has no \
                     `ordered_by`",
                )
                .with_expected(
                    "`ordered_by: <jq program giving the key>` beside it, or no `partitions`",
                ),
            );
        } else if !(1..=MAX_PARTITIONS).contains(&n) {
            d.push(
                r.diagnostic(
                    "partitions",
                    format!("partitions must be between 1 and {MAX_PARTITIONS}"),
                )
                .with_expected(format!(
                    "a whole number from 1 to {MAX_PARTITIONS} (each partition is a queue \
                     processed one message at a time; default 8)"
                )),
            );
        }
    }
    let retry = &route.errors.retry;
    if route.ordered_by.is_some() && retry.total_delay() > MAX_ORDERED_RETRY_HOLD {
        d.push(
            r.diagnostic(
                "errors.retry",
                format!(
                    "an ordered route retries in place, holding back its partition: these \
                     retries could hold one message for {} (more than {} min; RabbitMQ \
                     gives up on a consumer holding a message 30 min)",
                    humantime::format_duration(retry.total_delay()),
                    MAX_ORDERED_RETRY_HOLD.as_secs() / 60
                ),
            )
            .with_expected(
                "fewer `attempts` or a lower `max`, so that the delays add up to at most 15 min",
            ),
        );
    }
}

/// Each step kind's own checks of its options (see [`crate::step::kind::StepKind::lint`]).
fn check_steps(r: &LoadedRoute, base: &str, steps: &[StepSpec], d: &mut Vec<Diagnostic>) {
    lint_steps(&|path, message| r.diagnostic(path, message), base, steps, d);
}

/// [`check_steps`] for any file: `diagnostic` places a problem at a YAML path.
pub(super) fn lint_steps(
    diagnostic: &dyn Fn(&str, String) -> Diagnostic,
    base: &str,
    steps: &[StepSpec],
    d: &mut Vec<Diagnostic>,
) {
    struct Lints<'a> {
        diagnostic: &'a dyn Fn(&str, String) -> Diagnostic,
        d: &'a mut Vec<Diagnostic>,
    }
    impl Problems for Lints<'_> {
        fn problem(&mut self, path: &str, message: String, expected: Option<&str>) {
            let mut diag = (self.diagnostic)(path, message);
            if let Some(e) = expected {
                diag = diag.with_expected(e);
            }
            self.d.push(diag);
        }
    }
    let mut lints = Lints { diagnostic, d };
    for (path, step) in crate::step::with_paths(steps, base) {
        let at = format!("{path}.{}", step.kind());
        step.behaviour().lint(&at, &mut lints);
    }
}

/// What serde expected, in people's words.
fn expected_words(path: &str, serde_expected: &str) -> String {
    let last = path.rsplit('.').next().unwrap_or(path);
    let e = serde_expected.trim();
    let is_steps = last == "steps" || last == "otherwise";
    if is_steps && (e.contains("sequence") || e.starts_with("a ") && e.contains("seq")) {
        return "a list of steps".into();
    }
    if e.contains("StepSpec") {
        return "a step: a mapping with one key naming the step kind, e.g. `validate: {schema: …}`"
            .into();
    }
    if e.contains("enum From") {
        return "an endpoint: a mapping with one key, one of http, queue, file, timer".into();
    }
    if e.contains("sequence") {
        return "a list".into();
    }
    if e.contains("mapping") || e.starts_with("struct ") || e.contains("map") {
        return "a mapping of keys to values".into();
    }
    if e.contains("string") {
        return "a string".into();
    }
    if e.contains("duration") {
        return "a duration such as `500ms`, `1s`, `10m`".into();
    }
    if e.contains("bool") {
        return "`true` or `false`".into();
    }
    if ["u8", "u16", "u32", "u64", "usize", "i32", "i64", "integer"]
        .iter()
        .any(|t| e == *t || e.starts_with(&format!("{t} ")) || e.ends_with(t))
    {
        return "a whole number (0 or more)".into();
    }
    if e.contains("float") || e.contains("f64") {
        return "a number".into();
    }
    // Unknown wording: keep serde's, which names types, not values.
    e.to_string()
}

/// The kind of a value serde found (its `Unexpected` text), without the value itself.
fn found_words(unexpected: &str) -> &'static str {
    let u = unexpected.trim_start();
    for (prefix, words) in [
        ("string", "a string"),
        ("integer", "a number"),
        ("floating point", "a number"),
        ("boolean", "`true`/`false`"),
        ("sequence", "a list"),
        ("map", "a mapping"),
        ("unit", "nothing (null)"),
        ("null", "nothing (null)"),
        ("char", "a string"),
    ] {
        if u.starts_with(prefix) {
            return words;
        }
    }
    "a value of another kind"
}

/// Names of the known enums, to say what kind of name was misspelt.
fn variant_kind(expected: &[&str]) -> &'static str {
    let has = |n: &str| expected.contains(&n);
    if has("validate") && has("xml_to_json") {
        "step kind"
    } else if has("http") && has("timer") {
        "endpoint kind"
    } else if has("POST") {
        "HTTP method"
    } else if has("json") && has("xml") {
        "body format"
    } else if has("info") && has("warn") {
        "log level"
    } else {
        "name"
    }
}

/// Turn a serde-saphyr error into a diagnostic with position, path and suggestion.
pub(super) fn from_yaml_error(
    file: &Path,
    pos: &Positions,
    err: &serde_saphyr::Error,
) -> Diagnostic {
    use serde_saphyr::Error as E;
    let (line, column) = err
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .filter(|&(l, _)| l > 0)
        .unwrap_or((0, 0));
    let node = if line > 0 {
        pos.node_at(line, column)
    } else {
        None
    };
    let node_path = node.map(|n| n.path.clone()).unwrap_or_default();
    // For a misspelt key, the path is the mapping holding it.
    let owner_path = node
        .map(|n| {
            if n.is_key {
                n.parent.clone()
            } else {
                n.path.clone()
            }
        })
        .unwrap_or_default();
    let diag = |path: &str, msg: String| Diagnostic::new(file, (line, column), path, msg);

    match unwrap_error(err) {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let msg = match printable_name(field) {
                Some(f) => format!("unknown key `{f}`"),
                None => "unknown key".to_string(),
            };
            let mut d = diag(&owner_path, msg);
            if expected.is_empty() {
                d.expected = Some("no keys here".into());
            } else {
                d = d.with_choices(field, expected);
            }
            d
        }
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let kind = variant_kind(expected);
            let path = if node.is_some_and(|n| n.is_key) {
                &owner_path
            } else {
                &node_path
            };
            let msg = match printable_name(variant) {
                Some(v) => format!("unknown {kind} `{v}`"),
                None => format!("unknown {kind}"),
            };
            diag(path, msg).with_choices(variant, expected)
        }
        E::SerdeMissingField { field, .. } => diag(&owner_path, format!("missing key `{field}`"))
            .with_expected(format!("`{field}` in this mapping")),
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => diag(
            &node_path,
            format!("wrong type: found {}", found_words(unexpected)),
        )
        .with_expected(expected_words(&node_path, expected)),
        E::SerdeInvalidValue { expected, .. } => diag(&node_path, "invalid value".to_string())
            .with_expected(expected_words(&node_path, expected)),
        E::SerdeInvalidLength { expected, .. } => {
            diag(&node_path, "wrong number of items".to_string())
                .with_expected(expected_words(&node_path, expected))
        }
        E::Unexpected { expected, .. } => diag(&node_path, "wrong type".to_string())
            .with_expected(expected_words(&node_path, expected)),
        E::InvalidScalar { ty, .. } => diag(&node_path, "invalid value".to_string())
            .with_expected(expected_words(&node_path, ty)),
        E::NullIntoString { .. } => {
            diag(&node_path, "missing value".to_string()).with_expected("a string")
        }
        E::DuplicateMappingKey { key, .. } => {
            let msg = match key.as_deref().and_then(printable_name) {
                Some(k) => format!("key `{k}` appears twice in this mapping"),
                None => "a key appears twice in this mapping".to_string(),
            };
            diag(&owner_path, msg)
        }
        E::MultipleDocuments { .. } => diag(
            "",
            "more than one YAML document: a route file holds exactly one route".to_string(),
        ),
        E::Eof { .. } => diag("", "the file is empty: a route file holds one route".into())
            .with_expected("a mapping with `route`, `from` and `steps`"),
        E::Message { msg, .. } if msg.contains("untagged enum PublishSpec") => {
            publish_diagnostic(file, pos, &node_path, (line, column))
        }
        E::Message { msg, .. } => diag(&node_path, without_leading_value(msg)),
        E::ExternalMessage { msg, .. } => diag(&node_path, format!("YAML syntax error: {msg}")),
        other => {
            // Syntax and other errors: serde-saphyr's own wording names kinds, not values.
            let text = other
                .render_with_options(serde_saphyr::render_options! {
                    snippets: serde_saphyr::SnippetMode::Off,
                })
                .to_string();
            let text = text
                .split(" at line ")
                .next()
                .unwrap_or(&text)
                .trim_start_matches("error: ")
                .to_string();
            diag(&node_path, text)
        }
    }
}

/// A custom serde message that starts with the offending value in backticks (`` `x` is not
/// a size: … ``) names "the value" instead: the value could be data.
fn without_leading_value(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix('`')
        && let Some(end) = rest.find('`')
    {
        return format!("the value{}", &rest[end + 1..]);
    }
    msg.to_string()
}

/// The error inside alias / snippet wrappers.
fn unwrap_error(mut err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    loop {
        match err {
            serde_saphyr::Error::WithSnippet { error, .. }
            | serde_saphyr::Error::AliasError { error, .. } => err = error,
            _ => return err,
        }
    }
}

/// A `publish` that is neither a target nor a list of targets: find the wrong key.
fn publish_diagnostic(
    file: &Path,
    pos: &Positions,
    node_path: &str,
    at: (usize, usize),
) -> Diagnostic {
    const KEYS: [&str; 2] = ["exchange", "key"];
    let mut targets: Vec<String> = Vec::new();
    if pos.keys.contains_key(node_path) {
        targets.push(node_path.to_string());
    }
    targets.extend(
        (0..)
            .map(|i| format!("{node_path}[{i}]"))
            .take_while(|p| pos.values.contains_key(p)),
    );
    for t in &targets {
        for (k, line, col) in pos.keys(t) {
            if !KEYS.contains(&k.as_str()) {
                let msg = match printable_name(k) {
                    Some(k) => format!("unknown key `{k}`"),
                    None => "unknown key".to_string(),
                };
                return Diagnostic::new(file, (*line, *col), t.clone(), msg).with_choices(k, &KEYS);
            }
        }
        for k in KEYS {
            if !pos.keys(t).iter().any(|(name, ..)| name == k) {
                return Diagnostic::new(
                    file,
                    pos.locate(t),
                    t.clone(),
                    format!("missing key `{k}`"),
                )
                .with_expected("`exchange` and `key`");
            }
        }
    }
    Diagnostic::new(file, at, node_path, "not a publish target")
        .with_expected("`{exchange: <name>, key: <routing key>}` or a list of them")
}

/// The JSON Schema (draft 2020-12) of route files, generated from [`Route`]; committed as
/// `schemas/route.schema.json` for editors.
pub fn route_json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Route);
    let mut value = serde_json::to_value(&schema).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        let mut out = serde_json::Map::new();
        for key in ["$schema"] {
            if let Some(v) = obj.remove(key) {
                out.insert(key.into(), v);
            }
        }
        out.insert("$id".into(), "urn:knutpunkt:schema:route".into());
        out.insert("title".into(), "Knutpunkt route".into());
        for (k, v) in std::mem::take(obj) {
            if k != "title" {
                out.insert(k, v);
            }
        }
        value = serde_json::Value::Object(out);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
route: placement-change
description: Fristående huvudman rapporterar placeringsförändring
from:
  http: { path: /api/v1/placement-changes, methods: [POST], auth: portal, format: json, schema: placement-change.v1 }
steps:
  - validate: { schema: placement-change.v1 }
  - set: { headers: { unit: '.schoolUnit' } }
  - choice:
      when:
        - jq: '.kind == \"end\"'
          steps:
            - to: { adapter: elevregister, operation: end-placement }
      otherwise:
        - to: { adapter: elevregister, operation: update-placement }
  - transform: { jq: '{student: .student, change: .kind}' }
  - publish: { exchange: school.events, key: placement.changed }
errors:
  retry: { attempts: 8, initial: 1s, max: 10m }
";

    fn load(text: &str) -> Result<LoadedRoute, Vec<Diagnostic>> {
        load_route_str(Path::new("routes/placement.yaml"), text)
    }

    fn one_error(text: &str) -> Diagnostic {
        match load(text) {
            Ok(_) => panic!("expected an error"),
            Err(mut d) => {
                assert_eq!(d.len(), 1, "{d:?}");
                d.remove(0)
            }
        }
    }

    #[test]
    fn good_route_loads_with_positions_of_nested_values() {
        let r = load(GOOD).unwrap();
        assert_eq!(r.route.route, "placement-change");
        let p = &r.positions;
        assert_eq!(p.get("route"), Some((1, 8)));
        assert_eq!(p.get("from.http.path"), Some((4, 17)));
        assert_eq!(p.get("from.http.methods[0]"), Some((4, 54)));
        assert_eq!(p.get("steps[0].validate.schema"), Some((6, 25)));
        assert_eq!(p.get("steps[1].set.headers.unit"), Some((7, 29)));
        assert_eq!(p.get("steps[2].choice.when[0].jq"), Some((10, 15)));
        assert_eq!(
            p.get("steps[2].choice.when[0].steps[0].to.adapter"),
            Some((12, 30))
        );
        assert_eq!(
            p.get("steps[2].choice.otherwise[0].to.operation"),
            Some((14, 51))
        );
        assert_eq!(p.get("steps[4].publish.key"), Some((16, 46)));
        assert_eq!(p.get("errors.retry.max"), Some((18, 43)));
        assert_eq!(p.get("steps[9]"), None);
        // A defaulted value is located at its nearest written ancestor.
        assert_eq!(p.locate("consumer.prefetch"), (1, 1));
        assert_eq!(p.locate("steps[0].validate.nothing"), (6, 15));
        assert_eq!(
            p.keys("steps[4].publish")
                .iter()
                .map(|k| k.0.as_str())
                .collect::<Vec<_>>(),
            ["exchange", "key"]
        );
    }

    #[test]
    fn misspelt_step_kind_has_position_path_and_suggestion() {
        let text = GOOD.replace("- validate:", "- valdate:");
        let d = one_error(&text);
        assert_eq!((d.line, d.column), (6, 5));
        assert_eq!(d.path, "steps[0]");
        assert_eq!(d.message, "unknown step kind `valdate`");
        assert_eq!(d.suggestion.as_deref(), Some("validate"));
        let shown = d.to_string();
        assert!(
            shown.starts_with("routes/placement.yaml:6:5: steps[0]: unknown step kind `valdate`\n  expected one of: xml_to_json, json_to_xml, csv_to_json, excel_to_json, fixed_to_json, validate,"),
            "{shown}"
        );
        assert!(shown.ends_with("did you mean `validate`?"), "{shown}");
    }

    #[test]
    fn a_type_name_as_a_column_field_is_caught_with_the_fix() {
        let text = "route: csn\nfrom:\n  file: { dir: in/csn }\nsteps:\n  - csv_to_json:\n      columns:\n        Personnummer: civicNo\n        Belopp: decimal\n";
        let d = one_error(text);
        assert_eq!(d.path, "steps[0].csv_to_json.columns.Belopp");
        assert_eq!(d.line, 8, "{d}");
        assert!(d.message.contains("field named `decimal`"), "{d}");
        assert!(
            d.expected
                .as_deref()
                .is_some_and(|e| e.contains("{ field: <name>, type: decimal }")),
            "{d}"
        );
    }

    /// A business key's header name is checked, and a key that holds a personnummer
    /// literal is refused, at its position.
    #[test]
    fn a_business_key_is_checked_where_it_is_set() {
        let d = one_error(&GOOD.replace("unit: '.schoolUnit'", "knut-key-9unit: '.schoolUnit'"));
        assert_eq!(d.path, "steps[1].set.headers.knut-key-9unit");
        assert_eq!(d.line, 7, "{d}");
        assert!(d.message.contains("starts with a letter"), "{d}");
        let d = one_error(&GOOD.replace(
            "unit: '.schoolUnit'",
            "knut-key-student: '\"20130412-2383\"'",
        ));
        assert_eq!(d.path, "steps[1].set.headers.knut-key-student");
        assert!(d.message.contains("never holds a personnummer"), "{d}");
        assert!(load(&GOOD.replace("unit: '.schoolUnit'", "knut-key-unit: '.schoolUnit'")).is_ok());
    }

    #[test]
    fn misspelt_key_has_position_path_and_suggestion() {
        let text = GOOD.replace("validate: { schema:", "validate: { schmea:");
        let d = one_error(&text);
        assert_eq!((d.line, d.column), (6, 17));
        assert_eq!(d.path, "steps[0].validate");
        assert_eq!(d.message, "unknown key `schmea`");
        assert_eq!(d.expected.as_deref(), Some("one of: schema"));
        assert_eq!(d.suggestion.as_deref(), Some("schema"));
        assert!(
            d.to_string()
                .starts_with("routes/placement.yaml:6:17: steps[0].validate: unknown key `schmea`")
        );

        // Nested deep in a choice branch.
        let text = GOOD.replace(
            "- to: { adapter: elevregister, operation: end",
            "- to: { adaptor: elevregister, operation: end",
        );
        let d = one_error(&text);
        assert_eq!(d.path, "steps[2].choice.when[0].steps[0].to");
        assert_eq!(d.suggestion.as_deref(), Some("adapter"));
        assert_eq!((d.line, d.column), (12, 21));

        // Misspelt endpoint kind.
        let d = one_error(&GOOD.replace("  http: {", "  htp: {"));
        assert_eq!(d.path, "from");
        assert_eq!(d.message, "unknown endpoint kind `htp`");
        assert_eq!(d.suggestion.as_deref(), Some("http"));
    }

    #[test]
    fn misspelt_publish_key_is_found_inside_the_untagged_enum() {
        let d = one_error(&GOOD.replace("key: placement.changed", "kye: placement.changed"));
        assert_eq!(d.path, "steps[4].publish");
        assert_eq!(d.message, "unknown key `kye`");
        assert_eq!(d.suggestion.as_deref(), Some("key"));
        assert_eq!((d.line, d.column), (16, 41));
        let list = GOOD.replace(
            "- publish: { exchange: school.events, key: placement.changed }",
            "- publish:\n      - { exchange: a, key: b }\n      - { exchange: c }",
        );
        let d = one_error(&list);
        assert_eq!(d.path, "steps[4].publish[1]");
        assert_eq!(d.message, "missing key `key`");
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let d = one_error(
            &GOOD
                .replace(
                    "steps:\n  - validate: { schema: placement-change.v1 }",
                    "steps: 12\nx:\n  - validate: { schema: placement-change.v1 }",
                )
                .replace("x:\n", ""),
        );
        // (the replacement leaves a dangling list, so any error will do here)
        assert!(d.line > 0);

        let d = one_error("route: a\nfrom:\n  http: {path: /x, auth: none}\nsteps: 12345\n");
        assert_eq!(d.path, "steps");
        assert_eq!(d.expected.as_deref(), Some("a list of steps"));
        assert_eq!((d.line, d.column), (4, 8));
        assert!(!d.to_string().contains("12345"));

        let d = one_error(
            "route: a\nfrom:\n  http: {path: /x, auth: none}\nsteps:\n  - validate: {schema: [1]}\n",
        );
        assert_eq!(d.path, "steps[0].validate.schema");
        assert_eq!(d.expected.as_deref(), Some("a string"));

        let d = one_error(
            "route: a\nfrom:\n  http: {path: /x, auth: none}\nerrors: {retry: {attempts: many}}\n",
        );
        assert_eq!(d.path, "errors.retry.attempts");
        assert_eq!(d.expected.as_deref(), Some("a whole number (0 or more)"));

        let d = one_error("route: a\nfrom:\n  http: {path: /x}\n");
        assert_eq!(d.path, "from.http");
        assert_eq!(d.message, "missing key `auth`");
    }

    #[test]
    fn values_never_appear_in_messages() {
        // Fictional personnummer (born 2012, Luhn-valid), typed where a value is wrong.
        for text in [
            "route: a\nfrom:\n  http: {path: /x, auth: none, methods: [201203142384]}\n",
            "route: a\nfrom:\n  http: {path: /x, auth: none, max_body: 20120314-2384}\n",
            "route: a\nfrom:\n  http: {path: /x, auth: none}\nerrors: {retry: {initial: 201203142384}}\n",
            "route: a\nfrom:\n  http: {path: /x, auth: none}\nsteps:\n  - log: {message: x, level: 201203142384}\n",
            "route: 201203142384\nfrom:\n  http: {path: /x, auth: none}\n",
        ] {
            let err = load(text).unwrap_err();
            for d in err {
                let shown = d.to_string();
                assert!(!shown.contains("2384"), "{shown}");
                assert!(!d.message.contains("2384"), "{d:?}");
            }
        }
        let d = one_error("route: a\nfrom:\n  http: {path: /x, auth: none, max_body: Anna}\n");
        assert_eq!(d.path, "from.http.max_body");
        assert!(d.message.starts_with("the value is not a size"), "{d:?}");
    }

    #[test]
    fn syntax_errors_and_duplicate_keys_have_positions() {
        let d = one_error("route: a\nfrom:\n  http: {path: /x, auth: none\n");
        assert!(d.line >= 3, "{d}");
        let d = one_error("route: a\nroute: b\nfrom:\n  http: {path: /x, auth: none}\n");
        assert_eq!((d.line, d.column), (2, 1));
        assert!(d.message.contains("`route` appears twice"), "{d}");
    }

    #[test]
    fn semantic_checks_while_loading() {
        let base = "route: a\nfrom:\n  http: {path: /x, auth: none}\n";
        let d = one_error("route: Bad_Id\nfrom:\n  http: {path: /x, auth: none}\n");
        assert_eq!((d.path.as_str(), d.line, d.column), ("route", 1, 8));

        let d = one_error(&format!(
            "{base}steps:\n  - transform: {{jq: '.', template: x.tera}}\n"
        ));
        assert_eq!(d.path, "steps[0].transform");
        let d = one_error(&format!("{base}steps:\n  - transform: {{}}\n"));
        assert_eq!(d.path, "steps[0].transform");

        let d = one_error(&format!("{base}steps:\n  - to: {{adapter: x}}\n"));
        assert_eq!(d.path, "steps[0].to");
        let d = one_error(&format!(
            "{base}steps:\n  - to: {{adapter: x, operation: y, file: {{dir: out}}}}\n"
        ));
        assert_eq!(d.path, "steps[0].to");
        assert!(load(&format!("{base}steps:\n  - to: {{file: {{dir: out}}}}\n")).is_ok());

        let d = one_error(&format!(
            "{base}steps:\n  - choice:\n      when: []\n      otherwise:\n        - aggregate: {{correlation: .id, complete: {{}}}}\n"
        ));
        assert_eq!(d.path, "steps[0].choice.otherwise[0].aggregate.complete");
        assert_eq!((d.line, d.column), (8, 51));

        let d = one_error(&format!("{base}errors: {{retry: {{attempts: 0}}}}\n"));
        assert_eq!((d.path.as_str(), d.line), ("errors.retry.attempts", 4));
        let errs = load(&format!(
            "{base}consumer: {{prefetch: 0, concurrency: 0}}\n"
        ))
        .unwrap_err();
        assert_eq!(
            errs.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(),
            ["consumer.prefetch", "consumer.concurrency"]
        );
    }

    #[test]
    fn claims_are_a_list_or_a_map_of_simple_header_names() {
        let route = |claims: &str| {
            format!("route: a\nfrom:\n  http:\n    path: /x\n    auth: idp\n    claims: {claims}\n")
        };
        let list = load(&route("[orgnr]")).expect("the list form loads");
        let From::Http(h) = &list.route.from else {
            unreachable!()
        };
        assert_eq!(h.claims.pairs(), [("orgnr", "orgnr")]);
        let map = load(&route(
            "\n      personalNumber: \"https://claims.oidc.se/1.0/personalNumber\"",
        ))
        .expect("the map form loads");
        let From::Http(h) = &map.route.from else {
            unreachable!()
        };
        assert_eq!(
            h.claims.pairs(),
            [(
                "personalNumber",
                "https://claims.oidc.se/1.0/personalNumber"
            )]
        );
        let d = one_error(&route(
            "\n      ok_name: sub\n      \"bad name\": \"https://claims.oidc.se/1.0/personalNumber\"",
        ));
        assert_eq!(
            (d.path.as_str(), d.line, d.column),
            ("from.http.claims", 8, 7)
        );
        assert!(d.message.contains("not a simple name"), "{}", d.message);
        assert!(
            d.expected
                .as_deref()
                .unwrap_or_default()
                .contains("letters, digits")
        );
        // A name that could be data is not repeated.
        let d = one_error(&route("\n      \"19121212 1212\": sub"));
        assert!(!d.to_string().contains("1212"), "{d}");
    }

    #[test]
    fn a_poll_needs_one_schedule_and_mapping_params() {
        let poll = |extra: &str| {
            format!(
                "route: p\nfrom:\n  poll:\n    adapter: oep\n    list: list-instances\n    items: .items\n    id: .id\n{extra}"
            )
        };
        assert!(load(&poll("    every: 1m\n    params: {familyId: 412}\n")).is_ok());
        assert!(load(&poll("    cron: '*/5 * * * *'\n")).is_ok());
        let d = one_error(&poll(""));
        assert_eq!((d.path.as_str(), d.line, d.column), ("from.poll", 4, 5));
        assert!(
            d.message.contains("exactly one of `every` and `cron`"),
            "{d}"
        );
        let d = one_error(&poll("    every: 1m\n    cron: '0 6 * * *'\n"));
        assert_eq!(d.path, "from.poll");
        let d = one_error(&poll("    every: 0s\n"));
        assert_eq!((d.path.as_str(), d.line), ("from.poll.every", 8));
        let d = one_error(&poll("    every: 1m\n    params: [412]\n"));
        assert_eq!((d.path.as_str(), d.line), ("from.poll.params", 9));
        assert!(load(&poll(
            "    every: 1m\n    params: [{familyId: 136, status: Beviljat}, {familyId: 136, status: beslutad}]\n"
        ))
        .is_ok());
        let d = one_error(&poll("    every: 1m\n    params: []\n"));
        assert_eq!(d.path, "from.poll.params");
        let d = one_error(&poll("    every: 1m\n    fecth: get-instance\n"));
        assert!(d.message.contains("fecth"), "{d}");
        assert_eq!(d.suggestion.as_deref(), Some("fetch"));
    }

    #[test]
    fn ordering_checks_while_loading() {
        let base = "route: a\nfrom:\n  http: {path: /x, auth: none}\n";
        let r = load(&format!("{base}ordered_by: .student.id\n")).expect("ordered route");
        assert_eq!(r.route.ordered_partitions(), Some(8));
        let r = load(&format!("{base}ordered_by: .student.id\npartitions: 3\n")).unwrap();
        assert_eq!(r.route.ordered_partitions(), Some(3));
        assert_eq!(load(base).unwrap().route.ordered_partitions(), None);

        let d = one_error(&format!("{base}ordered_by: .student.id\npartitions: 0\n"));
        assert_eq!((d.path.as_str(), d.line, d.column), ("partitions", 5, 13));
        assert!(d.message.contains("between 1 and 64"), "{d}");
        let d = one_error(&format!("{base}ordered_by: .s\npartitions: 65\n"));
        assert_eq!(d.path, "partitions");

        let d = one_error(&format!("{base}partitions: 4\n"));
        assert_eq!((d.path.as_str(), d.line), ("partitions", 4));
        assert!(d.message.contains("has no `ordered_by`"), "{d}");

        // Ten attempts, up to 10 min apart: far beyond what may hold a partition.
        let long = "errors:\n  retry: {attempts: 10, initial: 1m, max: 10m}\n";
        let d = one_error(&format!("{base}ordered_by: .s\n{long}"));
        assert_eq!((d.path.as_str(), d.line, d.column), ("errors.retry", 6, 10));
        assert!(d.message.contains("retries in place"), "{d}");
        assert!(d.to_string().contains("at most 15 min"), "{d}");
        // The same policy is fine on a route whose retries the broker holds.
        assert!(load(&format!("{base}{long}")).is_ok());
    }

    #[test]
    fn route_ids() {
        assert!(is_valid_route_id("placement-change"));
        assert!(is_valid_route_id("a"));
        assert!(!is_valid_route_id("9a"));
        assert!(!is_valid_route_id("-a"));
        assert!(!is_valid_route_id("a_b"));
        assert!(!is_valid_route_id(&"a".repeat(64)));
        assert!(is_valid_route_id(&"a".repeat(63)));
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn a_good_multi_route_set_loads_sorted_without_tests() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "routes/placement.yaml", GOOD);
        write(
            root,
            "routes/events/audit.yml",
            "route: audit\nfrom:\n  queue: {exchange: school.events, keys: ['placement.*']}\nsteps:\n  - log: {message: seen}\n",
        );
        write(root, "routes/placement.test.yaml", "not: a route\n");
        write(root, "routes/notes.txt", "ignored");
        let routes = load_routes(root).unwrap();
        let files: Vec<_> = routes.iter().map(|r| r.file.clone()).collect();
        assert_eq!(
            files,
            [
                PathBuf::from("routes/events/audit.yml"),
                PathBuf::from("routes/placement.yaml")
            ]
        );
        assert!(load_routes(&root.join("nowhere")).unwrap().is_empty());
    }

    #[test]
    fn duplicate_ids_and_endpoints_name_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "routes/a.yaml", GOOD);
        write(root, "routes/b.yaml", GOOD);
        write(
            root,
            "routes/c.yaml",
            "route: other\nfrom:\n  http: {path: /api/v1/placement-changes, methods: [GET, POST], auth: none}\n",
        );
        write(root, "routes/d.yaml", "route: broken\nfrom: {htp: {}}\n");
        let errs = load_routes(root).unwrap_err();
        let shown: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
        assert_eq!(errs.len(), 4, "{shown:#?}");
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("routes/d.yaml:2:8: from: unknown endpoint kind `htp`")),
            "{shown:#?}"
        );
        assert!(shown.iter().any(|s| s.starts_with("routes/b.yaml:1:8: route: route id `placement-change` is already used by routes/a.yaml:1:8")), "{shown:#?}");
        assert!(shown.iter().any(|s| s.starts_with("routes/b.yaml:4:54: from.http.methods[0]: POST /api/v1/placement-changes is already served by route `placement-change` (routes/a.yaml:4:17)")), "{shown:#?}");
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("routes/c.yaml:3:58: from.http.methods[1]: POST")),
            "{shown:#?}"
        );
    }

    #[test]
    fn committed_json_schema_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/route.schema.json");
        let generated = format!(
            "{}\n",
            serde_json::to_string_pretty(&route_json_schema()).unwrap()
        );
        if std::env::var_os("KNUT_UPDATE_SCHEMA").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "schemas/route.schema.json is not the schema generated from route::model::Route; \
             regenerate it with `KNUT_UPDATE_SCHEMA=1 cargo test --lib route::load` and commit it"
        );
        let v = route_json_schema();
        assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(v["$id"], "urn:knutpunkt:schema:route");
        assert_eq!(v["title"], "Knutpunkt route");
    }
}
