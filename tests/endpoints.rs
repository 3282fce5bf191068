//! The runtime wiring of file and timer-like endpoints and of the aggregator's timeout:
//! a running system picks files up, completes timed-out groups and writes results.

mod support;

use std::path::Path;
use std::time::Duration;

use knutpunkt::config::Config;
use knutpunkt::runtime::System;
use serde_json::Value;
use support::root::eventually;

async fn start(root: &Path) -> System {
    let config = Config::from_toml_str(&format!(
        "{}[http]\nbind = \"127.0.0.1:0\"\n[admin]\nbind = \"127.0.0.1:0\"\n[sandbox]\nenabled = false\n",
        support::root::DEV_TOML
    ))
    .expect("config");
    System::start(root, &config).await.expect("system starts")
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // `.name.tmp-…` files are atomic writes still in progress
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_picked_up_and_timed_out_groups_complete() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "routes/ist-export.yaml",
        r#"
route: ist-export
from:
  file: { dir: inbox, pattern: "*.xml", interval: 100ms }
steps:
  - xml_to_json: { arrays: [Elev] }
  - split: { jq: '.Export.Elev[]' }
  - aggregate:
      correlation: .klass
      complete: { size: 100, timeout: 300ms }
  - transform: { jq: '{klass: .key, elever: (.items | map(.namn) | sort)}' }
  - to: { file: { dir: outbox, name: '"klass-\(.klass).json"' } }
"#,
    );
    let system = start(root).await;
    write(
        root,
        "inbox/export-1.xml",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Export><Elev><namn>Ödön</namn><klass>7B</klass></Elev><Elev><namn>Ada</namn><klass>7B</klass></Elev><Elev><namn>Bo</namn><klass>8A</klass></Elev></Export>",
    );
    write(root, "inbox/ignored.txt", "not for this route");

    let outbox = root.join("outbox");
    eventually(15, "two class files after the aggregation timeout", || {
        files(&outbox).len() == 2
    })
    .await;
    let seven: Value =
        serde_json::from_slice(&std::fs::read(outbox.join("klass-7B.json")).unwrap()).unwrap();
    assert_eq!(
        seven,
        serde_json::json!({"klass": "7B", "elever": ["Ada", "Ödön"]})
    );
    let eight: Value =
        serde_json::from_slice(&std::fs::read(outbox.join("klass-8A.json")).unwrap()).unwrap();
    assert_eq!(eight["elever"], serde_json::json!(["Bo"]));

    assert_eq!(files(&root.join("inbox/processed")), vec!["export-1.xml"]);
    assert_eq!(files(&root.join("inbox")), vec!["ignored.txt"]);

    // A file that is not XML is accepted (the door does not parse files) and then
    // dead-lettered by the route's first step: nothing is lost.
    write(root, "inbox/broken.xml", "<Export><Elev>");
    eventually(10, "the broken file processed", || {
        files(&root.join("inbox/processed")).contains(&"broken.xml".to_string())
    })
    .await;
    let dlq = knutpunkt::broker::dead_letter_queue("ist-export");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while system.broker.queue_depth(&dlq).await.unwrap() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the broken file was not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    system.shutdown(Duration::from_secs(5)).await;
}
