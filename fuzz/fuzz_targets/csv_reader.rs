//! The CSV reader (`csv_to_json`).
//!
//! Checks: no panic; the result is an array of at most `max_rows` objects; with `columns`,
//! every row has exactly the configured fields found in the header, each of its type
//! (integer: a whole number, decimal: a number, date: `YYYY-MM-DD`, string: trimmed
//! text; or null for an empty cell); without, only the header's names; no error text holds
//! a personnummer-shaped value of the file (decoded or not).
//!
//! A first byte 0x01..=0x08 selects options (separator, encoding, no header, typed
//! columns, a small row limit) and is not part of the file.
#![no_main]

mod common;

use std::collections::BTreeMap;

use knutpunkt::codec::csv::{CellType, Column};
use knutpunkt::codec::{CsvOptions, csv_to_json};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn typed(field: &str, kind: CellType, required: bool) -> Column {
    Column::Typed {
        field: field.into(),
        kind,
        required,
    }
}

fn options(b: u8) -> CsvOptions {
    let mut o = CsvOptions::default();
    if b & 1 != 0 {
        o.separator = ',';
        o.encoding = "utf-8".into();
    }
    if b & 2 != 0 {
        o.header = false;
    }
    if b & 4 != 0 {
        let names = if o.header {
            ["Personnummer", "Belopp", "Datum", "Antal", "Namn"]
        } else {
            ["1", "2", "3", "4", "5"]
        };
        let mut columns = BTreeMap::new();
        columns.insert(names[0].to_string(), Column::Field("civicNo".into()));
        columns.insert(
            names[1].to_string(),
            typed("amount", CellType::Decimal, true),
        );
        columns.insert(names[2].to_string(), typed("date", CellType::Date, false));
        columns.insert(
            names[3].to_string(),
            typed("count", CellType::Integer, false),
        );
        columns.insert(names[4].to_string(), typed("name", CellType::String, false));
        o.columns = columns;
    } else if b & 1 == 0 {
        o.max_rows = 3;
    }
    o
}

fn check_cell(value: &Value, kind: CellType) {
    match (kind, value) {
        (_, Value::Null) => {}
        (CellType::String, Value::String(s)) => {
            assert!(!s.is_empty() && s.trim() == s, "{s:?}")
        }
        (CellType::Integer, Value::Number(n)) => assert!(n.is_i64(), "{n}"),
        (CellType::Decimal, Value::Number(n)) => {
            assert!(n.as_f64().is_some_and(f64::is_finite), "{n}")
        }
        (CellType::Date, Value::String(s)) => {
            assert!(
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
                "not a date: {s:?}"
            )
        }
        (kind, v) => panic!("{kind:?} column gave {v}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (b, file) = common::options_byte(data);
    let o = b.map(options).unwrap_or_default();
    match csv_to_json(file, &o) {
        Ok(Value::Array(rows)) => {
            assert!(rows.len() <= o.max_rows);
            let kinds: BTreeMap<&str, CellType> = o
                .columns
                .values()
                .map(|c| match c {
                    Column::Field(f) => (f.as_str(), CellType::String),
                    Column::Typed { field, kind, .. } => (field.as_str(), *kind),
                })
                .collect();
            let mut fields: Option<Vec<&String>> = None;
            for row in &rows {
                let Value::Object(row) = row else {
                    panic!("a row that is not an object: {row}")
                };
                // Every row has the same fields.
                let keys: Vec<&String> = row.keys().collect();
                match &fields {
                    Some(f) => assert_eq!(f, &keys),
                    None => fields = Some(keys),
                }
                if o.columns.is_empty() {
                    for v in row.values() {
                        check_cell(v, CellType::String);
                    }
                } else {
                    for (k, v) in row {
                        let kind = kinds.get(k.as_str()).copied();
                        assert!(kind.is_some(), "a field not configured: {k}");
                        check_cell(v, kind.unwrap_or_default());
                    }
                    assert!(row.contains_key("civicNo") && row.contains_key("amount"));
                }
            }
        }
        Ok(other) => panic!("not an array: {other}"),
        Err(e) => {
            let text = e.to_string();
            common::assert_no_leak(file, &text, "csv_to_json");
            // The same values as the decoder read them (the file's own encoding).
            let decoded = String::from_utf8_lossy(file);
            common::assert_no_leak(decoded.as_bytes(), &text, "csv_to_json");
        }
    }
});
