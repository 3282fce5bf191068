//! Excel (`.xlsx`, `.xls`, also `.xlsb` and `.ods`) → JSON: one sheet as an array of row
//! objects, with the same `columns` mapping and types as CSV ([`super::csv`]). IST exports
//! placements this way. Read with calamine; the file is never written or executed (no
//! macros, formulas give their cached values).
//!
//! Cells become text first: numbers as written (`20` not `20.0`), dates as their day
//! number (so a `date` column gives `YYYY-MM-DD`), booleans `true`/`false`; an error cell
//! (`#N/A`) is an error naming its row and column.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, Reader};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::csv::{Column, map_rows};
use super::{CodecError, CodecErrorKind};

/// Options of the Excel reader (the `excel_to_json` step's spec).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExcelOptions {
    /// The sheet by name (default: the first sheet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// Does the first row name the columns (default true)?
    #[serde(default = "yes")]
    pub header: bool,
    /// Column (header name) → field name, or `{ field, type, required }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, Column>,
    /// The most rows read (default 100,000).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
}

fn yes() -> bool {
    true
}
fn default_max_rows() -> usize {
    100_000
}

fn err(kind: CodecErrorKind, message: String) -> CodecError {
    CodecError::new(kind, message)
}

/// A cell as text (see the module doc); `Err` for an error cell.
fn text(cell: &Data) -> Result<String, String> {
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(n) => n.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => format!("{}", d.as_f64().floor() as i64),
        Data::Error(e) => return Err(format!("{e:?}")),
    })
}

/// Read a workbook's sheet into a JSON array of row objects.
pub fn excel_to_json(bytes: &[u8], o: &ExcelOptions) -> Result<Value, CodecError> {
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|_| {
        err(
            CodecErrorKind::Malformed,
            "not a workbook calamine can read (.xlsx, .xls, .xlsb, .ods)".into(),
        )
    })?;
    let names = book.sheet_names();
    let sheet = match &o.sheet {
        Some(s) if names.contains(s) => s.clone(),
        Some(s) => {
            return Err(err(
                CodecErrorKind::Malformed,
                format!("no sheet `{s}`; the workbook has: {}", names.join(", ")),
            ));
        }
        None => names.first().cloned().ok_or_else(|| {
            err(
                CodecErrorKind::Malformed,
                "the workbook has no sheet".into(),
            )
        })?,
    };
    let range = book.worksheet_range(&sheet).map_err(|_| {
        err(
            CodecErrorKind::Malformed,
            format!("sheet `{sheet}` cannot be read"),
        )
    })?;
    let first_row = range.start().map(|(r, _)| r as usize + 1).unwrap_or(1);
    let mut rows = range.rows().enumerate().map(move |(i, cells)| {
        let row = first_row + i;
        let mut out = Vec::with_capacity(cells.len());
        for (c, cell) in cells.iter().enumerate() {
            out.push(text(cell).map_err(|e| {
                err(
                    CodecErrorKind::InvalidValue,
                    format!("row {row}, column {}: an error cell ({e})", c + 1),
                )
            })?);
        }
        Ok((row, out))
    });
    let header: Vec<String> = if o.header {
        match rows.next() {
            Some(h) => h?.1.into_iter().map(|s| s.trim().to_string()).collect(),
            None => return Ok(Value::Array(vec![])),
        }
    } else {
        Vec::new()
    };
    map_rows(&header, rows, o.header, &o.columns, o.max_rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `tests/fixtures/ist/placeringar.xlsx`: an IST-like placement export (fictional).
    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ist/placeringar.xlsx"
        ))
        .unwrap()
    }

    #[test]
    fn a_placement_export_becomes_typed_rows() {
        let o: ExcelOptions = serde_json::from_value(json!({
            "columns": {
                "Personnummer": "civicNo",
                "Förnamn": "givenName",
                "Skolenhetskod": "schoolUnitCode",
                "Omfattning (h/v)": {"field": "hoursPerWeek", "type": "integer"},
                "Startdatum": {"field": "startDate", "type": "date"},
            }
        }))
        .unwrap();
        let rows = excel_to_json(&fixture(), &o).unwrap();
        assert_eq!(
            rows,
            json!([
                {"civicNo": "201304122383", "givenName": "Märta", "schoolUnitCode": "38120001",
                 "hoursPerWeek": 20, "startDate": "2026-08-17"},
                {"civicNo": "201602201319", "givenName": "Leo", "schoolUnitCode": "38120002",
                 "hoursPerWeek": 40, "startDate": "2026-12-01"},
            ])
        );
        let wrong = ExcelOptions {
            sheet: Some("Blad9".into()),
            ..Default::default()
        };
        let e = excel_to_json(&fixture(), &wrong).unwrap_err();
        assert!(e.message().contains("no sheet `Blad9`"), "{}", e.message());
        let e = excel_to_json(b"not a workbook", &ExcelOptions::default()).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Malformed);
    }
}
