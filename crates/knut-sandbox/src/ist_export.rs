//! IST Admin's placement export, as the elevregister simulation writes it: `GET
//! /sandbox/elevregister/_export/placeringar.xlsx` answers an Excel workbook (.xlsx) with
//! one sheet, `Placeringar`, and one row per open fritidshem placement of the register (SS
//! 12000 school type `FTH`: not ended, or ending today or later). The columns, in this
//! order ([`COLUMNS`]):
//!
//! | column | value |
//! |---|---|
//! | `Personnummer` | the child's, 12 digits |
//! | `Förnamn`, `Efternamn` | the child's |
//! | `Skolenhetskod` | the school unit's code |
//! | `Placeringsform` | `Fritidshem` |
//! | `Omfattning (h/v)` | a number: `maxWeeklyScheduleHours` (empty when unknown) |
//! | `Startdatum` | an Excel date cell (a serial day number, number format `yyyy-mm-dd`) |
//! | `Placeringsägare` | the personnummer (12 digits) of the placement's `owners` — the guardians the place is registered on — separated by `", "`; empty when none |
//!
//! The workbook is the minimal SpreadsheetML that IST's file and
//! `tests/fixtures/ist/placeringar.xlsx` have: inline strings (no shared-strings part), a
//! styles part with one date format, no formulas (a value that begins with `=` is text).
//! Nothing is logged of it: it holds every placed child's personnummer.

use std::io::{Cursor, Write};

use chrono::NaiveDate;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

use crate::seed::Population;

/// The content type of an .xlsx workbook.
pub const CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The sheet's name.
pub const SHEET: &str = "Placeringar";

/// The columns, in order.
pub const COLUMNS: [&str; 8] = [
    "Personnummer",
    "Förnamn",
    "Efternamn",
    "Skolenhetskod",
    "Placeringsform",
    "Omfattning (h/v)",
    "Startdatum",
    "Placeringsägare",
];

/// One row of the export.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The child's personnummer (12 digits).
    pub personnummer: String,
    /// The child's given name.
    pub fornamn: String,
    /// The child's family name.
    pub efternamn: String,
    /// The school unit's code.
    pub skolenhetskod: String,
    /// `Fritidshem`.
    pub placeringsform: String,
    /// Hours a week, if known.
    pub omfattning: Option<f64>,
    /// The placement's first day.
    pub startdatum: NaiveDate,
    /// The owners' personnummer (12 digits each).
    pub agare: Vec<String>,
}

/// The rows of the register's open fritidshem placements on `today`, in the register's
/// order.
pub fn rows(pop: &Population, today: NaiveDate) -> Vec<Row> {
    pop.placements
        .iter()
        .filter(|p| p.school_type == "FTH" && p.end_date.is_none_or(|end| end >= today))
        .filter_map(|p| {
            let child = pop.person(p.child)?;
            let unit = pop.units.iter().find(|u| u.id == p.placed_at)?;
            Some(Row {
                personnummer: child.civic_no.clone(),
                fornamn: child.given_name.clone(),
                efternamn: child.family_name.clone(),
                skolenhetskod: unit.school_unit_code.clone(),
                placeringsform: "Fritidshem".into(),
                omfattning: p.max_weekly_schedule_hours,
                startdatum: p.start_date,
                agare: p
                    .owners
                    .iter()
                    .filter_map(|o| pop.person(*o))
                    .map(|o| o.civic_no.clone())
                    .collect(),
            })
        })
        .collect()
}

/// Excel's serial day number of a date (days since 1899-12-30, the 1900 date system).
fn serial(day: NaiveDate) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
    (day - epoch).num_days()
}

/// Text for an XML element.
fn escape(s: &str) -> String {
    s.chars()
        // Characters XML 1.0 cannot hold are left out (a name never has them).
        .filter(|&c| matches!(c, '\t' | '\n' | '\r') || c >= ' ')
        .fold(String::with_capacity(s.len()), |mut out, c| {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                c => out.push(c),
            }
            out
        })
}

/// The column letter of index `i` (0 → A; the export has eight columns).
fn column(i: usize) -> char {
    char::from(b'A' + u8::try_from(i % 26).unwrap_or(0))
}

fn text_cell(out: &mut String, reference: &str, text: &str) {
    out.push_str(&format!(
        "<c r=\"{reference}\" t=\"inlineStr\"><is><t xml:space=\"preserve\">{}</t></is></c>",
        escape(text)
    ));
}

/// A number as a cell value: whole numbers without a decimal part (`40`, not `40.0`).
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The worksheet part.
fn sheet(rows: &[Row]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
         <worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>",
    );
    out.push_str("<row r=\"1\">");
    for (i, name) in COLUMNS.iter().enumerate() {
        text_cell(&mut out, &format!("{}1", column(i)), name);
    }
    out.push_str("</row>");
    for (n, row) in rows.iter().enumerate() {
        let r = n + 2;
        out.push_str(&format!("<row r=\"{r}\">"));
        text_cell(&mut out, &format!("A{r}"), &row.personnummer);
        text_cell(&mut out, &format!("B{r}"), &row.fornamn);
        text_cell(&mut out, &format!("C{r}"), &row.efternamn);
        text_cell(&mut out, &format!("D{r}"), &row.skolenhetskod);
        text_cell(&mut out, &format!("E{r}"), &row.placeringsform);
        if let Some(hours) = row.omfattning {
            out.push_str(&format!("<c r=\"F{r}\"><v>{}</v></c>", number(hours)));
        }
        // Style 1: the date format of styles.xml.
        out.push_str(&format!(
            "<c r=\"G{r}\" s=\"1\"><v>{}</v></c>",
            serial(row.startdatum)
        ));
        text_cell(&mut out, &format!("H{r}"), &row.agare.join(", "));
        out.push_str("</row>");
    }
    out.push_str("</sheetData></worksheet>");
    out
}

const CONTENT_TYPES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
<Default Extension=\"xml\" ContentType=\"application/xml\"/>\
<Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
<Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
<Override PartName=\"/xl/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>\
</Types>";

const ROOT_RELS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/>\
</Relationships>";

const WORKBOOK_RELS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet1.xml\"/>\
<Relationship Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" Target=\"styles.xml\"/>\
</Relationships>";

/// One number format, `yyyy-mm-dd` (a custom format: 164 is the first id of those).
const STYLES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<styleSheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">\
<numFmts count=\"1\"><numFmt numFmtId=\"164\" formatCode=\"yyyy\\-mm\\-dd\"/></numFmts>\
<fonts count=\"1\"><font/></fonts><fills count=\"1\"><fill/></fills><borders count=\"1\"><border/></borders>\
<cellStyleXfs count=\"1\"><xf/></cellStyleXfs>\
<cellXfs count=\"2\"><xf numFmtId=\"0\"/><xf numFmtId=\"164\" applyNumberFormat=\"1\"/></cellXfs>\
</styleSheet>";

fn workbook() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
         <workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
         xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">\
         <sheets><sheet name=\"{SHEET}\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"
    )
}

/// The workbook of `rows`, as the bytes of an .xlsx file.
pub fn xlsx(rows: &[Row]) -> zip::result::ZipResult<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let parts: [(&str, String); 6] = [
        ("[Content_Types].xml", CONTENT_TYPES.to_string()),
        ("_rels/.rels", ROOT_RELS.to_string()),
        ("xl/workbook.xml", workbook()),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.to_string()),
        ("xl/styles.xml", STYLES.to_string()),
        ("xl/worksheets/sheet1.xml", sheet(rows)),
    ];
    for (name, text) in parts {
        zip.start_file(name, options)?;
        zip.write_all(text.as_bytes())?;
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Data, DataType, Reader, Xlsx};

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a date")
    }

    #[test]
    fn the_workbook_reads_back_with_its_columns_dates_and_owners() {
        let rows = vec![
            Row {
                personnummer: "201705122385".into(),
                fornamn: "Wilma".into(),
                efternamn: "Strand & <Söner>".into(),
                skolenhetskod: "38120001".into(),
                placeringsform: "Fritidshem".into(),
                omfattning: Some(40.0),
                startdatum: day(2026, 11, 29),
                agare: vec!["198204153386".into(), "198011074410".into()],
            },
            Row {
                personnummer: "201602201319".into(),
                fornamn: "=Leo".into(),
                efternamn: "Nilsson".into(),
                skolenhetskod: "38120002".into(),
                placeringsform: "Fritidshem".into(),
                omfattning: Some(12.5),
                startdatum: day(2022, 8, 22),
                agare: vec![],
            },
        ];
        let bytes = xlsx(&rows).expect("written");
        let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).expect("an xlsx");
        assert_eq!(book.sheet_names(), vec![SHEET.to_string()]);
        let range = book.worksheet_range(SHEET).expect("the sheet");
        let all: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
        assert_eq!(all.len(), 3);
        let header: Vec<String> = all[0].iter().map(|c| c.to_string()).collect();
        assert_eq!(header, COLUMNS.map(str::to_string).to_vec());
        let first = &all[1];
        assert_eq!(first[0], Data::String("201705122385".into()));
        assert_eq!(first[2], Data::String("Strand & <Söner>".into()));
        assert_eq!(first[4], Data::String("Fritidshem".into()));
        assert_eq!(first[5].as_f64(), Some(40.0));
        match &first[6] {
            Data::DateTime(d) => {
                assert!(d.is_datetime(), "a date cell: {d:?}");
                let (y, m, dd, ..) = d.to_ymd_hms_milli();
                assert_eq!((y, m, dd), (2026, 11, 29), "{d:?}");
            }
            other => panic!("Startdatum is not a date cell: {other:?}"),
        }
        assert_eq!(first[7], Data::String("198204153386, 198011074410".into()));
        let second = &all[2];
        // Text, never a formula.
        assert_eq!(second[1], Data::String("=Leo".into()));
        assert_eq!(second[5].as_f64(), Some(12.5));
        assert!(
            matches!(&second[7], Data::String(s) if s.is_empty()) || second[7] == Data::Empty,
            "no owners: an empty cell, {:?}",
            second[7]
        );
    }

    #[test]
    fn only_open_fritidshem_placements_are_rows() {
        let mut pop = Population::seed();
        let today = day(2026, 12, 6);
        let fth = rows(&pop, today);
        assert!(!fth.is_empty(), "the seed has fritidshem places");
        assert!(fth.iter().all(|r| r.placeringsform == "Fritidshem"));
        assert!(fth.iter().all(|r| r.agare.is_empty()), "seeded: no owners");
        let n = fth.len();
        if let Some(p) = pop.placements.iter_mut().find(|p| p.school_type == "FTH") {
            p.end_date = Some(today - chrono::Days::new(1));
        }
        assert_eq!(rows(&pop, today).len(), n - 1, "an ended place is no row");
    }

    #[test]
    fn serial_days_are_excels() {
        // The fixture's 46251 is 2026-08-17.
        assert_eq!(serial(day(2026, 8, 17)), 46251);
        assert_eq!(serial(day(1900, 3, 1)), 61);
    }
}
