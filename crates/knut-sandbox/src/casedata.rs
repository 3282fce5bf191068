//! Ärendehantering: Sundsvall's case-data API (contract v13 in `fixtures/casedata`), the
//! part the flows use:
//!
//! | call | answer |
//! |---|---|
//! | `POST /{municipalityId}/{namespace}/errands` | 201, empty body, `Location: /{m}/{ns}/errands/{id}`; 400 problem without `caseType` |
//! | `GET /{municipalityId}/{namespace}/errands` | a page `{"content": [Errand], "totalElements", …}` |
//! | `GET /{municipalityId}/{namespace}/errands/{errandId}` | the `Errand` with `id`, `errandNumber`, `created`; 404 problem when unknown |
//! | `PATCH /{municipalityId}/{namespace}/errands/{errandId}` | 204; the given top-level fields replace the errand's |
//! | `GET /{municipalityId}/{namespace}/errands?filter=externalCaseId:'412-5000'` | the page of errands whose fields equal the values (spring-filter's `field:'value'` terms joined by ` and `; other syntax is a 400 saying so). A dotted field walks objects, and an array matches when any element does: `stakeholders.personId:'<uuid>'` finds the errands with a stakeholder of that personId (case data's join) |
//! | `GET`, `PATCH /{municipalityId}/{namespace}/errands/{errandId}/extraparameters` | the `ExtraParameter`s; PATCH adds or updates the given keys (never removes one) and answers them all |
//! | `GET /{municipalityId}/{namespace}/errands/{errandId}/decisions`, `PATCH` the same | the `Decision`s; PATCH adds one (`decisionType`, `decisionOutcome`, …) → 201 + `Location` |
//! | `GET /{municipalityId}/{namespace}/errands/{errandId}/decisions/{decisionId}` | one `Decision` |
//! | `GET /{municipalityId}/{namespace}/errands/{errandId}/notes`, `PATCH` the same | the `Note`s; PATCH adds one (`title`, `text`, `noteType` `INTERNAL` or `PUBLIC`) → 201 + `Location`; 400 problem without a text or with another noteType |
//! | `POST /_decide` | the case officer decides: `{errandId, outcome: APPROVAL \| REJECTION, description?, decidedBy?, extraParameters?}` (namespace `SBK_SCHOOL`, municipality 2281) → a FINAL decision on the errand, its status `Beslutad` |
//!
//! Errands are kept per municipality and namespace; ids count from 1. Every new decision
//! (through the API or `_decide`) is announced to Knutpunkt as case management's event:
//! `POST <knut ingress>/in/casedata/decisions` with `{event: "DECISION_CREATED",
//! municipalityId, namespace, errandId, errandNumber, caseType, decisionId}` and a bearer
//! token of the sandbox's test issuer (`sub: casedata`). The event is thin on purpose:
//! Knutpunkt reads the decision from the errand, so an event can never carry a decision
//! case management did not make.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::control::problem;
use super::{World, lock};

/// The errands received so far.
#[derive(Debug, Default)]
pub struct Errands {
    /// (municipality, namespace, errand) in order of creation.
    pub list: Vec<(String, String, Value)>,
    /// Where decision events go (Knutpunkt's ingress), when Knutpunkt runs the sandbox.
    pub push_url: Option<String>,
    next_decision: u64,
}

/// The namespace the school's flows use, and `_decide` decides in.
pub const NAMESPACE: &str = "SBK_SCHOOL";
/// Sundsvall.
const MUNICIPALITY: &str = "2281";

/// The routes, relative to `/sandbox/casedata`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route(
            "/{municipality}/{namespace}/errands",
            get(list).post(create),
        )
        .route(
            "/{municipality}/{namespace}/errands/{id}",
            get(show).patch(update),
        )
        .route(
            "/{municipality}/{namespace}/errands/{id}/extraparameters",
            get(extra_parameters).patch(update_extra_parameters),
        )
        .route(
            "/{municipality}/{namespace}/errands/{id}/decisions",
            get(decisions).patch(add_decision),
        )
        .route(
            "/{municipality}/{namespace}/errands/{id}/decisions/{decision}",
            get(decision),
        )
        .route(
            "/{municipality}/{namespace}/errands/{id}/notes",
            get(notes).patch(add_note),
        )
        .route("/_decide", axum::routing::post(decide))
        .with_state(world)
}

fn bad_request(detail: impl Into<String>) -> Response {
    problem(StatusCode::BAD_REQUEST, "Constraint Violation", detail)
}

fn not_found(id: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not Found",
        format!("Errand with id:'{id}' not found in namespace"),
    )
}

/// The body as a JSON object, or what is wrong with it.
fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the body must be a JSON object (an Errand)".into()),
        Err(e) => Err(format!("the body is not JSON: {e}")),
    }
}

async fn create(
    State(w): State<Arc<World>>,
    Path((municipality, namespace)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let mut errand = match object(&body) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    if !errand.get("caseType").is_some_and(Value::is_string) {
        return bad_request("caseType: must not be null");
    }
    let mut errands = lock(&w.errands);
    let id = errands.list.len() as u64 + 1;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    errand.insert("id".into(), json!(id));
    errand.insert(
        "errandNumber".into(),
        json!(format!("SKOL-{}-{id:06}", chrono::Utc::now().format("%Y"))),
    );
    errand.insert("municipalityId".into(), json!(municipality));
    errand.insert("namespace".into(), json!(namespace));
    errand.insert("created".into(), json!(now));
    errand.insert("updated".into(), json!(now));
    errands.list.push((
        municipality.clone(),
        namespace.clone(),
        Value::Object(errand),
    ));
    (
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/{municipality}/{namespace}/errands/{id}"),
        )],
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct ListQuery {
    filter: Option<String>,
}

/// The `field:'value'` terms of a spring-filter expression joined by ` and `, or why the
/// sandbox cannot read it.
fn filter_terms(filter: &str) -> Result<Vec<(String, String)>, String> {
    filter
        .split(" and ")
        .map(|term| {
            let (field, value) = term.trim().split_once(':').ok_or_else(|| {
                format!("the sandbox understands filters of the form field:'value' [and …], not `{term}`")
            })?;
            let value = value
                .trim()
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .ok_or_else(|| format!("quote the value of `{field}` with '…'"))?;
            Ok((field.trim().to_string(), value.to_string()))
        })
        .collect()
}

/// Whether the value at a dotted `field` of `value` equals `wanted` as spring-filter
/// compares (a string as it is, a number by its text). Each segment walks into an object;
/// an array on the way matches when any of its elements does (`stakeholders.personId`: any
/// stakeholder's personId).
fn field_matches(value: &Value, field: &str, wanted: &str) -> bool {
    match (value, field.split_once('.')) {
        (Value::Array(items), _) => items.iter().any(|v| field_matches(v, field, wanted)),
        (Value::Object(map), Some((head, rest))) => map
            .get(head)
            .is_some_and(|v| field_matches(v, rest, wanted)),
        (Value::Object(map), None) => map.get(field).is_some_and(|v| leaf_matches(v, wanted)),
        _ => false,
    }
}

/// A leaf value against a filter's literal; an array of leaves matches when one does.
fn leaf_matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Number(n) => n.to_string() == wanted,
        Value::Array(items) => items.iter().any(|v| leaf_matches(v, wanted)),
        _ => false,
    }
}

async fn list(
    State(w): State<Arc<World>>,
    Path((municipality, namespace)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Response {
    let terms = match q.filter.as_deref().map(filter_terms).transpose() {
        Ok(t) => t.unwrap_or_default(),
        Err(why) => return bad_request(why),
    };
    let errands = lock(&w.errands);
    let content: Vec<Value> = errands
        .list
        .iter()
        .filter(|(m, ns, _)| *m == municipality && *ns == namespace)
        .filter(|(_, _, e)| {
            terms
                .iter()
                .all(|(field, value)| field_matches(e, field, value))
        })
        .map(|(_, _, e)| e.clone())
        .collect();
    let n = content.len();
    Json(json!({
        "content": content,
        "totalElements": n,
        "totalPages": 1,
        "number": 0,
        "size": n,
    }))
    .into_response()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn extra_parameters(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
) -> Response {
    let mut errands = lock(&w.errands);
    match find(&mut errands, &municipality, &namespace, &id) {
        Some(e) => Json(e.get("extraParameters").cloned().unwrap_or(json!([]))).into_response(),
        None => not_found(&id),
    }
}

async fn update_extra_parameters(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let given: Vec<Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a))
            if a.iter()
                .all(|p| p["key"].as_str().is_some_and(|k| !k.is_empty())) =>
        {
            a
        }
        _ => return bad_request("the body must be an array of ExtraParameter, each with a key"),
    };
    let mut errands = lock(&w.errands);
    let Some(Value::Object(errand)) = find(&mut errands, &municipality, &namespace, &id) else {
        return not_found(&id);
    };
    let params = errand.entry("extraParameters").or_insert_with(|| json!([]));
    if !params.is_array() {
        *params = json!([]);
    }
    if let Value::Array(list) = params {
        for p in given {
            match list.iter_mut().find(|q| q["key"] == p["key"]) {
                Some(q) => *q = p,
                None => list.push(p),
            }
        }
    }
    let answer = params.clone();
    errand.insert("updated".into(), json!(now()));
    Json(answer).into_response()
}

async fn decisions(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
) -> Response {
    let mut errands = lock(&w.errands);
    match find(&mut errands, &municipality, &namespace, &id) {
        Some(e) => Json(e.get("decisions").cloned().unwrap_or(json!([]))).into_response(),
        None => not_found(&id),
    }
}

async fn decision(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id, decision)): Path<(String, String, String, String)>,
) -> Response {
    let mut errands = lock(&w.errands);
    let Some(e) = find(&mut errands, &municipality, &namespace, &id) else {
        return not_found(&id);
    };
    let found = e["decisions"].as_array().and_then(|d| {
        d.iter()
            .find(|d| d["id"].as_u64().map(|n| n.to_string()) == Some(decision.clone()))
    });
    match found {
        Some(d) => Json(d.clone()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("Decision with id:'{decision}' not found on errand"),
        ),
    }
}

/// The decision event Knutpunkt is told of: where to push it and what.
struct Announcement {
    url: String,
    event: Value,
}

/// Record `given` as a decision of errand `id`; the decision and the event to announce.
#[allow(
    clippy::result_large_err,
    reason = "an Err is the problem response itself, returned once per request"
)]
fn record_decision(
    w: &World,
    municipality: &str,
    namespace: &str,
    id: &str,
    given: Map<String, Value>,
) -> Result<(Value, Option<Announcement>), Response> {
    let outcome = given.get("decisionOutcome").and_then(Value::as_str);
    if !matches!(
        outcome,
        Some("APPROVAL" | "REJECTION" | "DISMISSAL" | "CANCELLATION")
    ) {
        return Err(bad_request(
            "decisionOutcome: must be APPROVAL, REJECTION, DISMISSAL or CANCELLATION",
        ));
    }
    let mut errands = lock(&w.errands);
    errands.next_decision += 1;
    let decision_id = errands.next_decision;
    let push_url = errands.push_url.clone();
    let Some(Value::Object(errand)) = find(&mut errands, municipality, namespace, id) else {
        return Err(not_found(id));
    };
    let stamp = now();
    let mut decision = given;
    decision.insert("id".into(), json!(decision_id));
    decision.insert("municipalityId".into(), json!(municipality));
    decision.insert("namespace".into(), json!(namespace));
    decision.insert("errandId".into(), errand["id"].clone());
    decision.insert("errandNumber".into(), errand["errandNumber"].clone());
    decision
        .entry("decisionType")
        .or_insert_with(|| json!("FINAL"));
    decision.entry("decidedAt").or_insert_with(|| json!(stamp));
    decision.insert("created".into(), json!(stamp));
    decision.insert("updated".into(), json!(stamp));
    let decision = Value::Object(decision);
    let list = errand.entry("decisions").or_insert_with(|| json!([]));
    if let Value::Array(l) = list {
        l.push(decision.clone());
    }
    if decision["decisionType"] == "FINAL" {
        errand.insert(
            "status".into(),
            json!({"statusType": "Beslutad", "created": stamp}),
        );
    }
    errand.insert("updated".into(), json!(stamp));
    let announcement = push_url.map(|url| Announcement {
        url,
        event: json!({
            "event": "DECISION_CREATED",
            "municipalityId": municipality,
            "namespace": namespace,
            "errandId": errand["id"],
            "errandNumber": errand["errandNumber"],
            "caseType": errand["caseType"],
            "decisionId": decision_id,
        }),
    });
    Ok((decision, announcement))
}

/// Post the event to Knutpunkt with a bearer token of the test issuer; the status, or why not.
async fn announce(w: &World, a: Announcement) -> Result<u16, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut req = reqwest::Client::new()
        .post(&a.url)
        .timeout(std::time::Duration::from_secs(10))
        .json(&a.event);
    if let Some(idp) = &w.idp {
        let claims = json!({"sub": "casedata", "aud": "knutpunkt"});
        if let Value::Object(c) = claims {
            req = req.bearer_auth(idp.issue(c)?);
        }
    }
    let r = req.send().await.map_err(|e| e.to_string())?;
    Ok(r.status().as_u16())
}

async fn notes(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
) -> Response {
    let mut errands = lock(&w.errands);
    match find(&mut errands, &municipality, &namespace, &id) {
        Some(e) => Json(e.get("notes").cloned().unwrap_or(json!([]))).into_response(),
        None => not_found(&id),
    }
}

/// A note for the case officer (`PATCH …/notes`): `text` required, `noteType` one of the
/// contract's (`INTERNAL`, `PUBLIC`) when given.
async fn add_note(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let mut note = match object(&body) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    if note
        .get("text")
        .and_then(Value::as_str)
        .is_none_or(|t| t.trim().is_empty())
    {
        return bad_request("text: must not be blank");
    }
    if note
        .get("noteType")
        .is_some_and(|t| !matches!(t.as_str(), Some("INTERNAL" | "PUBLIC")))
    {
        return bad_request("noteType: must be INTERNAL or PUBLIC");
    }
    let mut errands = lock(&w.errands);
    let Some(errand) = find(&mut errands, &municipality, &namespace, &id) else {
        return not_found(&id);
    };
    let Some(Value::Array(list)) = errand
        .as_object_mut()
        .map(|e| e.entry("notes").or_insert_with(|| json!([])))
    else {
        return bad_request("the errand's notes are not a list");
    };
    let note_id = list.len() + 1;
    let stamp = now();
    note.insert("id".into(), json!(note_id));
    note.insert("created".into(), json!(stamp));
    note.insert("updated".into(), json!(stamp));
    list.push(Value::Object(note));
    (
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/{municipality}/{namespace}/errands/{id}/notes/{note_id}"),
        )],
    )
        .into_response()
}

async fn add_decision(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let given = match object(&body) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    let (decision, announcement) = match record_decision(&w, &municipality, &namespace, &id, given)
    {
        Ok(d) => d,
        Err(r) => return r,
    };
    if let Some(a) = announcement {
        // Case management tells its subscribers after answering the caller.
        let w = w.clone();
        tokio::spawn(async move {
            if let Err(e) = announce(&w, a).await {
                tracing::warn!(error = %e, "sandbox casedata: the decision event could not be delivered");
            }
        });
    }
    (
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!(
                "/{municipality}/{namespace}/errands/{id}/decisions/{}",
                decision["id"]
            ),
        )],
    )
        .into_response()
}

async fn decide(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let req = match object(&body) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    let Some(id) = req.get("errandId").map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }) else {
        return bad_request("errandId: which errand the case officer decides");
    };
    let mut given = Map::new();
    given.insert(
        "decisionOutcome".into(),
        req.get("outcome").cloned().unwrap_or(Value::Null),
    );
    given.insert("decisionType".into(), json!("FINAL"));
    for (from, to) in [
        ("description", "description"),
        ("decidedBy", "decidedBy"),
        ("extraParameters", "extraParameters"),
    ] {
        if let Some(v) = req.get(from) {
            given.insert(to.into(), v.clone());
        }
    }
    let (decision, announcement) = match record_decision(&w, MUNICIPALITY, NAMESPACE, &id, given) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let pushed = match announcement {
        None => json!(null),
        Some(a) => {
            let url = a.url.clone();
            match announce(&w, a).await {
                Ok(status) => json!({"url": url, "status": status}),
                Err(e) => json!({"url": url, "error": e}),
            }
        }
    };
    (
        StatusCode::CREATED,
        Json(json!({"decision": decision, "announced": pushed})),
    )
        .into_response()
}

fn find<'a>(
    errands: &'a mut Errands,
    municipality: &str,
    namespace: &str,
    id: &str,
) -> Option<&'a mut Value> {
    let wanted: u64 = id.parse().ok()?;
    errands
        .list
        .iter_mut()
        .find(|(m, ns, e)| m == municipality && ns == namespace && e["id"].as_u64() == Some(wanted))
        .map(|(_, _, e)| e)
}

async fn show(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
) -> Response {
    let mut errands = lock(&w.errands);
    match find(&mut errands, &municipality, &namespace, &id) {
        Some(e) => Json(e.clone()).into_response(),
        None => not_found(&id),
    }
}

async fn update(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let patch = match object(&body) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    let mut errands = lock(&w.errands);
    let Some(Value::Object(errand)) = find(&mut errands, &municipality, &namespace, &id) else {
        return not_found(&id);
    };
    for (k, v) in patch {
        if !matches!(k.as_str(), "id" | "errandNumber" | "created") {
            errand.insert(k, v);
        }
    }
    errand.insert(
        "updated".into(),
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::{field_matches, filter_terms};
    use serde_json::json;

    #[test]
    fn a_dotted_field_walks_objects_and_an_array_matches_when_any_element_does() {
        let errand = json!({
            "id": 7,
            "externalCaseId": "OEP-412-1",
            "status": {"statusType": "Mottaget"},
            "stakeholders": [
                {"type": "PERSON", "roles": ["APPLICANT"], "firstName": "Anna"},
                {"type": "PERSON", "roles": ["STUDENT"], "personId": "4f0c2b7e-0412-4a5b-8c9d-000000002383"}
            ]
        });
        let id = "4f0c2b7e-0412-4a5b-8c9d-000000002383";
        assert!(field_matches(&errand, "stakeholders.personId", id));
        assert!(!field_matches(
            &errand,
            "stakeholders.personId",
            "4f0c2b7e-0412-4a5b-8c9d-000000009999"
        ));
        // A field none of the elements has, and a path through a string, match nothing.
        assert!(!field_matches(
            &errand,
            "stakeholders.organizationNumber",
            id
        ));
        assert!(!field_matches(&errand, "externalCaseId.x", "OEP-412-1"));
        // Objects are walked; top-level fields and numbers as before.
        assert!(field_matches(&errand, "status.statusType", "Mottaget"));
        assert!(field_matches(&errand, "externalCaseId", "OEP-412-1"));
        assert!(field_matches(&errand, "id", "7"));
        // A leaf that is a list matches by any member (a role among a stakeholder's roles).
        assert!(field_matches(&errand, "stakeholders.roles", "STUDENT"));
        assert!(!field_matches(&errand, "stakeholders.roles", "OPERATOR"));
        // An errand without stakeholders, or with an empty list, is not found.
        assert!(!field_matches(
            &json!({"id": 8}),
            "stakeholders.personId",
            id
        ));
        assert!(!field_matches(
            &json!({"stakeholders": []}),
            "stakeholders.personId",
            id
        ));
        // The terms of such a filter are read like any other.
        assert_eq!(
            filter_terms(&format!("stakeholders.personId:'{id}'")).unwrap(),
            vec![("stakeholders.personId".to_string(), id.to_string())]
        );
    }

    #[test]
    fn filters_of_equal_fields_are_read_and_others_refused_with_what_is_understood() {
        assert_eq!(
            filter_terms("externalCaseId:'OEP-412-1' and caseType:'IKE'").unwrap(),
            vec![
                ("externalCaseId".to_string(), "OEP-412-1".to_string()),
                ("caseType".to_string(), "IKE".to_string())
            ]
        );
        assert!(
            filter_terms("caseType~'*x*'")
                .unwrap_err()
                .contains("field:'value'")
        );
        assert!(filter_terms("caseType:IKE").unwrap_err().contains("quote"));
    }
}
