//! Native implementations of jq built-ins that jaq's standard library defines in jq itself:
//! `to_entries`, `from_entries` and `type`. Mappings lean on them (`with_entries(f)` is
//! `to_entries | map(f) | from_entries`), and in jq each costs an object per entry, a
//! destructuring bind and, for `from_entries`, an object addition per entry; natively each
//! is one pass. Their jq definitions are left out when a program is compiled
//! ([`replaces`]), so `with_entries`, which stays jq-defined, calls these.
//!
//! Each gives what its jq definition gives, on every input (the unit tests compare both on
//! objects, arrays, odd keys and wrong types); only the wording of an error may differ.

use jaq_core::ValT;
use jaq_core::box_iter::box_once;
use jaq_core::native::{Fun, bome, run, v};
use jaq_core::{Error, ValXs};
use jaq_json::Val;

use super::Data;

/// The (name, arity) of the jq definitions these replace.
const REPLACED: [(&str, usize); 3] = [("to_entries", 0), ("from_entries", 0), ("type", 0)];

/// Whether the standard library's definition `name/arity` is replaced by a native here.
pub(crate) fn replaces(name: &str, arity: usize) -> bool {
    REPLACED.contains(&(name, arity))
}

/// The native functions of this module, ready for the compiler.
pub(crate) fn funs() -> impl Iterator<Item = Fun<Data>> {
    let funs: [jaq_core::native::Filter<jaq_core::RunPtr<Data>>; 3] = [
        ("to_entries", v(0), |cv| to_entries(cv.1)),
        ("from_entries", v(0), |cv| bome(from_entries(cv.1))),
        ("type", v(0), |cv| {
            box_once(Ok(Val::utf8_str(jq_type(&cv.1))))
        }),
    ];
    funs.into_iter().map(run::<Data>)
}

/// jq's name of a value's type (`def type` of jaq's standard library: byte strings, which
/// order with text strings, are `"string"` too).
fn jq_type(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Num(_) => "number",
        Val::BStr(_) | Val::TStr(_) => "string",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
    }
}

/// `[key_values[] as [$key, $value] | {$key, $value}]`: an object's entries in order, or an
/// array's with their indices as keys; an error for any other value.
fn to_entries<'a>(input: Val) -> ValXs<'a, Val> {
    let key = Val::utf8_str("key");
    let value = Val::utf8_str("value");
    let mut out = Vec::new();
    for kv in input.key_values() {
        match kv {
            Ok((k, v)) => {
                let mut entry = jaq_json::Map::default();
                entry.insert(key.clone(), k);
                entry.insert(value.clone(), v);
                out.push(Val::obj(entry));
            }
            Err(e) => return box_once(Err(e.into())),
        }
    }
    box_once(Ok(Val::Arr(out.into())))
}

/// `reduce (.[] | {(.key): .value}) as $x ({}; . + $x)`: an object of the entries' keys and
/// values, a later entry's value replacing an earlier one's under the same key (which keeps
/// its place).
fn from_entries(input: Val) -> Result<Val, Error<Val>> {
    let key = Val::utf8_str("key");
    let value = Val::utf8_str("value");
    let mut out = jaq_json::Map::default();
    for entry in input.values() {
        let entry = entry?;
        let k = entry.clone().index(&key)?;
        let v = entry.index(&value)?;
        out.insert(k, v);
    }
    Ok(Val::obj(out))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::expr::{Program, Vars};

    /// Runs `body` with the natives and with the jq definitions (by the names the natives
    /// do not take) and compares outputs, or that both fail.
    fn same(body: &str, input: Value) {
        let native = Program::compile(body).unwrap();
        let jq = Program::compile(&format!(
            "def to_entries_jq: [key_values[] as [$key, $value] | {{ $key, $value }}];
             def from_entries_jq: reduce (.[] | {{ (.key): .value }}) as $x ({{}}; . + $x);
             def with_entries_jq(f): to_entries_jq | map(f) | from_entries_jq;
             def type_jq: if . == null then \"null\" elif isboolean then \"boolean\"
               elif . < \"\" then \"number\" elif . < [] then \"string\" elif . < {{}} then \"array\"
               else \"object\" end;
             {}",
            body.replace("with_entries", "with_entries_jq")
                .replace("to_entries", "to_entries_jq")
                .replace("from_entries", "from_entries_jq")
                .replace("type", "type_jq")
        ))
        .unwrap();
        let vars = Vars::default();
        match (native.run(&input, &vars), jq.run(&input, &vars)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{body} on {input}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{body} on {input}: native {a:?}, jq {b:?}"),
        }
    }

    #[test]
    fn natives_give_what_the_jq_definitions_give() {
        let inputs = [
            json!({"b": 1, "a": {"Value": "x"}, "c": [1, 2]}),
            json!({}),
            json!([]),
            json!(["x", {"y": 1}]),
            json!([{"key": "a", "value": 1}, {"key": "a", "value": 2}, {"key": "b"}]),
            json!([{"key": null, "value": 1}]),
            json!([{"key": 1, "value": 1}]),
            json!({"p": {"key": "k", "value": "v"}}),
            json!("text"),
            json!(12),
            json!(null),
            json!(true),
            json!([1]),
            json!(["s"]),
        ];
        for input in inputs {
            for body in [
                "to_entries",
                "from_entries",
                "type",
                "[.[]? | type]",
                "to_entries | from_entries",
                "with_entries(.value |= (if type == \"object\" and has(\"Value\") then .Value else . end))",
                "with_entries(.key |= ascii_upcase)",
            ] {
                same(body, input.clone());
            }
        }
    }

    #[test]
    fn with_entries_keeps_the_order_and_the_last_value() {
        let p = Program::compile("with_entries(.value += 1)").unwrap();
        let out = p
            .first(&json!({"z": 1, "a": 2, "m": 3}), &Vars::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"z":2,"a":3,"m":4}"#
        );
        let p = Program::compile("from_entries").unwrap();
        let out = p
            .first(
                &json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "a", "value": 3}]),
                &Vars::default(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(serde_json::to_string(&out).unwrap(), r#"{"a":3,"b":2}"#);
    }
}
