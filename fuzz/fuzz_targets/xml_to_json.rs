//! The XML → JSON converter.
//!
//! Checks: no panic; every error except `TooLarge` has a line and column, and no error text
//! holds a personnummer-shaped value of the document; the JSON is one object with one key
//! (the root element); whatever is accepted and can be written back with `json_to_xml`
//! reads back to the same JSON, and what cannot be written is an error with a key path.
//!
//! A first byte 0x01..=0x08 selects options (array names, a small depth limit) and is not
//! part of the document.
#![no_main]

mod common;

use knutpunkt::codec::{CodecErrorKind, XmlLimits, XmlToJsonOptions, json_to_xml, xml_to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (options, doc) = common::options_byte(data);
    let mut opts = XmlToJsonOptions::default();
    if let Some(b) = options {
        if b & 1 != 0 {
            opts.arrays = vec!["i".into(), "Handling".into(), "applicant".into()];
        }
        if b & 2 != 0 {
            opts.limits = XmlLimits {
                max_depth: 3,
                ..XmlLimits::default()
            };
        }
        if b & 4 != 0 {
            opts.limits.max_bytes = 64;
        }
    }
    match xml_to_json(doc, &opts) {
        Ok(value) => {
            let obj = value.as_object();
            assert!(obj.is_some_and(|o| o.len() == 1), "not one root: {value}");
            match json_to_xml(&value, None) {
                Ok(xml) => {
                    // The written form may be longer than the document read (`>` → `&gt;`).
                    let mut reread = opts.clone();
                    reread.limits.max_bytes = usize::MAX;
                    let again = xml_to_json(&xml, &reread).unwrap_or_else(|e| {
                        panic!(
                            "written XML does not read back: {e}\n{}",
                            String::from_utf8_lossy(&xml)
                        )
                    });
                    assert_eq!(value, again, "{}", String::from_utf8_lossy(&xml));
                }
                Err(e) => {
                    assert!(
                        e.path().is_some(),
                        "json_to_xml error without a key path: {e}"
                    );
                    common::assert_no_leak(doc, &e.to_string(), "json_to_xml");
                }
            }
        }
        Err(e) => {
            common::assert_no_leak(doc, &e.to_string(), "xml_to_json");
            if e.kind() != CodecErrorKind::TooLarge {
                assert!(e.position().is_some(), "no position: {e}");
            }
        }
    }
});
