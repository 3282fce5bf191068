//! Black-box: the shipped OeP routes in a running system, driven over HTTP.
//! ISO-8859-1 XML in → xml_to_json → validate → transform → publish → (queue) → to: file,
//! read back as UTF-8 JSON; bad bodies refused at the door with problem+json.

mod support;

use std::time::Duration;

use knutpunkt::broker::{dead_letter_queue, work_queue};
use knutpunkt::config::Config;
use knutpunkt::route::model::Plane;
use knutpunkt::runtime::System;
use serde_json::Value;
use support::root::{copy_root, eventually, repo};

async fn start(root: &std::path::Path) -> System {
    let config = Config::from_toml_str(&format!(
        "{}[http]\nbind = \"127.0.0.1:0\"\n[admin]\nbind = \"127.0.0.1:0\"\n[sandbox]\nenabled = false\n{}",
        support::root::DEV_TOML,
        support::root::SHIPPED_AUTH_TOML
    ))
    .expect("config");
    System::start(root, &config).await.expect("system starts")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oep_export_in_latin1_arrives_as_utf8_json_file() {
    let root = copy_root();
    let system = start(root.path()).await;
    let http = client();
    let external = system
        .plane(Plane::External)
        .expect("the external plane runs");
    let base = format!("http://{}", external.http);
    let admin = format!("http://{}", external.admin);
    let token = support::root::admin_token(root.path());

    let ready = http.get(format!("{admin}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // `knut send`'s endpoint answers a wrong method with a problem, not an empty 405.
    let wrong = http
        .get(format!("{admin}/api/routes/oep-flowinstance-in/messages"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");

    let xml =
        std::fs::read(repo().join("tests/fixtures/oep/leave-application-latin1.xml")).unwrap();
    assert!(
        std::str::from_utf8(&xml).is_err(),
        "the fixture really is Latin-1"
    );
    // Without OeP's credential: refused at the door.
    let resp = http
        .post(format!("{base}/in/oep/flowinstances"))
        .header("content-type", "application/xml")
        .body(xml.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let resp = http
        .post(format!("{base}/in/oep/flowinstances"))
        .header("content-type", "application/xml")
        .header("authorization", support::root::oep_authorization())
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    assert!(accepted["id"].as_str().is_some_and(|s| s.len() == 36));
    assert!(accepted["correlation_id"].as_str().is_some());

    let file = root.path().join("data/out/applications/oep-412-90017.json");
    eventually(10, "the application file", || file.exists()).await;
    let bytes = std::fs::read(&file).unwrap();
    let text = String::from_utf8(bytes).expect("the file is UTF-8");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["poster"]["firstname"], "Anna");
    assert_eq!(json["values"]["Elev"]["Fornamn"], "Märta");
    assert_eq!(
        json["values"]["Skal"],
        "Släktträff i Överkalix, åk 7 får läxor med sig"
    );
    assert_eq!(json["flowName"], "Ansökan om ledighet för elev");

    // The metrics are on the internal plane's admin (the external listener of a process
    // running both planes shows nothing of the internal one).
    let metrics = http
        .get(format!("http://{}/metrics", system.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("knut_messages_in_total"), "{metrics}");

    system.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_at_the_door() {
    let root = copy_root();
    let system = start(root.path()).await;
    let http = client();
    let external = system
        .plane(Plane::External)
        .expect("the external plane runs");
    let url = format!("http://{}/in/oep/flowinstances", external.http);
    let oep = support::root::oep_authorization();

    let doctype = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><FlowInstance>&lol;</FlowInstance>";
    let resp = http
        .post(&url)
        .header("content-type", "application/xml")
        .header("authorization", &oep)
        .body(doctype)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["status"], 400);
    assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");

    let invalid = "<FlowInstance><Header><Flow><FamilyID>x12</FamilyID></Flow><Status><Name>Inkommen</Name></Status></Header></FlowInstance>";
    let resp = http
        .post(&url)
        .header("content-type", "application/xml")
        .header("authorization", &oep)
        .body(invalid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let p: Value = resp.json().await.unwrap();
    let pointers: Vec<&str> = p["errors"]
        .as_array()
        .expect("errors listed")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert!(
        pointers.contains(&"/FlowInstance/Header/Flow/FamilyID"),
        "{p}"
    );
    assert!(
        pointers
            .iter()
            .any(|p| p.starts_with("/FlowInstance/Header")),
        "the missing FlowInstanceID is named: {p}"
    );

    let not_xml = "this is not xml";
    let resp = http
        .post(&url)
        .header("content-type", "application/xml")
        .header("authorization", &oep)
        .body(not_xml)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Nothing of the refused bodies entered the broker: had one been accepted, the route
    // would have dead-lettered it (it is invalid), and nothing would be left in its queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let route = "oep-flowinstance-in";
    assert_eq!(
        system
            .broker
            .queue_depth(&dead_letter_queue(route))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        system.broker.queue_depth(&work_queue(route)).await.unwrap(),
        0
    );
    assert!(!root.path().join("data/out/applications").exists());

    let openapi: Value = http
        .get(format!("http://{}/openapi.json", external.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(
        openapi["paths"]["/in/oep/flowinstances"]["post"].is_object(),
        "{openapi}"
    );
    // The internal routes are not served on the external ingress, and the other way round.
    assert!(
        openapi["paths"]["/api/v1/placement-changes"].is_null(),
        "{openapi}"
    );
    let internal: Value = http
        .get(format!("http://{}/openapi.json", system.http_addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(internal["paths"]["/api/v1/placement-changes"]["post"]["requestBody"].is_object());
    assert!(internal["paths"]["/in/oep/flowinstances"].is_null());
    let elsewhere = http
        .post(format!("http://{}/in/oep/flowinstances", system.http_addr))
        .header("content-type", "application/xml")
        .header("authorization", &oep)
        .body(not_xml)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);

    system.shutdown(Duration::from_secs(5)).await;
}
