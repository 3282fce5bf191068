//! The archive (e-arkiv): packages of a case's documents with FGS-ERMS metadata
//! (`Leveransobjekt`, namespace `http://xml.ra.se/e-arkiv/FGS-ERMS`). Sundsvall's archive
//! API (`fixtures/archive/openapi.yaml`) takes `POST /{municipalityId}/archive/byggr` with
//! `{attachment: {name, extension, file (base64)}, metadata: "<Leveransobjekt …>"}`; the
//! school's packages use the same request shape on a path of their own, plus an optional
//! `signature` (a second attachment: the signature over the document, e.g. a signed grade
//! catalogue):
//!
//! | call | answer |
//! |---|---|
//! | `POST /{municipalityId}/archive/skola` | 200 `{archiveId}` (the contract's `errorDetails` only on an error); **exactly once**: the same package again (same `Idempotency-Key`, or the same case, document id and file content) answers the first package's `archiveId` and stores nothing; 400 problem saying what is wrong with the request or the metadata |
//! | `GET /{municipalityId}/archive/skola/{archiveId}` | the stored package: case and document ids, the attachment's name, size and SHA-256, whether a signature came with it |
//!
//! The metadata must be well-formed XML (no DTD) whose root is `Leveransobjekt` in the
//! FGS-ERMS namespace, with at least one `ArkivobjektArende` with an `ArkivobjektID`; every
//! `ArkivobjektHandling` needs exactly one `Handlingstyp` and one `Bilaga` whose `Namn` has a
//! file extension, and one `Bilaga` must name the delivered attachment.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::control::{idempotency_key, json_object, not_an_object, problem};
use super::{World, lock};

/// The FGS-ERMS namespace.
pub const FGS_ERMS: &str = "http://xml.ra.se/e-arkiv/FGS-ERMS";

/// The packages archived, in order.
#[derive(Debug, Default)]
pub struct Archive {
    packages: Vec<Package>,
}

#[derive(Debug, Clone)]
struct Package {
    id: String,
    key: Option<String>,
    /// (case id, document ids, SHA-256 of the file): what makes a package the same.
    identity: (String, Vec<String>, String),
    summary: Value,
}

/// The routes, relative to `/sandbox/arkiv`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/{municipality}/archive/skola", post(archive))
        .route("/{municipality}/archive/skola/{id}", get(show))
        .with_state(world)
}

fn bad(detail: impl Into<String>) -> Response {
    problem(StatusCode::BAD_REQUEST, "Bad Request", detail)
}

/// The file types the archive takes as the package's document (its contract's
/// `Attachment.extension` pattern).
const DOCUMENT_TYPES: &[&str] = &[
    "bmp", "gif", "tif", "tiff", "jpeg", "jpg", "png", "htm", "html", "pdf", "rtf", "doc", "docx",
    "txt", "xls", "xlsx", "odt", "ods", "pptx", "ppt", "msg",
];

/// The attachment of a request: (name with extension, decoded bytes). The document
/// (`attachment`) must be of a type the archive takes.
fn attachment(v: &Value, field: &str) -> Result<(String, Vec<u8>), String> {
    let a = &v[field];
    let name = a["name"].as_str().filter(|s| !s.is_empty());
    let ext = a["extension"].as_str().filter(|s| {
        s.starts_with('.') && s.len() > 1 && s[1..].bytes().all(|b| b.is_ascii_alphanumeric())
    });
    let (Some(name), Some(ext)) = (name, ext) else {
        return Err(format!(
            "{field}: name and extension (like \".pdf\") are required"
        ));
    };
    if field == "attachment" && !DOCUMENT_TYPES.contains(&&ext[1..]) {
        return Err(format!(
            "{field}.extension {ext} is not a type the archive takes ({})",
            DOCUMENT_TYPES.join(", ")
        ));
    }
    let file = base64::engine::general_purpose::STANDARD
        .decode(a["file"].as_str().unwrap_or_default())
        .map_err(|_| format!("{field}.file is not base64"))?;
    let full = if name.ends_with(ext) {
        name.to_string()
    } else {
        format!("{name}{ext}")
    };
    Ok((full, file))
}

fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        one => vec![one],
    }
}

/// Check the metadata; the case id and the document ids and names it lists.
fn check_metadata(xml: &str) -> Result<(String, Vec<String>, Vec<String>), String> {
    let root = crate::xml::parse(xml.as_bytes()).map_err(|e| format!("metadata: {e}"))?;
    if root.name != "Leveransobjekt" || root.namespace.as_deref() != Some(FGS_ERMS) {
        return Err(format!(
            "metadata: the root must be Leveransobjekt in the namespace {FGS_ERMS}"
        ));
    }
    let json = root.to_json(&[
        "ArkivobjektArende",
        "ArkivobjektHandling",
        "Handlingstyp",
        "Bilaga",
    ]);
    let cases = list(&json["Leveransobjekt"]["ArkivobjektListaArenden"]["ArkivobjektArende"]);
    let Some(case_id) = cases
        .first()
        .and_then(|c| c["ArkivobjektID"].as_str())
        .filter(|s| !s.is_empty())
    else {
        return Err("metadata: an ArkivobjektArende with an ArkivobjektID is required".into());
    };
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for case in &cases {
        for (i, h) in list(&case["ArkivobjektListaHandlingar"]["ArkivobjektHandling"])
            .into_iter()
            .enumerate()
        {
            let n = list(&h["Handlingstyp"]).len();
            if n != 1 {
                return Err(format!(
                    "metadata: ArkivobjektHandling {} has {n} Handlingstyp (the confidentiality level); exactly one is needed",
                    i + 1
                ));
            }
            let bilagor = list(&h["Bilaga"]);
            if bilagor.len() != 1 {
                return Err(format!(
                    "metadata: ArkivobjektHandling {} has {} Bilaga; exactly one is needed",
                    i + 1,
                    bilagor.len()
                ));
            }
            let name = bilagor[0]["@Namn"].as_str().unwrap_or_default();
            if !name
                .rsplit_once('.')
                .is_some_and(|(b, e)| !b.is_empty() && !e.is_empty())
            {
                return Err(format!(
                    "metadata: the Bilaga of ArkivobjektHandling {} has no file extension in Namn",
                    i + 1
                ));
            }
            names.push(name.to_string());
            ids.push(h["ArkivobjektID"].as_str().unwrap_or_default().to_string());
        }
    }
    if names.is_empty() {
        return Err("metadata: no ArkivobjektHandling with a Bilaga".into());
    }
    Ok((case_id.to_string(), ids, names))
}

async fn archive(
    State(w): State<Arc<World>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(req) = json_object(&body) else {
        return not_an_object("{attachment, metadata, signature?}");
    };
    let (name, file) = match attachment(&req, "attachment") {
        Ok(a) => a,
        Err(e) => return bad(e),
    };
    let signature = if req.get("signature").is_some_and(|s| !s.is_null()) {
        match attachment(&req, "signature") {
            Ok(s) => Some(s),
            Err(e) => return bad(e),
        }
    } else {
        None
    };
    let Some(metadata) = req["metadata"].as_str().filter(|s| !s.is_empty()) else {
        return bad("metadata (the Leveransobjekt XML as a string) is required");
    };
    let (case_id, doc_ids, names) = match check_metadata(metadata) {
        Ok(m) => m,
        Err(e) => return bad(e),
    };
    if !names.contains(&name) {
        return bad(format!(
            "no Bilaga in the metadata names the attachment `{name}`"
        ));
    }
    let sha = hex(&Sha256::digest(&file));
    let key = idempotency_key(&headers);
    let identity = (case_id.clone(), doc_ids.clone(), sha.clone());
    let mut archive = lock(&w.archive);
    if let Some(p) = archive
        .packages
        .iter()
        .find(|p| (key.is_some() && p.key == key) || p.identity == identity)
    {
        return Json(json!({"archiveId": p.id})).into_response();
    }
    let id = Uuid::now_v7().to_string();
    let summary = json!({
        "archiveId": id, "case": case_id, "documents": doc_ids,
        "attachment": {"name": name, "size": file.len(), "sha256": sha},
        "signature": signature.as_ref().map(|(n, s)| json!({"name": n, "size": s.len()})),
        "archived": chrono::Local::now().to_rfc3339(),
    });
    archive.packages.push(Package {
        id: id.clone(),
        key,
        identity,
        summary,
    });
    Json(json!({"archiveId": id})).into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn show(State(w): State<Arc<World>>, Path((_, id)): Path<(String, String)>) -> Response {
    match lock(&w.archive).packages.iter().find(|p| p.id == id) {
        Some(p) => Json(p.summary.clone()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no package {id}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(handlingar: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Leveransobjekt xmlns="{FGS_ERMS}"><ArkivobjektListaArenden><ArkivobjektArende>
<ArkivobjektID>BUN 2026/00042</ArkivobjektID><ArkivobjektListaHandlingar>{handlingar}
</ArkivobjektListaHandlingar></ArkivobjektArende></ArkivobjektListaArenden></Leveransobjekt>"#
        )
    }

    const ONE: &str = r#"<ArkivobjektHandling><ArkivobjektID>h-1</ArkivobjektID><Handlingstyp>S</Handlingstyp><Bilaga Namn="betygskatalog.pdf" Lank="Bilagor\betygskatalog.pdf"/></ArkivobjektHandling>"#;

    #[test]
    fn metadata_rules() {
        let (case, ids, names) = check_metadata(&meta(ONE)).unwrap();
        assert_eq!(
            (case.as_str(), ids, names),
            (
                "BUN 2026/00042",
                vec!["h-1".to_string()],
                vec!["betygskatalog.pdf".to_string()]
            )
        );
        let no_level = ONE.replace("<Handlingstyp>S</Handlingstyp>", "");
        assert!(
            check_metadata(&meta(&no_level))
                .unwrap_err()
                .contains("Handlingstyp")
        );
        let two_levels = ONE.replace(
            "<Handlingstyp>S</Handlingstyp>",
            "<Handlingstyp>S</Handlingstyp><Handlingstyp>D</Handlingstyp>",
        );
        assert!(
            check_metadata(&meta(&two_levels))
                .unwrap_err()
                .contains("2 Handlingstyp")
        );
        let no_ext = ONE.replace("betygskatalog.pdf\" Lank", "betygskatalog\" Lank");
        assert!(
            check_metadata(&meta(&no_ext))
                .unwrap_err()
                .contains("extension")
        );
        let wrong_ns = meta(ONE).replace(FGS_ERMS, "urn:other");
        assert!(check_metadata(&wrong_ns).unwrap_err().contains("namespace"));
        let dtd = format!(
            "<!DOCTYPE x [<!ENTITY e \"x\">]>{}",
            meta(ONE).replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "")
        );
        assert!(check_metadata(&dtd).is_err());
    }
}
