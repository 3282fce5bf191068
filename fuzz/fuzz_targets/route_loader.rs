//! The route loader (`load_route_str`: one route file's text).
//!
//! Checks: no panic; a rejected file gets at least one diagnostic, each naming the file and
//! a line and column inside the text (or 0:0 for the file as a whole), and no diagnostic
//! text holds a personnummer-shaped value of the file; an accepted route has a valid id,
//! and written out (as JSON, which is YAML) it loads again as the same route.
#![no_main]

mod common;

use std::path::Path;

use knutpunkt::route::load::{is_valid_route_id, load_route_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The folder loader refuses a file that is not UTF-8 before it parses anything.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("routes/fuzz.yaml");
    match load_route_str(file, text) {
        Ok(loaded) => {
            assert!(is_valid_route_id(&loaded.route.route));
            let json = serde_json::to_value(&loaded.route).expect("a route serialises");
            let written = json.to_string();
            match load_route_str(file, &written) {
                Ok(again) => {
                    let again = serde_json::to_value(&again.route).expect("a route serialises");
                    assert_eq!(json, again, "written: {written}");
                }
                Err(d) => panic!(
                    "a loaded route, written out, does not load again: {}\nwritten: {written}",
                    d.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
        Err(diags) => {
            assert!(!diags.is_empty(), "rejected without a diagnostic");
            // YAML breaks lines at LF, CRLF and a lone CR.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
            for d in &diags {
                assert_eq!(d.file, file);
                if d.line > 0 {
                    assert!(d.line <= lines + 1, "line {} of {lines}: {d}", d.line);
                    assert!(d.column >= 1, "{d}");
                }
                common::assert_no_leak(data, &format!("{d}"), "load_route_str");
            }
        }
    }
});
