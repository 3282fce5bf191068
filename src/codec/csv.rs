//! CSV → JSON: a delimited file (CSN's deliveries, IST's exports) as an array of objects,
//! one per row. Windows-1252 is the default encoding (what Swedish authorities' files use;
//! a UTF-8 byte-order mark switches to UTF-8, and so does a file that is valid UTF-8 with
//! characters beyond ASCII — read as Windows-1252 it would become mojibake, `MÃ¤rta`, and
//! a real Windows-1252 file with Swedish letters is never valid UTF-8), `;` the default separator, and the first row
//! names the columns. With `columns`, each named column becomes a field of the given type
//! (`string`, `integer`, `decimal` with a decimal comma or point and spaces between
//! thousands, `date` as `YYYY-MM-DD`, `YYYYMMDD` or a spreadsheet day number), columns not named are left out and a
//! named column missing from the header is an error; without it every column is kept under
//! its header's name. Empty cells become `null`.
//!
//! Errors name the row (1 = the header) and the column, never the cell's content when it
//! could be a personnummer (the value is masked; so are the header's names, which are data
//! when a file comes without its header).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::{CodecError, CodecErrorKind};

/// Options of the CSV reader (the `csv_to_json` step's spec).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// The field separator, one ASCII character (default `;`).
    #[serde(default = "default_separator")]
    pub separator: char,
    /// The file's encoding: `windows-1252` (default), `utf-8` or another WHATWG label
    /// (`iso-8859-1`). A UTF-8 byte-order mark always means UTF-8, and so does a file that
    /// is valid UTF-8 beyond ASCII (never read as mojibake).
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Does the first row name the columns (default true)? Without a header, columns are
    /// named `1`, `2`, … in `columns`.
    #[serde(default = "yes")]
    pub header: bool,
    /// Column (header name) → field name, or `{ field, type, required }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, Column>,
    /// The most rows read (default 100,000); more is an error, nothing is cut silently.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
}

fn default_separator() -> char {
    ';'
}
fn default_encoding() -> String {
    "windows-1252".into()
}
fn yes() -> bool {
    true
}
fn default_max_rows() -> usize {
    100_000
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            separator: default_separator(),
            encoding: default_encoding(),
            header: true,
            columns: BTreeMap::new(),
            max_rows: default_max_rows(),
        }
    }
}

/// How one column becomes a field.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Column {
    /// Just the field name (a string field).
    Field(String),
    /// Field name, type and whether the column must be there.
    Typed {
        /// The field name.
        field: String,
        /// The value's type (default `string`).
        #[serde(default, rename = "type")]
        kind: CellType,
        /// Must the header have this column (default true)?
        #[serde(default = "yes")]
        required: bool,
    },
}

/// The type of a column's values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CellType {
    /// Text as it is (trimmed).
    #[default]
    String,
    /// A whole number.
    Integer,
    /// A decimal number: `1190,50`, `1 190.50`.
    Decimal,
    /// A date, written `YYYY-MM-DD` or `YYYYMMDD`; given as `YYYY-MM-DD`.
    Date,
}

impl Column {
    fn parts(&self) -> (&str, CellType, bool) {
        match self {
            Column::Field(f) => (f, CellType::String, true),
            Column::Typed {
                field,
                kind,
                required,
            } => (field, *kind, *required),
        }
    }
}

/// The columns whose field name is a type's name (`belopp: decimal`): a field named
/// `decimal`, almost surely meant as `{ field: belopp, type: decimal }`. Each as (column,
/// the mistake, the fix).
pub fn type_names_as_fields(columns: &BTreeMap<String, Column>) -> Vec<(String, String, String)> {
    // Type names nobody gives a field (`date`, `number` and `text` may well be field names).
    const TYPE_NAMES: &[&str] = &[
        "string", "integer", "decimal", "int", "float", "boolean", "bool",
    ];
    columns
        .iter()
        .filter_map(|(column, c)| match c {
            Column::Field(f) if TYPE_NAMES.contains(&f.to_ascii_lowercase().as_str()) => Some((
                column.clone(),
                format!(
                    "column `{column}` becomes a field named `{f}`: a column maps to a field \
                     name, and `{f}` reads like a type"
                ),
                format!(
                    "`{column}: {{ field: <name>, type: {} }}` to give the column a type (or \
                     `{column}: {{ field: {f} }}` if the field really is named `{f}`)",
                    match f.to_ascii_lowercase().as_str() {
                        "float" => "decimal",
                        "int" => "integer",
                        other if ["integer", "decimal"].contains(&other) => other,
                        _ => "string",
                    }
                ),
            )),
            _ => None,
        })
        .collect()
}

/// Check the options: a one-byte separator and a known encoding.
pub fn check_options(o: &CsvOptions) -> Result<(), String> {
    if !o.separator.is_ascii() {
        return Err(format!(
            "separator `{}` must be one ASCII character",
            o.separator
        ));
    }
    if encoding_rs::Encoding::for_label(o.encoding.as_bytes()).is_none() {
        return Err(format!(
            "encoding `{}` is unknown; use windows-1252, utf-8 or iso-8859-1",
            o.encoding
        ));
    }
    Ok(())
}

fn err(kind: CodecErrorKind, message: String) -> CodecError {
    CodecError::new(kind, message)
}

/// The cell as shown in an error: masked, and cut short (and masked again: cutting a
/// longer digit run can leave a personnummer-shaped one).
fn shown(cell: &str) -> String {
    let masked = crate::core::redact::mask(cell);
    let cut: String = masked.chars().take(40).collect();
    crate::core::redact::mask(&cut).into_owned()
}

fn typed(cell: &str, kind: CellType) -> Result<Value, &'static str> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(Value::Null);
    }
    match kind {
        CellType::String => Ok(Value::String(cell.to_string())),
        CellType::Integer => {
            let digits: String = cell.chars().filter(|c| !c.is_whitespace()).collect();
            digits
                .parse::<i64>()
                .map(|n| Value::Number(n.into()))
                .map_err(|_| "is not a whole number")
        }
        CellType::Decimal => {
            let text: String = cell
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
                .map(|c| if c == ',' { '.' } else { c })
                .collect();
            text.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or("is not a decimal number")
        }
        CellType::Date => {
            let d = chrono::NaiveDate::parse_from_str(cell, "%Y-%m-%d")
                .or_else(|_| chrono::NaiveDate::parse_from_str(cell, "%Y%m%d"))
                .ok()
                .or_else(|| excel_serial_date(cell))
                .ok_or("is not a date (YYYY-MM-DD, YYYYMMDD or a spreadsheet day number)")?;
            Ok(Value::String(d.format("%Y-%m-%d").to_string()))
        }
    }
}

/// A spreadsheet's day number (1900 date system: day 1 is 1900-01-01, counted from
/// 1899-12-30 because of the system's phantom 1900-02-29), as Excel writes dates. Five
/// digits at most, so `YYYYMMDD` is never taken for one.
fn excel_serial_date(cell: &str) -> Option<chrono::NaiveDate> {
    let days = cell.strip_suffix(".0").unwrap_or(cell);
    if days.is_empty() || days.len() > 5 || !days.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = days.parse().ok()?;
    chrono::NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_signed(chrono::Duration::days(n))
}

/// A text file's bytes as text: UTF-8 when it starts with a UTF-8 byte-order mark, or when
/// `encoding` is a one-byte encoding but the bytes are valid UTF-8 beyond ASCII (a UTF-8
/// file without a mark: decoding it as Windows-1252 would turn every å, ä, ö into two
/// wrong characters without an error, while Windows-1252 text with such letters is never
/// valid UTF-8); else in `encoding` (a WHATWG label; unknown labels fall back to
/// Windows-1252, which [`check_options`] refuses earlier). Undecodable bytes are an
/// error, never replaced.
pub(crate) fn decode_text(bytes: &[u8], encoding: &str) -> Result<String, CodecError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest).map(str::to_string).map_err(|_| {
            err(
                CodecErrorKind::Encoding,
                "the file has a UTF-8 byte-order mark but is not UTF-8".into(),
            )
        });
    }
    let enc =
        encoding_rs::Encoding::for_label(encoding.as_bytes()).unwrap_or(encoding_rs::WINDOWS_1252);
    if enc.is_single_byte()
        && !bytes.is_ascii()
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return Ok(text.to_string());
    }
    let (text, had_errors) = enc.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(err(
            CodecErrorKind::Encoding,
            format!("the file does not decode as {}", enc.name()),
        ));
    }
    Ok(text.into_owned())
}

/// Read `bytes` as CSV into a JSON array of row objects.
pub fn csv_to_json(bytes: &[u8], o: &CsvOptions) -> Result<Value, CodecError> {
    check_options(o).map_err(|e| err(CodecErrorKind::Unsupported, e))?;
    let text = decode_text(bytes, &o.encoding)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(o.separator as u8)
        .has_headers(false)
        .flexible(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let names: Vec<String> = if o.header {
        match records.next() {
            Some(Ok(h)) => h.iter().map(|s| s.trim().to_string()).collect(),
            Some(Err(e)) => {
                return Err(err(
                    CodecErrorKind::Malformed,
                    format!("row 1: {}", csv_error(&e)),
                ));
            }
            None => return Ok(Value::Array(vec![])),
        }
    } else {
        Vec::new()
    };
    let first = if o.header { 2 } else { 1 };
    let rows = records.enumerate().map(|(n, record)| {
        let row = n + first;
        record
            .map(|r| (row, r.iter().map(str::to_string).collect::<Vec<_>>()))
            .map_err(|e| {
                err(
                    CodecErrorKind::Malformed,
                    format!("row {row}: {}", csv_error(&e)),
                )
            })
    });
    map_rows(&names, rows, o.header, &o.columns, o.max_rows)
}

/// A table (the header's names, then numbered rows of cells as text) as JSON row objects,
/// by `columns` (see the module doc). Shared by the CSV, Excel and fixed-width readers.
pub(crate) fn map_rows(
    names: &[String],
    rows: impl Iterator<Item = Result<(usize, Vec<String>), CodecError>>,
    header: bool,
    columns: &BTreeMap<String, Column>,
    max_rows: usize,
) -> Result<Value, CodecError> {
    // (index, field, type) of each column kept.
    let mut plan: Vec<(usize, String, CellType)> = Vec::new();
    if columns.is_empty() {
        plan = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.clone(), CellType::String))
            .collect();
    } else {
        for (column, spec) in columns {
            let (field, kind, required) = spec.parts();
            let at = if header {
                names.iter().position(|n| n == column)
            } else {
                column
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(|n| n - 1)
            };
            match at {
                Some(i) => plan.push((i, field.to_string(), kind)),
                None if required => {
                    return Err(err(
                        CodecErrorKind::Malformed,
                        format!(
                            "the column `{column}` is missing{}",
                            if header {
                                // A file sent without its header has data there.
                                let shown_names: Vec<String> =
                                    names.iter().map(|n| shown(n)).collect();
                                format!(" from the header (it has: {})", shown_names.join(", "))
                            } else {
                                String::new()
                            }
                        ),
                    ));
                }
                None => {}
            }
        }
    }
    let mut out = Vec::new();
    for record in rows {
        let (row, cells) = record?;
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if out.len() >= max_rows {
            return Err(err(
                CodecErrorKind::TooLarge,
                format!("more than {max_rows} rows"),
            ));
        }
        let mut obj = Map::new();
        for (i, field, kind) in &plan {
            let cell = cells.get(*i).map(String::as_str).unwrap_or("");
            let value = typed(cell, *kind).map_err(|why| {
                let column = names
                    .get(*i)
                    .cloned()
                    .unwrap_or_else(|| (i + 1).to_string());
                err(
                    CodecErrorKind::InvalidValue,
                    format!("row {row}, column `{column}`: `{}` {why}", shown(cell)),
                )
            })?;
            obj.insert(field.clone(), value);
        }
        out.push(Value::Object(obj));
    }
    Ok(Value::Array(out))
}

/// The csv crate's error without the record's content.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        _ => "not valid CSV".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w1252(s: &str) -> Vec<u8> {
        encoding_rs::WINDOWS_1252.encode(s).0.into_owned()
    }

    fn opts(columns: serde_json::Value) -> CsvOptions {
        serde_json::from_value(json!({ "columns": columns })).unwrap()
    }

    #[test]
    fn windows_1252_with_header_mapping_and_types() {
        let file = w1252(
            "Personnummer;Efternamn;Förnamn;Belopp per månad;Beslutsdatum;Skolort\r\n\
             200908183421;Berg;Ebba;1 190,50;20260915;Härnösand\r\n\r\n",
        );
        let o = opts(json!({
            "Personnummer": "civicNo",
            "Förnamn": "givenName",
            "Belopp per månad": {"field": "amount", "type": "decimal"},
            "Beslutsdatum": {"field": "decided", "type": "date"},
            "Skolort": "town",
        }));
        let rows = csv_to_json(&file, &o).unwrap();
        assert_eq!(
            rows,
            json!([{"civicNo": "200908183421", "givenName": "Ebba", "amount": 1190.5,
                    "decided": "2026-09-15", "town": "Härnösand"}])
        );
        // Without columns: every column under its header's name.
        let all = csv_to_json(&file, &CsvOptions::default()).unwrap();
        assert_eq!(all[0]["Efternamn"], "Berg");
        assert_eq!(all[0]["Förnamn"], "Ebba");
    }

    #[test]
    fn utf8_with_a_byte_order_mark_and_other_separators() {
        let mut file = b"\xEF\xBB\xBF".to_vec();
        file.extend_from_slice("namn,ort\nÅsa,Övik\n".as_bytes());
        let o = CsvOptions {
            separator: ',',
            ..Default::default()
        };
        assert_eq!(
            csv_to_json(&file, &o).unwrap(),
            json!([{"namn": "Åsa", "ort": "Övik"}])
        );
    }

    /// A UTF-8 file without a byte-order mark, read with the default Windows-1252, is read
    /// as UTF-8: `Märta`, never `MÃ¤rta`. A Windows-1252 file with the same letters still
    /// reads as Windows-1252, and ASCII is the same either way.
    #[test]
    fn utf8_without_a_byte_order_mark_is_never_mojibake() {
        let o = CsvOptions::default();
        let utf8 = "Förnamn;Skolort\nMärta;Örnsköldsvik\n".as_bytes();
        assert_eq!(
            csv_to_json(utf8, &o).unwrap(),
            json!([{"Förnamn": "Märta", "Skolort": "Örnsköldsvik"}])
        );
        assert_eq!(
            csv_to_json(&w1252("Förnamn;Skolort\nMärta;Örnsköldsvik\n"), &o).unwrap(),
            json!([{"Förnamn": "Märta", "Skolort": "Örnsköldsvik"}])
        );
        let latin1 = CsvOptions {
            encoding: "iso-8859-1".into(),
            ..Default::default()
        };
        assert_eq!(csv_to_json(utf8, &latin1).unwrap()[0]["Förnamn"], "Märta");
        assert_eq!(
            csv_to_json(b"a;b\n1;2\n", &o).unwrap(),
            json!([{"a": "1", "b": "2"}])
        );
    }

    #[test]
    fn errors_name_row_and_column_never_a_personnummer() {
        let o = opts(json!({"Pnr": {"field": "n", "type": "integer"}}));
        let e = csv_to_json(&w1252("Pnr;X\r\n20130412-2383;1\r\n"), &o).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::InvalidValue);
        assert!(
            e.message().contains("row 2, column `Pnr`"),
            "{}",
            e.message()
        );
        assert!(!e.message().contains("2383"), "masked: {}", e.message());
        let missing = csv_to_json(&w1252("A;B\r\n1;2\r\n"), &opts(json!({"C": "c"}))).unwrap_err();
        assert!(
            missing.message().contains("`C` is missing"),
            "{}",
            missing.message()
        );
        // A file without its header: the names listed are data, and masked.
        let headless = csv_to_json(
            &w1252("20130412-2383;Berg\r\n"),
            &opts(json!({"Personnummer": "n"})),
        )
        .unwrap_err();
        assert!(
            headless.message().contains("`Personnummer` is missing"),
            "{}",
            headless.message()
        );
        assert!(
            !headless.message().contains("2383"),
            "masked: {}",
            headless.message()
        );
        // Found by fuzzing: a long digit run cut at 40 characters left ten digits.
        let cell = format!("{}2013041223831234", "x".repeat(30));
        let cut = csv_to_json(&w1252(&format!("Pnr\r\n{cell}\r\n")), &o).unwrap_err();
        assert!(!cut.message().contains("2013041223"), "{}", cut.message());
        let ragged = csv_to_json(&w1252("A;B\r\n1;2;3\r\n"), &CsvOptions::default()).unwrap_err();
        assert!(
            ragged
                .message()
                .contains("row 2: 3 fields where the header has 2"),
            "{}",
            ragged.message()
        );
        let too_many = CsvOptions {
            max_rows: 1,
            ..Default::default()
        };
        assert_eq!(
            csv_to_json(&w1252("A\r\n1\r\n2\r\n"), &too_many)
                .unwrap_err()
                .kind(),
            CodecErrorKind::TooLarge
        );
        let bad_utf8 = CsvOptions {
            encoding: "utf-8".into(),
            ..Default::default()
        };
        assert_eq!(
            csv_to_json(&w1252("Ö\r\n"), &bad_utf8).unwrap_err().kind(),
            CodecErrorKind::Encoding
        );
    }
}
