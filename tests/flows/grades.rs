//! Use case 5: grades. Karin Ström, grading teacher of 7B at Björkhagens skola (38120001),
//! registers the class's grades in mathematics in lärplattform, then marks them final
//! (definitivmarkering); the grades reach elevregister, the catalogue is signed there by
//! Karin, verified by knut, shown in lärplattform and archived once. Then a catalogue
//! tampered with after signing, and one without a signature, are dead-lettered with the
//! reason and reach neither lärplattform nor the archive.

use base64::Engine;
use knut_sandbox::seed::id_for;
use knutpunkt::step::verify_signature::verify_detached;
use serde_json::{Value, json};

use crate::flows::{Flow, On, patch_file, text};

const KARIN: &str = "19790315-2481";
const MARTA: &str = "20130412-2383";
const ALVA: &str = "20140909-3224";
const YUSUF: &str = "20150369-2715";
/// Part of Alva's real address (skyddad folkbokföring): it must never be sent anywhere.
const ALVA_STREET: &str = "Skogsstigen";

fn grades(syllabus: &str, final_grade: bool) -> Value {
    json!({
        "teacher": KARIN, "schoolUnitCode": "38120001", "group": "7B",
        "syllabus": syllabus, "semester": "HT", "year": 2026, "final": final_grade,
        "grades": [
            {"civicNo": MARTA, "gradeValue": "B"},
            {"civicNo": ALVA, "gradeValue": "A"},
            {"civicNo": YUSUF, "gradeValue": "C"},
        ],
    })
}

pub async fn run(on: On) {
    let flow = Flow::start_with(on, "uc5-grades", |root| {
        patch_file(root, "routes/grades-poll.yaml", "every: 30s", "every: 1s");
    })
    .await;
    let lp = format!("{}/larplattform", flow.sandbox);
    let group_id = id_for("group/38120001/7B").to_string();

    // Karin registers 7B's grades in mathematics: they reach elevregister, not yet final.
    let (status, answer) = flow
        .post(
            &format!("{lp}/_register-grades"),
            &grades("MA", false),
            None,
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    flow.wait_calls("elevregister", "POST", "/grades", 3, 30)
        .await;
    // She marks them final (definitivmarkering).
    let finalize = json!({"teacher": KARIN, "schoolUnitCode": "38120001", "group": "7B",
        "syllabus": "MA", "semester": "HT", "year": 2026});
    let (status, answer) = flow
        .post(&format!("{lp}/_finalize-grades"), &finalize, None)
        .await;
    assert_eq!(status, 200, "{answer}");
    flow.wait_calls("elevregister", "POST", "/grades", 6, 30)
        .await;
    let registered = flow
        .get(&format!(
            "{}/elevregister/grades?group={group_id}",
            flow.sandbox
        ))
        .await;
    let registered = registered["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(registered.len(), 3, "{}", text(&json!(registered)));
    for g in &registered {
        assert_eq!(g["finalGrade"], true, "{g}");
        assert_eq!(g["syllabus"]["displayName"], "MA", "{g}");
    }
    let marta = registered
        .iter()
        .find(|g| g["student"]["id"] == id_for("201304122383").to_string())
        .expect("Märta's grade");
    assert_eq!(marta["gradeValue"], "B");

    // The catalogue was signed by Karin and verified; lärplattform shows the signed grades.
    let shown = flow
        .wait_calls("larplattform", "POST", "/signedGrades", 1, 60)
        .await;
    assert_eq!(shown.len(), 1, "{}", text(&json!(shown)));
    let body = &shown[0]["body"];
    assert_eq!(body["group"]["id"], group_id.as_str(), "{body}");
    assert_eq!(body["syllabus"], "MA");
    assert_eq!(body["grades"].as_array().map(Vec::len), Some(3), "{body}");
    assert_eq!(body["signedBy"], id_for("197903152481").to_string());
    let catalogue_id = body["catalogue"]
        .as_str()
        .expect("catalogue id")
        .to_string();
    let signature = body["signature"].as_str().expect("signature").to_string();

    // The archive got one package: metadata, the document as signed, its signature.
    let packages = flow
        .wait_calls("arkiv", "POST", "/2281/archive/skola", 1, 60)
        .await;
    assert_eq!(packages.len(), 1);
    let request = packages[0]["body"].clone();
    let metadata = request["metadata"].as_str().expect("metadata");
    assert!(
        metadata.contains("http://xml.ra.se/e-arkiv/FGS-ERMS"),
        "{metadata}"
    );
    assert!(metadata.contains(&format!("<ArkivobjektID>{catalogue_id}</ArkivobjektID>")));
    assert!(
        metadata.contains("<Handlingstyp>D</Handlingstyp>"),
        "7B has a student with skyddad folkbokföring: confidential: {metadata}"
    );
    let document = base64::engine::general_purpose::STANDARD
        .decode(request["attachment"]["file"].as_str().expect("file"))
        .expect("base64");
    let document = String::from_utf8(document).expect("UTF-8");
    let sent_signature = base64::engine::general_purpose::STANDARD
        .decode(
            request["signature"]["file"]
                .as_str()
                .expect("signature file"),
        )
        .expect("base64");
    assert_eq!(String::from_utf8_lossy(&sent_signature), signature);
    let jwks = flow
        .get(&format!("{}/elevregister/signing-keys", flow.sandbox))
        .await;
    let keys = knutpunkt::jwks::parse_set(&serde_json::to_vec(&jwks).expect("jwks"))
        .expect("the register's keys");
    verify_detached(
        &json!(signature),
        &json!(document),
        &keys,
        Some(&json!(id_for("197903152481").to_string())),
    )
    .expect("the archived document is the one Karin signed");
    let doc: Value = serde_json::from_str(&document).expect("the catalogue is JSON");
    assert_eq!(doc["type"], "Betygskatalog");
    assert_eq!(doc["grades"].as_array().map(Vec::len), Some(3));
    // The archive answers the same package with the same id (exactly once) and shows it.
    let key = packages[0]["headers"]["idempotency-key"]
        .as_str()
        .expect("Idempotency-Key")
        .to_string();
    let again = flow
        .client
        .post(format!("{}/arkiv/2281/archive/skola", flow.sandbox))
        .header("idempotency-key", key)
        .json(&request)
        .send()
        .await
        .expect("archive");
    let again: Value = again.json().await.expect("JSON");
    let archive_id = again["archiveId"].as_str().expect("archiveId");
    let stored = flow
        .get(&format!(
            "{}/arkiv/2281/archive/skola/{archive_id}",
            flow.sandbox
        ))
        .await;
    assert_eq!(stored["documents"], json!([catalogue_id]), "{stored}");
    assert_eq!(
        stored["attachment"]["name"],
        format!("betygskatalog-{catalogue_id}.txt")
    );
    assert_eq!(stored["attachment"]["size"], document.len());
    assert_eq!(
        stored["signature"]["name"],
        format!("betygskatalog-{catalogue_id}.jws")
    );

    // A catalogue changed after signing (Swedish), and one without a signature (English):
    // dead letters with the reason; nothing more shown or archived.
    for (syllabus, control, reason, n) in [
        ("SV", "_tamper", "the signature does not verify", 1),
        ("EN", "_unsigned", "unsigned", 2),
    ] {
        let (status, _) = flow
            .post(
                &format!("{}/elevregister/{control}", flow.sandbox),
                &json!({}),
                None,
            )
            .await;
        assert_eq!(status, 200);
        let (status, answer) = flow
            .post(
                &format!("{lp}/_register-grades"),
                &grades(syllabus, true),
                None,
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        let dead = flow.wait_dead_letters("grades-catalogue-sign", n, 60).await;
        let reasons = text(&json!(dead));
        assert!(reasons.contains(reason), "{reasons}");
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        flow.calls("larplattform", "POST", "/signedGrades")
            .await
            .len(),
        1
    );
    assert_eq!(
        flow.calls("arkiv", "POST", "/2281/archive/skola")
            .await
            .len(),
        2,
        "the archived package and the test's own repeat of it"
    );
    let catalogues = flow
        .get(&format!("{}/elevregister/gradeCatalogues", flow.sandbox))
        .await;
    assert_eq!(catalogues["data"].as_array().map(Vec::len), Some(3));

    // No route but the verifying one dead-lettered anything; Alva's address went nowhere.
    for route in [
        "grades-poll",
        "grades-register",
        "grades-catalogue-assemble",
        "grades-display",
        "grades-archive",
    ] {
        let dl = flow.dead_letters(route).await;
        assert!(dl.is_empty(), "{route}: {}", text(&json!(dl)));
    }
    for system in ["elevregister", "larplattform", "arkiv"] {
        let inbox = text(&json!(flow.inbox(system).await));
        assert!(!inbox.contains(ALVA_STREET), "{system} got Alva's address");
    }
    assert!(!document.contains(ALVA_STREET));
    flow.stop(&[KARIN, MARTA, ALVA, YUSUF]).await;
}
