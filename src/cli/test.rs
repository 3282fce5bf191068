//! `knut test [PATH]`: run route tests and print one line per case.

use std::path::Path;
use std::process::ExitCode;

use crate::runtime::testing::{find_tests, run_file};

/// Run the route tests under `path` (default `routes/` of the root).
pub async fn run(root: &Path, path: Option<&Path>) -> ExitCode {
    // Route tests run the steps against mocks: they need no credentials or systems, so
    // routes load as for development.
    let config = match crate::config::Config::load(root) {
        Ok(c) => crate::config::Config {
            profile: crate::config::Profile::Development,
            ..c
        },
        Err(e) => {
            eprintln!("knut: {e}");
            return ExitCode::FAILURE;
        }
    };
    let loaded = match crate::runtime::load(root, &config) {
        Ok(l) => l,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("knut test: fix these first (see `knut check`)");
            return ExitCode::FAILURE;
        }
    };
    let dir = path.map_or_else(|| root.join("routes"), Path::to_path_buf);
    let files = find_tests(&dir);
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        match run_file(file, &loaded.routes, &loaded.resources).await {
            Ok(results) => {
                for r in results {
                    if r.failures.is_empty() {
                        passed += 1;
                        println!("ok   {} :: {}", file.display(), r.name);
                    } else {
                        failed += 1;
                        println!("FAIL {} :: {}", file.display(), r.name);
                        for f in r.failures {
                            println!("     {f}");
                        }
                    }
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {}: {e}", file.display());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        if passed == 0 && failed == 0 {
            eprintln!(
                "knut test: no route tests (*.test.yaml) under {}",
                dir.display()
            );
        }
        ExitCode::FAILURE
    }
}
