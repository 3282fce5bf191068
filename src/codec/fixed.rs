//! Fixed-width text → JSON: each line a record, each field at a fixed position (as older
//! register extracts are delivered). Positions count characters from 1 after decoding
//! (Windows-1252 by default), values are trimmed and typed as in CSV ([`super::csv`]).
//!
//! ```yaml
//! - fixed_to_json:
//!     skip_lines: 1          # a header or label line
//!     fields:
//!       - { field: civicNo, start: 1, length: 12 }
//!       - { field: amount, start: 13, length: 9, type: decimal }
//! ```

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::csv::{CellType, Column, decode_text, map_rows};
use super::{CodecError, CodecErrorKind};

/// Options of the fixed-width reader (the `fixed_to_json` step's spec).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixedOptions {
    /// The file's encoding (default `windows-1252`; a UTF-8 byte-order mark means UTF-8,
    /// and so does a file that is valid UTF-8 beyond ASCII).
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Lines to skip at the start (default 0).
    #[serde(default)]
    pub skip_lines: usize,
    /// The fields, by position.
    pub fields: Vec<FixedField>,
    /// The most records read (default 100,000).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
}

fn default_encoding() -> String {
    "windows-1252".into()
}
fn default_max_rows() -> usize {
    100_000
}

/// One field of a fixed-width record.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixedField {
    /// The field name in the JSON row.
    pub field: String,
    /// The first character, counted from 1.
    pub start: usize,
    /// How many characters.
    pub length: usize,
    /// The value's type (default `string`).
    #[serde(default, rename = "type")]
    pub kind: CellType,
}

/// Check the options: fields from position 1 with a length, a known encoding.
pub fn check_options(o: &FixedOptions) -> Result<(), String> {
    if o.fields.is_empty() {
        return Err("fields: at least one".into());
    }
    if let Some(f) = o.fields.iter().find(|f| f.start == 0 || f.length == 0) {
        return Err(format!(
            "field `{}`: start counts from 1 and length must be at least 1",
            f.field
        ));
    }
    if encoding_rs::Encoding::for_label(o.encoding.as_bytes()).is_none() {
        return Err(format!("encoding `{}` is unknown", o.encoding));
    }
    Ok(())
}

/// Read fixed-width records into a JSON array of row objects.
pub fn fixed_to_json(bytes: &[u8], o: &FixedOptions) -> Result<Value, CodecError> {
    check_options(o).map_err(|e| CodecError::new(CodecErrorKind::Unsupported, e))?;
    let text = decode_text(bytes, &o.encoding)?;
    let names: Vec<String> = o.fields.iter().map(|f| f.field.clone()).collect();
    let columns: BTreeMap<String, Column> = o
        .fields
        .iter()
        .map(|f| {
            (
                f.field.clone(),
                Column::Typed {
                    field: f.field.clone(),
                    kind: f.kind,
                    required: true,
                },
            )
        })
        .collect();
    let rows = text
        .lines()
        .enumerate()
        .skip(o.skip_lines)
        .map(|(i, line)| {
            let chars: Vec<char> = line.chars().collect();
            let cells = o
                .fields
                .iter()
                .map(|f| {
                    let from = (f.start - 1).min(chars.len());
                    let to = (from + f.length).min(chars.len());
                    chars[from..to].iter().collect::<String>()
                })
                .collect();
            Ok((i + 1, cells))
        });
    map_rows(&names, rows, true, &columns, o.max_rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_encoding_and_types() {
        let o: FixedOptions = serde_json::from_value(json!({
            "skip_lines": 1,
            "fields": [
                {"field": "civicNo", "start": 1, "length": 12},
                {"field": "name", "start": 13, "length": 10},
                {"field": "amount", "start": 23, "length": 8, "type": "decimal"},
            ]
        }))
        .unwrap();
        let text = "PNR         NAMN      BELOPP\r\n200908183421Åsa Ö      1190,50\r\n\r\n";
        let bytes = encoding_rs::WINDOWS_1252.encode(text).0.into_owned();
        let rows = fixed_to_json(&bytes, &o).unwrap();
        assert_eq!(
            rows,
            json!([{"civicNo": "200908183421", "name": "Åsa Ö", "amount": 1190.5}])
        );
        let bad = encoding_rs::WINDOWS_1252
            .encode("PNR\r\n200908183421Åsa Ö      tusen\r\n")
            .0
            .into_owned();
        let e = fixed_to_json(&bad, &o).unwrap_err();
        assert!(
            e.message().contains("row 2, column `amount`"),
            "{}",
            e.message()
        );
        let broken: FixedOptions =
            serde_json::from_value(json!({"fields": [{"field": "x", "start": 0, "length": 3}]}))
                .unwrap();
        assert!(check_options(&broken).is_err());
    }
}
