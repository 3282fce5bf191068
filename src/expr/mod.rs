//! jq expressions (via [jaq](https://github.com/01mf02/jaq)) for predicates and JSON mapping.
//!
//! A [`Program`] is compiled once when routes are loaded and run many times, on many
//! threads (`Program` is `Send + Sync`). Every program can read the message headers as
//! `$headers` (see [`Vars`]) and the root's settings as `$settings` (see [`with_settings`]). Besides jq's standard library, programs can call the domain
//! functions of [`domain`]: `personnummer_valid`, `personnummer_birthdate`, `age($date)`,
//! `is_adult($date)`, `mask_personnummer` and `stockholm_time($hhmm)`.
//!
//! # Safety rails
//! - Functions that would reach outside the program are replaced or absent: `env` yields
//!   `{}` (`$ENV` and `input`/`inputs` are not defined), `debug` and `stderr` print nothing
//!   (they would write message data to the process's stderr), and `halt` / `halt_error`
//!   raise an ordinary error instead of exiting the process. Module imports
//!   (`import`/`include`) are refused.
//! - Runtime error texts are sanitised: strings longer than 20 characters are cut, every
//!   personnummer-shaped value is masked and the whole text is capped in length (jq error
//!   messages embed the values they failed on).
//! - Runaway programs: jaq has no fuel or cancellation, so a single output that never
//!   finishes (`def f: f; f`) cannot be interrupted, and unbounded recursion overflows the
//!   stack. What *can* be bounded is bounded: a run stops with an error after
//!   [`MAX_OUTPUTS`] outputs or once [`MAX_RUN_TIME`] has passed between outputs.
//!   Programs come from reviewed route files, never from message data.

mod builtins;
pub mod domain;
pub mod interpolate;
pub mod personnummer;

use std::time::{Duration, Instant};

use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx};
use jaq_json::Val;
use serde_json::Value;
use thiserror::Error;

/// The jaq data kind used by Knutpunkt: plain [`Val`]s and the program's look-up table.
pub(crate) type Data = JustLut<Val>;

/// Most outputs one run may produce before it is stopped with [`ExprError::TooManyOutputs`].
pub const MAX_OUTPUTS: usize = 100_000;

/// Longest a run may take (checked between outputs) before [`ExprError::Timeout`].
pub const MAX_RUN_TIME: Duration = Duration::from_secs(5);

/// The longest string (in characters) that is kept verbatim in an error text.
const MAX_VERBATIM: usize = 20;
/// The longest error text (in characters) produced from a jq runtime error.
const MAX_MESSAGE: usize = 300;

/// One problem found while compiling a jq program, with its position in the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte offset in the program source.
    pub offset: usize,
    /// Line in the program source, 1-based.
    pub line: usize,
    /// Column (in characters) in the program source, 1-based.
    pub column: usize,
    /// What is wrong, e.g. `undefined filter \`foo/0\`` or `expected term, found \`)\``.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Errors from compiling or running a jq program.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExprError {
    /// The program does not compile; every problem is listed with its position.
    #[error(
        "jq program does not compile: {}; check the program against the jq manual \
         (https://jqlang.org/manual/) and the domain functions listed in the Knutpunkt docs",
        .diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Compile {
        /// The problems, in source order.
        diagnostics: Vec<Diagnostic>,
    },
    /// The program failed while running on a message (e.g. `.a + 1` where `.a` is a string).
    /// The text is jq's, sanitised: long strings cut, personnummer masked.
    #[error("jq program failed: {message}")]
    Runtime {
        /// jq's error text, sanitised.
        message: String,
    },
    /// The program produced more outputs than allowed.
    #[error(
        "jq program produced more than {limit} outputs and was stopped; check for an unbounded `range`, `repeat` or recursion"
    )]
    TooManyOutputs {
        /// The limit that was reached.
        limit: usize,
    },
    /// The program ran for too long.
    #[error("jq program ran longer than {} ms and was stopped; check for an unbounded loop", .limit.as_millis())]
    Timeout {
        /// The limit that was reached.
        limit: Duration,
    },
}

/// Variables available to every program.
#[derive(Debug, Clone, PartialEq)]
pub struct Vars {
    /// The message headers as a JSON object of strings, available as `$headers`.
    pub headers: Value,
}

impl Vars {
    /// The variables of `message`: `$headers`.
    pub fn of(message: &crate::core::envelope::Envelope) -> Vars {
        Vars {
            headers: message.headers_json(),
        }
    }
}

impl Default for Vars {
    fn default() -> Self {
        Vars {
            headers: Value::Object(serde_json::Map::new()),
        }
    }
}

impl Vars {
    /// Variables with the given headers.
    pub fn with_headers<K: Into<String>, V: Into<String>>(
        headers: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Vars {
            headers: Value::Object(
                headers
                    .into_iter()
                    .map(|(k, v)| (k.into(), Value::String(v.into())))
                    .collect(),
            ),
        }
    }
}

/// A compiled jq program: compile once at load, run many times.
pub struct Program {
    filter: jaq_core::Filter<Data>,
    source: String,
    /// `$settings` as the program was compiled with them (see [`with_settings`]), kept only
    /// by programs that read them.
    settings: Option<std::sync::Arc<Value>>,
    /// Whether the source names `$settings` at all: a program that does not is given null
    /// (it cannot tell), so a run costs nothing for them.
    reads_settings: bool,
}

std::thread_local! {
    /// The settings programs compiled on this thread now read as `$settings`.
    static SETTINGS: std::cell::RefCell<Option<std::sync::Arc<Value>>> =
        const { std::cell::RefCell::new(None) };
}

/// Run `f` with `settings` as what the programs it compiles read as `$settings` (the root's
/// `settings/<name>.yaml` files, by name; see `Resources::settings`). Outside such a scope
/// `$settings` is `{}`.
pub fn with_settings<T>(settings: std::sync::Arc<Value>, f: impl FnOnce() -> T) -> T {
    let before = SETTINGS.with(|s| s.replace(Some(settings)));
    let out = f();
    SETTINGS.with(|s| *s.borrow_mut() = before);
    out
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

// `Program` must be shareable between route workers.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Program>();
};

/// Native jq functions from jaq's standard library that are replaced (same name, same
/// arity) because they reach outside the program: environment, stderr/log, process exit.
const REPLACED: [&str; 4] = ["env", "debug_empty", "stderr_empty", "halt"];

fn natives() -> impl Iterator<Item = jaq_core::native::Fun<Data>> {
    use jaq_core::native::{bome, run, v};
    use jaq_core::{Error, box_iter::box_once};
    let safe: [jaq_core::native::Filter<jaq_core::RunPtr<Data>>; 4] = [
        ("env", v(0), |_| {
            box_once(Ok(Val::obj(jaq_json::Map::default())))
        }),
        ("debug_empty", v(0), |_| Box::new(core::iter::empty())),
        ("stderr_empty", v(0), |_| Box::new(core::iter::empty())),
        ("halt", v(1), |_| {
            bome(Err(Error::str(
                "halt and halt_error are not available in Knutpunkt; use error(...)",
            )))
        }),
    ];
    jaq_core::funs::<Data>()
        .chain(jaq_std::funs::<Data>().filter(|(name, _, _)| !REPLACED.contains(name)))
        .chain(jaq_json::funs::<Data>())
        .chain(safe.into_iter().map(run::<Data>))
        .chain(builtins::funs())
        .chain(domain::funs())
}

impl Program {
    /// Compile a jq program. Errors list every problem with its line and column; undefined
    /// functions and variables are named.
    pub fn compile(src: &str) -> Result<Program, ExprError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .filter(|d| !builtins::replaces(d.name, d.args.len()));
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(
                &arena,
                File {
                    code: src,
                    path: (),
                },
            )
            .map_err(|errs| load_errors(src, errs))?;
        let filter = Compiler::default()
            .with_global_vars(["$headers", "$settings"])
            .with_funs(natives())
            .compile(modules)
            .map_err(|errs| {
                let mut diagnostics = Vec::new();
                for (file, undefined) in errs {
                    for (name, kind) in undefined {
                        let what = match kind {
                            jaq_core::compile::Undefined::Filter(arity) => {
                                format!("undefined filter `{name}/{arity}`")
                            }
                            other => format!("undefined {} `{name}`", other.as_str()),
                        };
                        diagnostics.push(diagnostic(file.code, src, name, what));
                    }
                }
                sorted(diagnostics)
            })?;
        let reads_settings = src.contains("$settings");
        let settings = reads_settings
            .then(|| SETTINGS.with(|s| s.borrow().clone()))
            .flatten();
        Ok(Program {
            filter,
            source: src.to_owned(),
            settings,
            reads_settings,
        })
    }

    /// Run the program on `input` and collect all its outputs.
    pub fn run(&self, input: &Value, vars: &Vars) -> Result<Vec<Value>, ExprError> {
        let mut out = Vec::new();
        self.for_each(to_val(input), vars, |v| {
            out.push(v);
            true
        })?;
        Ok(out)
    }

    /// Run the program and return its first output (`None` if it produced none). The
    /// program is not run further than its first output.
    pub fn first(&self, input: &Value, vars: &Vars) -> Result<Option<Value>, ExprError> {
        let mut first = None;
        self.for_each(to_val(input), vars, |v| {
            first = Some(v);
            false
        })?;
        Ok(first)
    }

    /// Like [`Program::first`], but takes `input` by value: its strings and keys move into
    /// the program's values instead of being copied (for a body that is replaced anyway).
    pub fn first_owned(&self, input: Value, vars: &Vars) -> Result<Option<Value>, ExprError> {
        let mut first = None;
        self.for_each(into_val(input), vars, |v| {
            first = Some(v);
            false
        })?;
        Ok(first)
    }

    /// Run the program as a predicate: true only if its first output is `true`.
    /// No output, `false`, `null` or any other value is false. An error is an error.
    pub fn predicate(&self, input: &Value, vars: &Vars) -> Result<bool, ExprError> {
        Ok(matches!(self.first(input, vars)?, Some(Value::Bool(true))))
    }

    /// The program's source text, as given to [`Program::compile`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Feed outputs to `sink` until it returns false or the outputs end.
    fn for_each(
        &self,
        input: Val,
        vars: &Vars,
        mut sink: impl FnMut(Value) -> bool,
    ) -> Result<(), ExprError> {
        let started = Instant::now();
        let settings = match (&self.settings, self.reads_settings) {
            (Some(s), _) => to_val(s),
            (None, true) => to_val(&Value::Object(serde_json::Map::new())),
            (None, false) => Val::Null,
        };
        let ctx = Ctx::<Data>::new(
            &self.filter.lut,
            jaq_core::Vars::new([to_val(&vars.headers), settings]),
        );
        let outputs = self.filter.id.run((ctx, input));
        for (count, output) in outputs.enumerate() {
            if count >= MAX_OUTPUTS {
                return Err(ExprError::TooManyOutputs { limit: MAX_OUTPUTS });
            }
            if started.elapsed() > MAX_RUN_TIME {
                return Err(ExprError::Timeout {
                    limit: MAX_RUN_TIME,
                });
            }
            match output {
                Ok(v) => {
                    if !sink(from_val(&v)) {
                        return Ok(());
                    }
                }
                Err(exn) => {
                    let message = match exn.get_err() {
                        Ok(err) => error_text(err),
                        // Only `halt` raises a non-error exception, and it is replaced.
                        Err(_) => "the program tried to stop the process".to_owned(),
                    };
                    return Err(ExprError::Runtime { message });
                }
            }
        }
        Ok(())
    }
}

/// The sanitised text of a jq runtime error. An error whose value is a string (from
/// `error("...")` or a native function) is shown as that text, unquoted.
fn error_text(err: jaq_core::Error<Val>) -> String {
    let rendered = err.to_string();
    if let Val::TStr(text) = err.into_val() {
        let text = String::from_utf8_lossy(&text);
        if rendered == Val::utf8_str(text.to_string()).to_string() {
            return sanitize(&text);
        }
    }
    sanitize(&rendered)
}

fn sorted(mut diagnostics: Vec<Diagnostic>) -> ExprError {
    diagnostics.sort_by_key(|d| d.offset);
    ExprError::Compile { diagnostics }
}

fn load_errors(src: &str, errs: jaq_core::load::Errors<&str, ()>) -> ExprError {
    use jaq_core::load::Error;
    let mut diagnostics = Vec::new();
    for (file, err) in errs {
        match err {
            Error::Io(items) => {
                for (path, _) in items {
                    let what = "modules cannot be imported or included in Knutpunkt programs";
                    diagnostics.push(diagnostic(file.code, src, path, what.to_owned()));
                }
            }
            Error::Lex(items) => {
                for (expected, found) in items {
                    let what = format!("expected {}", expected.as_str());
                    diagnostics.push(diagnostic(file.code, src, found, what));
                }
            }
            Error::Parse(items) => {
                for (expected, found) in items {
                    let what = if found.is_empty() {
                        format!("expected {}, found end of program", expected.as_str())
                    } else {
                        format!("expected {}, found `{}`", expected.as_str(), shorten(found))
                    };
                    diagnostics.push(diagnostic(file.code, src, found, what));
                }
            }
        }
    }
    sorted(diagnostics)
}

/// First token-ish part of a found slice (parse errors report the rest of the program).
fn shorten(found: &str) -> String {
    let s: String = found.chars().take(20).collect();
    if found.chars().count() > 20 {
        format!("{s}…")
    } else {
        s
    }
}

/// Position of `part` (a slice of `code`) in `src`; if `code` is not `src` (an error in
/// a definition of the standard library), the position is the start of the program.
fn diagnostic(code: &str, src: &str, part: &str, message: String) -> Diagnostic {
    let contains = |whole: &str| {
        let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
        p >= w && p + part.len() <= w + whole.len()
    };
    let offset = if std::ptr::eq(code.as_ptr(), src.as_ptr()) && contains(src) {
        jaq_core::load::span(src, part).start
    } else {
        0
    };
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Diagnostic {
        offset,
        line,
        column,
        message,
    }
}

/// Make an error text that may embed message data safe to log: strings longer than
/// 20 characters are cut, personnummer-shaped values masked, the whole text capped.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE + 8));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        // A quoted string: copy at most MAX_VERBATIM characters of it.
        let mut content = String::new();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    content.push(c);
                    if let Some(n) = chars.next() {
                        content.push(n);
                    }
                }
                '"' => {
                    closed = true;
                    break;
                }
                _ => content.push(c),
            }
        }
        out.push('"');
        if content.chars().count() > MAX_VERBATIM {
            out.extend(content.chars().take(8));
            out.push('…');
        } else {
            out.push_str(&content);
        }
        if closed {
            out.push('"');
        }
    }
    // No part of a personnummer in an error text, not even its birth date.
    let masked = crate::core::redact::mask(&out).into_owned();
    if masked.chars().count() > MAX_MESSAGE {
        let mut cut: String = masked.chars().take(MAX_MESSAGE).collect();
        cut.push('…');
        cut
    } else {
        masked
    }
}

/// Convert a `serde_json` value to a jaq value.
pub(crate) fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Val::Num(jaq_json::Num::from_integral(i))
            } else if let Some(u) = n.as_u64() {
                Val::Num(jaq_json::Num::from_integral(u))
            } else {
                Val::Num(jaq_json::Num::Float(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) => Val::utf8_str(s.clone()),
        Value::Array(a) => a.iter().map(to_val).collect(),
        Value::Object(o) => {
            let mut map = jaq_json::Map::with_capacity_and_hasher(o.len(), Default::default());
            for (k, v) in o {
                map.insert(Val::utf8_str(k.clone()), to_val(v));
            }
            Val::obj(map)
        }
    }
}

/// Convert a `serde_json` value to a jaq value, moving its strings instead of copying them.
fn into_val(v: Value) -> Val {
    match v {
        Value::String(s) => Val::utf8_str(s),
        Value::Array(a) => a.into_iter().map(into_val).collect(),
        Value::Object(o) => {
            let mut map = jaq_json::Map::with_capacity_and_hasher(o.len(), Default::default());
            for (k, v) in o {
                map.insert(Val::utf8_str(k), into_val(v));
            }
            Val::obj(map)
        }
        scalar => to_val(&scalar),
    }
}

/// Convert a jaq value to a `serde_json` value. NaN and infinities become `null` (as in
/// jq's JSON output); byte strings and non-UTF-8 text become (lossy) strings; non-string
/// object keys are written as their jq text.
pub(crate) fn from_val(v: &Val) -> Value {
    use jaq_json::Num;
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(Num::Int(i)) => Value::from(*i as i64),
        Val::Num(Num::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Val::Num(n) => {
            let text = n.to_string();
            serde_json::from_str::<serde_json::Number>(&text)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(a) => Value::Array(a.iter().map(from_val).collect()),
        Val::Obj(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                        other => other.to_string(),
                    };
                    (key, from_val(v))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(src: &str, input: Value) -> Result<Vec<Value>, ExprError> {
        Program::compile(src).unwrap().run(&input, &Vars::default())
    }

    #[test]
    fn settings_are_those_in_scope_when_compiled() {
        let outside = Program::compile("$settings").unwrap();
        assert_eq!(
            outside.first(&json!(null), &Vars::default()).unwrap(),
            Some(json!({}))
        );
        let settings = std::sync::Arc::new(json!({"notices": {"greeting": "Hej"}}));
        let inside =
            with_settings(settings, || Program::compile("$settings.notices.greeting")).unwrap();
        assert_eq!(
            inside.first(&json!(null), &Vars::default()).unwrap(),
            Some(json!("Hej"))
        );
        // The scope ends with the closure.
        let after = Program::compile("$settings.notices").unwrap();
        assert_eq!(
            after.first(&json!(null), &Vars::default()).unwrap(),
            Some(json!(null))
        );
    }

    #[test]
    fn maps_objects_and_keeps_order() {
        let out = run("{student: .a, kind: .b}", json!({"b": "start", "a": "x"})).unwrap();
        assert_eq!(out, vec![json!({"student": "x", "kind": "start"})]);
        let text = serde_json::to_string(&out[0]).unwrap();
        assert_eq!(text, r#"{"student":"x","kind":"start"}"#);
    }

    #[test]
    fn all_outputs_first_and_numbers() {
        let p = Program::compile(".[] | . * 2").unwrap();
        let input = json!([1, 2.5, 3]);
        assert_eq!(
            p.run(&input, &Vars::default()).unwrap(),
            vec![json!(2), json!(5.0), json!(6)]
        );
        assert_eq!(p.first(&input, &Vars::default()).unwrap(), Some(json!(2)));
        assert_eq!(p.first(&json!([]), &Vars::default()).unwrap(), None);
        // Large integers survive the round trip.
        assert_eq!(
            run(".", json!(9007199254740993u64)).unwrap(),
            vec![json!(9007199254740993u64)]
        );
        assert_eq!(run(".", json!(-42)).unwrap(), vec![json!(-42)]);
    }

    #[test]
    fn first_owned_gives_what_first_gives() {
        let input = json!({"namn": "Åsa", "n": [1, 2.5, -3, null, true], "o": {"k": "v"}});
        for src in [
            ".",
            "{a: .namn, k: .o.k}",
            ".n[1:]",
            "to_entries | map(.key)",
            "empty",
        ] {
            let p = Program::compile(src).unwrap();
            let vars = Vars::with_headers([("unit", "7")]);
            assert_eq!(
                p.first_owned(input.clone(), &vars).unwrap(),
                p.first(&input, &vars).unwrap(),
                "{src}"
            );
        }
    }

    #[test]
    fn headers_are_available() {
        let p = Program::compile(r#"{unit: $headers.unit, missing: $headers.nope}"#).unwrap();
        let vars = Vars::with_headers([("unit", "Skola 7")]);
        assert_eq!(
            p.run(&json!(null), &vars).unwrap(),
            vec![json!({"unit": "Skola 7", "missing": null})]
        );
        // Default vars: $headers is an empty object.
        assert_eq!(
            Program::compile("$headers")
                .unwrap()
                .run(&json!(1), &Vars::default())
                .unwrap(),
            vec![json!({})]
        );
    }

    #[test]
    fn predicate_semantics() {
        let vars = Vars::default();
        let p = |s: &str, v: Value| Program::compile(s).unwrap().predicate(&v, &vars).unwrap();
        assert!(p(".a == 1", json!({"a": 1})));
        assert!(!p(".a == 1", json!({"a": 2})));
        assert!(!p("empty", json!(1)));
        assert!(!p(".a", json!({"a": null})));
        // Truthy but not `true`: not accepted.
        assert!(!p(".a", json!({"a": 1})));
        // Only the first output counts.
        assert!(p("true, false", json!(1)));
        assert!(!p("false, true", json!(1)));
        // Errors are errors, not false.
        let err = Program::compile(".a + 1")
            .unwrap()
            .predicate(&json!({"a": "x"}), &vars);
        assert!(matches!(err, Err(ExprError::Runtime { .. })));
    }

    #[test]
    fn compile_errors_have_positions() {
        let err = Program::compile(".a |\n  foo(1)").unwrap_err();
        let ExprError::Compile { diagnostics } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(diagnostics.len(), 1);
        assert_eq!((diagnostics[0].line, diagnostics[0].column), (2, 3));
        assert!(diagnostics[0].message.contains("foo/1"), "{err}");
        assert!(err.to_string().contains("line 2, column 3"), "{err}");

        let err = Program::compile("{a: .b").unwrap_err();
        assert!(matches!(err, ExprError::Compile { .. }), "{err:?}");
        assert!(err.to_string().contains("expected"), "{err}");

        let err = Program::compile(".a | $nope").unwrap_err();
        assert!(
            err.to_string().contains("undefined variable `$nope`"),
            "{err}"
        );

        let err = Program::compile(r#"import "x" as x; ."#).unwrap_err();
        assert!(err.to_string().contains("cannot be imported"), "{err}");
    }

    #[test]
    fn runtime_errors_do_not_leak_values() {
        // Fictional personnummer, constructed with a valid Luhn digit.
        let input = json!({"a": "Elev Påhittad Testsson med långt namn", "p": "201001011236"});
        let err = run(".a + 1", input.clone()).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("jq program failed"), "{text}");
        assert!(!text.contains("Testsson"), "{text}");
        let err = run(".p | tonumber | . + {}", input.clone())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("201001011236"), "{err}");
        let err = run(".p - 1", input).unwrap_err().to_string();
        assert!(!err.contains("1236"), "{err}");
        // error(...) works and its text is kept (sanitised).
        let err = run(r#"error("ingen elev")"#, json!(null)).unwrap_err();
        assert!(err.to_string().contains("ingen elev"), "{err}");
    }

    #[test]
    fn outside_world_is_unreachable() {
        assert_eq!(run("env", json!(null)).unwrap(), vec![json!({})]);
        assert!(Program::compile("$ENV").is_err());
        assert!(Program::compile("input").is_err());
        assert_eq!(
            run("debug | stderr | . + 1", json!(1)).unwrap(),
            vec![json!(2)]
        );
        assert!(matches!(
            run("halt", json!(1)),
            Err(ExprError::Runtime { .. })
        ));
        assert!(matches!(
            run(r#""x" | halt_error"#, json!(1)),
            Err(ExprError::Runtime { .. })
        ));
    }

    #[test]
    fn runaway_output_count_is_bounded() {
        let err = run("repeat(1)", json!(null)).unwrap_err();
        assert_eq!(err, ExprError::TooManyOutputs { limit: MAX_OUTPUTS });
        // `first` stops after one output even for an infinite stream.
        let p = Program::compile("repeat(1)").unwrap();
        assert_eq!(
            p.first(&json!(null), &Vars::default()).unwrap(),
            Some(json!(1))
        );
    }

    #[test]
    fn sanitize_cuts_long_strings_and_masks() {
        let s = sanitize(r#"cannot use "abcdefghijklmnopqrstuvwxyz" as number"#);
        assert_eq!(s, r#"cannot use "abcdefgh…" as number"#);
        assert_eq!(sanitize(r#"short "abc\"d" ok"#), r#"short "abc\"d" ok"#);
        assert_eq!(sanitize("n 201001011236"), "n ********-****");
        assert!(sanitize(&"x".repeat(1000)).chars().count() <= MAX_MESSAGE + 1);
    }

    #[test]
    fn program_is_reusable_across_threads() {
        let p = std::sync::Arc::new(Program::compile("{name: .a}").unwrap());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || p.run(&json!({"a": i}), &Vars::default()).unwrap())
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), vec![json!({"name": i})]);
        }
        assert_eq!(p.source(), "{name: .a}");
    }

    /// Timing of a `{name: .a}`-shaped program on a ~7 KB object (run with `--nocapture`).
    #[test]
    fn conversion_cost_on_7kb_object() {
        let mut obj = serde_json::Map::new();
        obj.insert("a".into(), json!("Elev"));
        for i in 0..150 {
            obj.insert(
                format!("field{i:03}"),
                json!({"text": "lorem ipsum dolor", "n": i}),
            );
        }
        let input = Value::Object(obj);
        let size = serde_json::to_string(&input).unwrap().len();
        assert!(size > 6000, "{size}");
        let p = Program::compile("{name: .a, n: .field007.n}").unwrap();
        let vars = Vars::with_headers([("unit", "7")]);
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            let out = p.run(&input, &vars).unwrap();
            assert_eq!(out.len(), 1);
        }
        let per_run = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(to_val(&input));
        }
        let per_conv = t.elapsed() / n;
        eprintln!(
            "input {size} bytes: run {per_run:?}/message, of which input conversion {per_conv:?}"
        );
    }
}
