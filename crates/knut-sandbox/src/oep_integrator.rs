//! Sundsvall's oep-integrator (api-service-oep-integrator v1.5, `oep-integrator/openapi.yaml`
//! in the shared fixtures): the municipality's REST facade over OeP. The simulation answers
//! from the sandbox's OeP instances ([`crate::oep`]), so what is submitted there is found
//! here:
//!
//! | call | answer |
//! |---|---|
//! | `GET /{municipalityId}/{instanceType}/cases/parties/{partyId}?fromDate&toDate&status&includeStatus` (getCasesByPartyId) | a JSON array of `CaseEnvelope`: the instances the person posted ([`crate::oep::Instance::poster_civic_no`]), newest first. `partyId` is the person's personId, as Metakatalogen ([`crate::citizen`]) gives it; `flowInstanceId` a string, `created` (OeP's `added`) and `statusUpdated` as `2023-11-15T11:55` (the contract's examples: OeP's minutes, no seconds, no offset), `displayName` the flow family's name, `status` a `CaseStatus` (`id`, `name`, the message flags, `status` OeP's content type: `SUBMITTED`, `IN_PROGRESS`, `WAITING_FOR_COMPLETION`, `ARCHIVED`) only with `includeStatus=true`. `fromDate`/`toDate` (YYYY-MM-DD, both included) keep the cases created within them, `status` those whose status name it is (case-insensitive). A partyId the population does not know, or a person who posted nothing, gives `[]` (the contract declares no 404) |
//!
//! What the real service refuses, the simulation refuses as it does, with a 400
//! problem+json: a `municipalityId` that is not four digits (a `ConstraintViolationProblem`
//! naming `getCasesByPartyId.municipalityId`; the sandbox holds Sundsvall's instances only,
//! so another municipality is a 400 saying so), an `instanceType` outside the contract's
//! `InstanceType` (`INTERNAL`, `EXTERNAL`), a `fromDate`/`toDate` that is not a date, an
//! `includeStatus` that is not `true`/`false`. No answer repeats the partyId.
//!
//! Every instance in the sandbox is an external one (citizens' e-services); `INTERNAL`
//! finds nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use serde_json::{Value, json};
use uuid::Uuid;

use super::control::problem;
use super::{World, lock, read};
use crate::oep::Instance;
use crate::xml;

/// The municipality whose OeP the sandbox simulates.
const MUNICIPALITY: &str = "2281";

/// The contract's `InstanceType`.
const INSTANCE_TYPES: &[&str] = &["INTERNAL", "EXTERNAL"];

/// The flow families' names the project uses (`schemas/oep-e-services.md`,
/// Skolresekollen's e-services), for an instance whose export names no flow.
const FAMILIES: &[(u64, &str)] = &[
    (136, "Skolskjuts"),
    (261, "Busskortsansökan för gymnasieelever"),
    (412, "Ansökan om ledighet för elev"),
    (415, "Skolval grundskola"),
    (420, "Ansökan om vuxenutbildning i annan kommun"),
];

/// The routes, relative to `/sandbox/oep-integrator`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route(
            "/{municipality}/{instance_type}/cases/parties/{party}",
            get(cases_by_party),
        )
        .with_state(world)
}

/// The filters of getCasesByPartyId.
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    /// Cases created on or after this day.
    pub from_date: Option<NaiveDate>,
    /// Cases created on or before this day.
    pub to_date: Option<NaiveDate>,
    /// Cases whose status has this name (case-insensitive).
    pub status: Option<String>,
    /// Whether each envelope carries its status.
    pub include_status: bool,
}

impl Filter {
    /// The filters from the query, or the 400 detail saying which parameter is wrong.
    pub fn from_query(q: &BTreeMap<String, String>) -> Result<Filter, String> {
        let date = |name: &str| -> Result<Option<NaiveDate>, String> {
            q.get(name)
                .map(|v| {
                    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                        format!(
                            "Method parameter '{name}': not a date; give it as YYYY-MM-DD, e.g. 2024-01-31"
                        )
                    })
                })
                .transpose()
        };
        let include_status = match q.get("includeStatus").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(
                    "Method parameter 'includeStatus': not a boolean; give true or false".into(),
                );
            }
        };
        Ok(Filter {
            from_date: date("fromDate")?,
            to_date: date("toDate")?,
            status: q.get("status").filter(|s| !s.is_empty()).cloned(),
            include_status,
        })
    }

    fn keeps(&self, i: &Instance) -> bool {
        let day = i.added.date();
        self.from_date.is_none_or(|d| day >= d)
            && self.to_date.is_none_or(|d| day <= d)
            && self
                .status
                .as_deref()
                .is_none_or(|s| i.status.trim().eq_ignore_ascii_case(s.trim()))
    }
}

/// The flow family's name: the export's `Header/Flow/Name`, else the table of the
/// families the project uses.
fn display_name(i: &Instance) -> Option<String> {
    xml::parse(i.document.as_bytes())
        .ok()
        .and_then(|doc| {
            doc.text_at(&["Header", "Flow", "Name"])
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .or_else(|| {
            FAMILIES
                .iter()
                .find(|(f, _)| *f == i.family_id)
                .map(|(_, name)| (*name).to_string())
        })
}

/// OeP's content type of a status, from its name (the sandbox's statuses carry no type).
fn content_type(status: &str) -> &'static str {
    match status.trim().to_lowercase().as_str() {
        "inkommen" | "inskickat" | "mottaget" => "SUBMITTED",
        "komplettering" | "väntar på komplettering" => "WAITING_FOR_COMPLETION",
        "beslutad" | "beviljat" | "avslag" | "avslutad" | "klart" | "avbruten" => "ARCHIVED",
        _ => "IN_PROGRESS",
    }
}

/// One instance as a `CaseEnvelope`.
pub fn envelope(i: &Instance, include_status: bool) -> Value {
    let mut e = json!({
        "flowInstanceId": i.id.to_string(),
        "created": i.added.format("%Y-%m-%dT%H:%M").to_string(),
        "statusUpdated": i.status_updated.format("%Y-%m-%dT%H:%M").to_string(),
    });
    if let Some(name) = display_name(i) {
        e["displayName"] = json!(name);
    }
    if include_status {
        let kind = content_type(&i.status);
        e["status"] = json!({
            "id": i.status_id,
            "name": i.status.trim(),
            "newExternalMessagesDisallowed": kind == "ARCHIVED",
            "addExternalMessage": false,
            "addInternalMessage": false,
            "isRestrictedAdminDeletable": false,
            "status": kind,
        });
    }
    e
}

/// The cases `civic_no` posted that `filter` keeps, newest first.
pub fn cases_of(instances: &[Instance], civic_no: &str, filter: &Filter) -> Vec<Value> {
    let mut mine: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.poster_civic_no.as_deref() == Some(civic_no) && filter.keeps(i))
        .collect();
    mine.sort_by(|a, b| b.added.cmp(&a.added).then(b.id.cmp(&a.id)));
    mine.into_iter()
        .map(|i| envelope(i, filter.include_status))
        .collect()
}

fn bad_request(detail: impl Into<String>) -> Response {
    problem(StatusCode::BAD_REQUEST, "Bad Request", detail)
}

/// The real service's answer to a municipality id its validator refuses.
fn not_a_municipality() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({
            "type": "https://zalando.github.io/problem/constraint-violation",
            "status": 400,
            "title": "Constraint Violation",
            "violations": [{
                "field": "getCasesByPartyId.municipalityId",
                "message": "not a valid municipality ID: give the municipality's four-digit code (Sundsvall: 2281)",
            }],
        })
        .to_string(),
    )
        .into_response()
}

async fn cases_by_party(
    State(w): State<Arc<World>>,
    Path((municipality, instance_type, party)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    if municipality.len() != 4 || !municipality.bytes().all(|b| b.is_ascii_digit()) {
        return not_a_municipality();
    }
    if municipality != MUNICIPALITY {
        return bad_request(format!(
            "the sandbox's oep-integrator holds the OeP instances of municipality {MUNICIPALITY} only; call /{MUNICIPALITY}/…"
        ));
    }
    if !INSTANCE_TYPES.contains(&instance_type.as_str()) {
        return bad_request(format!(
            "Method parameter 'instanceType': not an InstanceType; give one of {}",
            INSTANCE_TYPES.join(", ")
        ));
    }
    let q: BTreeMap<String, String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let filter = match Filter::from_query(&q) {
        Ok(f) => f,
        Err(detail) => return bad_request(detail),
    };
    // OeP's instances are the external plane's (citizens' e-services).
    if instance_type != "EXTERNAL" {
        return Json(json!([])).into_response();
    }
    // The party is a person of the population, by Metakatalogen's personId.
    let civic_no = Uuid::parse_str(party.trim()).ok().and_then(|id| {
        read(&w.population)
            .persons
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.civic_no.clone())
    });
    let Some(civic_no) = civic_no else {
        return Json(json!([])).into_response();
    };
    let oep = lock(&w.oep);
    Json(Value::Array(cases_of(&oep.list, &civic_no, &filter))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::id_for;

    const ASA: &str = "198006112463";
    const ANNA: &str = "198503122387";

    /// Call the handler as the router would, with `path` relative to the system.
    async fn get(w: &Arc<World>, path: &str) -> (StatusCode, Value) {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let [m, t, "cases", "parties", party] = parts[..] else {
            panic!("not a getCasesByPartyId path: {path}");
        };
        let r = cases_by_party(
            State(w.clone()),
            Path((m.to_string(), t.to_string(), party.to_string())),
            RawQuery(Some(query.to_string())),
        )
        .await;
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn leave(day: u32, status: &str) -> String {
        format!(
            "<FlowInstance><Header><Flow><FamilyID>412</FamilyID><Name><![CDATA[ Ansökan om ledighet för elev ]]></Name></Flow>\
             <Status><ID>77</ID><Name>{status}</Name></Status><Posted>2026-10-{day:02}T09:30:00</Posted></Header><Values/></FlowInstance>"
        )
    }

    #[tokio::test]
    async fn a_persons_cases_by_personid_with_filters_and_status() {
        let w = Arc::new(World::default());
        {
            let mut oep = lock(&w.oep);
            for (day, status) in [(3, "Inkommen"), (20, "Beslutad")] {
                let id = oep.submit(leave(day, status).as_bytes()).expect("taken");
                oep.set_poster(id, Some(ASA.to_string()));
            }
            // Another family's instance, without a flow name: the table names it.
            let id = oep
                .submit(
                    b"<FlowInstance><Header><Flow><FamilyID>415</FamilyID></Flow><Status><ID>5</ID>\
                      <Name>Inkommen</Name></Status><Posted>2026-10-10T08:05:00</Posted></Header></FlowInstance>",
                )
                .expect("taken");
            oep.set_poster(id, Some(ASA.to_string()));
        }
        let asa = id_for(ASA);
        let base = format!("/2281/EXTERNAL/cases/parties/{asa}");
        let (status, all) = get(&w, &format!("{base}?includeStatus=true")).await;
        assert_eq!(status, StatusCode::OK, "{all}");
        let all = all.as_array().expect("an array").clone();
        assert_eq!(all.len(), 3, "{all:?}");
        // Newest first; the contract's shapes.
        assert_eq!(all[0]["created"], "2026-10-20T09:30");
        assert_eq!(all[0]["statusUpdated"], "2026-10-20T09:30");
        assert_eq!(all[0]["displayName"], "Ansökan om ledighet för elev");
        assert!(all[0]["flowInstanceId"].is_string());
        assert_eq!(
            all[0]["status"],
            json!({"id": 77, "name": "Beslutad", "newExternalMessagesDisallowed": true,
                   "addExternalMessage": false, "addInternalMessage": false,
                   "isRestrictedAdminDeletable": false, "status": "ARCHIVED"})
        );
        assert_eq!(all[1]["displayName"], "Skolval grundskola");
        assert_eq!(all[2]["status"]["status"], "SUBMITTED");

        // Without includeStatus, no status.
        let (_, plain) = get(&w, &base).await;
        assert!(plain[0].get("status").is_none(), "{plain}");
        // The dates include both ends; status by name, any case.
        let (_, some) = get(&w, &format!("{base}?fromDate=2026-10-03&toDate=2026-10-10")).await;
        assert_eq!(some.as_array().map(Vec::len), Some(2), "{some}");
        let (_, decided) = get(&w, &format!("{base}?status=beslutad")).await;
        assert_eq!(decided.as_array().map(Vec::len), Some(1), "{decided}");

        // The seed's instances: Märta's leave application was posted by her mother Anna.
        let (_, anna) = get(
            &w,
            &format!("/2281/EXTERNAL/cases/parties/{}", id_for(ANNA)),
        )
        .await;
        assert_eq!(anna.as_array().map(Vec::len), Some(1), "{anna}");
        // An unknown party, a person who posted nothing, the internal instance: nothing.
        for path in [
            format!("/2281/EXTERNAL/cases/parties/{}", Uuid::nil()),
            "/2281/EXTERNAL/cases/parties/not-a-uuid".to_string(),
            // Elin Sandberg, who posted nothing.
            format!(
                "/2281/EXTERNAL/cases/parties/{}",
                read(&w.population)
                    .persons
                    .iter()
                    .find(|p| p.given_name == "Elin")
                    .map(|p| p.id)
                    .expect("Elin in the seed")
            ),
            format!("/2281/INTERNAL/cases/parties/{asa}"),
        ] {
            let (status, body) = get(&w, &path).await;
            assert_eq!((status, body), (StatusCode::OK, json!([])), "{path}");
        }
    }

    #[tokio::test]
    async fn what_the_real_service_refuses_is_a_400_problem() {
        let w = Arc::new(World::default());
        let asa = id_for(ASA);
        for (path, says) in [
            (
                format!("/22811/EXTERNAL/cases/parties/{asa}"),
                "municipality",
            ),
            (
                format!("/abcd/EXTERNAL/cases/parties/{asa}"),
                "municipality",
            ),
            (format!("/2262/EXTERNAL/cases/parties/{asa}"), "2281"),
            (
                format!("/2281/external/cases/parties/{asa}"),
                "INTERNAL, EXTERNAL",
            ),
            (
                format!("/2281/EXTERNAL/cases/parties/{asa}?fromDate=2026-13-01"),
                "fromDate",
            ),
            (
                format!("/2281/EXTERNAL/cases/parties/{asa}?toDate=igår"),
                "toDate",
            ),
            (
                format!("/2281/EXTERNAL/cases/parties/{asa}?includeStatus=ja"),
                "includeStatus",
            ),
        ] {
            let (status, body) = get(&w, &path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
            assert!(body.to_string().contains(says), "{path}: {body}");
            assert!(!body.to_string().contains(&asa.to_string()), "{body}");
        }
    }
}
