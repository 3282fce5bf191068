//! Open ePlatform (OeP), the e-service platform, as its integrations see it (shapes from
//! `fixtures/oep`):
//!
//! | call | answer |
//! |---|---|
//! | `GET /api/instanceapi/getinstances/family/{familyId}/{status}?fromDate=YYYY-MM-DD&toDate=YYYY-MM-DD` | `<FlowInstances>` of that family whose status name or alias is `{status}` (case-insensitive), added within the dates (inclusive), lower-camel children as OeP writes them; `text/xml;charset=ISO-8859-1` |
//! | `GET /api/instanceapi/getinstance/{id}/xml` | the `<FlowInstance>` export in ISO-8859-1 with its current status; 404 when unknown |
//! | `POST /api/callback` (SOAP 1.1) | checked against OeP's callback contract first ([`oep_callback`]): what the XSD refuses is a SOAP Fault, HTTP 500, worded as libxml2 words it. `setStatus` (by `flowInstanceID` or `externalID`, with `statusAlias` or `statusID`) → `setStatusResponse/eventID`; `addMessage` / `addInternalMessage` (by either id, with attachments) → `…Response/messageID`; `confirmDelivery` → `confirmDeliveryResponse`; an unknown instance → SOAP Fault, HTTP 500, like OeP |
//! | `POST /_submit[?poster=YYYYMMDDNNNN]` | a FlowInstance XML in any declared encoding becomes a new instance (a missing `FlowInstanceID` is assigned); 201 `{"flowInstanceID": n}`. `poster` is the personnummer of the person who posted it (12 digits, no dash; OeP's export does not carry it, OeP knows it from the login): what [`crate::oep_integrator`] finds a person's cases by; a malformed one is a 400 problem and nothing is stored. With `?push=true` it is also posted, in its declared encoding, to Knutpunkt's OeP ingress (`World::oep_push_url`), as OeP's XML export integration does; with `?withheld=true` it is listed but its export answers 500 (an errand OeP fails to return) |
//! | `GET /_instances` | the instances as JSON (id, family, status, messages, internal messages, attachment names, delivered, poster) |
//!
//! The sandbox is seeded with a few instances of the leave application family (412) in
//! several statuses, each posted by the child's first guardian in the seed (Märta's by Anna
//! Lindqvist, Leo's by Sara Nilsson, Ebba's by Johan Berg).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;
use serde_json::{Value, json};

use super::control::problem;
use super::{World, lock};
use crate::oep_callback;
use crate::xml::{self, Encoding};

/// The content type OeP answers with.
const OEP_XML: &str = "text/xml;charset=ISO-8859-1";

/// One FlowInstance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// FlowInstanceID.
    pub id: u64,
    /// Flow FamilyID.
    pub family_id: u64,
    /// Status name (`Inkommen`, `Beslutad`, …).
    pub status: String,
    /// Status id.
    pub status_id: u64,
    /// When it was added.
    pub added: NaiveDateTime,
    /// When its status last changed (`added` until a setStatus).
    pub status_updated: NaiveDateTime,
    /// The personnummer (12 digits) of the person who posted it: OeP knows it from the
    /// login, its export does not carry it (`POST /_submit?poster=`).
    pub poster_civic_no: Option<String>,
    /// The export document as text, without its prolog.
    pub document: String,
    /// The encoding it was submitted in.
    pub encoding: Encoding,
    /// Messages to the applicant added through the callback (addMessage).
    pub messages: Vec<String>,
    /// Internal messages to the case officers (addInternalMessage), and attachment file
    /// names of either kind.
    pub internal_messages: Vec<String>,
    /// File names of the attachments the callback's messages carried.
    pub attachments: Vec<String>,
    /// Delivery confirmations (`delivered`, external id).
    pub delivered: Option<(bool, String)>,
    /// External id set through setStatus / confirmDelivery.
    pub external_id: Option<String>,
    /// Listed, but its export fails (`POST /_submit?withheld=true`): an errand OeP will not
    /// return, as when an old e-service version's form can no longer be rendered.
    pub withheld: bool,
}

/// The instances OeP holds.
#[derive(Debug)]
pub struct Instances {
    /// By id, in order of submission.
    pub list: Vec<Instance>,
    next_id: u64,
    next_event: u64,
    /// Where `?push=true` sends a submitted instance (Knutpunkt's OeP ingress).
    pub push_url: Option<String>,
}

impl Default for Instances {
    fn default() -> Self {
        let mut me = Instances {
            list: Vec::new(),
            next_id: 5000,
            next_event: 16000,
            push_url: None,
        };
        // The applicants are the seed's children (seed.rs), named there once.
        let pop = super::seed::Population::seed();
        for (given, reason, status, day) in [
            ("Märta", "Släktträff i Överkalix", "Inkommen", 2),
            ("Leo", "Tävling i orientering", "Inkommen", 5),
            ("Ebba", "Körresa till Åbo", "Beslutad", 9),
        ] {
            let Some(p) = pop.persons.iter().find(|p| p.given_name == given) else {
                continue;
            };
            let civic_no = format!("{}-{}", &p.civic_no[..8], &p.civic_no[8..]);
            let doc = leave_application(&p.display_name(), &civic_no, reason, status, day);
            // The seed documents are built here and always parse.
            if let Ok(id) = me.submit(doc.as_bytes()) {
                // The child's first guardian applied.
                let poster = p
                    .guardians
                    .first()
                    .and_then(|g| pop.persons.iter().find(|q| q.id == *g))
                    .map(|q| q.civic_no.clone());
                me.set_poster(id, poster);
            }
        }
        me
    }
}

/// A leave application export (family 412, version 4: see schemas/oep-e-services.md) for
/// the seed.
fn leave_application(
    student: &str,
    civic_no: &str,
    reason: &str,
    status: &str,
    day: u32,
) -> String {
    let (given, family) = student.split_once(' ').unwrap_or((student, ""));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<FlowInstance>\n  <Header>\n    <Flow>\n      \
         <FamilyID>412</FamilyID>\n      <Version>4</Version>\n      <FlowID>5121</FlowID>\n      \
         <Name><![CDATA[Ansökan om ledighet för elev]]></Name>\n    </Flow>\n    <Status>\n      \
         <ID>{}</ID>\n      <Name><![CDATA[{status}]]></Name>\n    </Status>\n    \
         <Posted>2026-11-{day:02}T08:00:00</Posted>\n  </Header>\n  <Values>\n    <Elev>\n      \
         <QueryID>71001</QueryID>\n      <Name><![CDATA[Uppgifter om eleven]]></Name>\n      \
         <Fornamn>{}</Fornamn>\n      <Efternamn>{}</Efternamn>\n      <Personnummer>{civic_no}</Personnummer>\n    \
         </Elev>\n    <Ledighetsperiod>\n      <QueryID>71003</QueryID>\n      \
         <Name><![CDATA[Vilka dagar gäller ledigheten?]]></Name>\n      \
         <StartDate>2027-01-{:02}</StartDate>\n      <EndDate>2027-01-{:02}</EndDate>\n    </Ledighetsperiod>\n    \
         <Skal>\n      <QueryID>71002</QueryID>\n      \
         <Name><![CDATA[Skäl till ledigheten]]></Name>\n      <Value><![CDATA[{reason}]]></Value>\n    \
         </Skal>\n  </Values>\n</FlowInstance>\n",
        if status == "Beslutad" { 79 } else { 77 },
        escape(given),
        escape(family),
        day + 10,
        day + 11,
    )
}

/// Escape text for an XML element.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Why a submitted document was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Not readable XML.
    #[error("not a readable FlowInstance XML: {0}")]
    Xml(String),
    /// Lacks what an export always has.
    #[error("{0}")]
    Missing(&'static str),
}

impl Instances {
    /// Store a FlowInstance export (any declared encoding) as a new instance; its id.
    pub fn submit(&mut self, bytes: &[u8]) -> Result<u64, SubmitError> {
        let root = xml::parse(bytes).map_err(SubmitError::Xml)?;
        if root.name != "FlowInstance" {
            return Err(SubmitError::Missing(
                "the root element must be <FlowInstance>",
            ));
        }
        let family_id = root
            .text_at(&["Header", "Flow", "FamilyID"])
            .and_then(|s| s.parse().ok())
            .ok_or(SubmitError::Missing(
                "Header/Flow/FamilyID (a number) is missing",
            ))?;
        let status = root
            .text_at(&["Header", "Status", "Name"])
            .unwrap_or("Inkommen")
            .to_string();
        let status_id = root
            .text_at(&["Header", "Status", "ID"])
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let added = root
            .text_at(&["Header", "Posted"])
            .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok())
            .unwrap_or_else(|| chrono::Local::now().naive_local());
        let (text, encoding) = xml::decode(bytes).map_err(SubmitError::Xml)?;
        let mut document = strip_prolog(&text).to_string();
        let id = match root
            .text_at(&["Header", "FlowInstanceID"])
            .and_then(|s| s.parse().ok())
        {
            Some(id) => id,
            None => {
                let id = self.next_id;
                let at = document
                    .find("<Header>")
                    .ok_or(SubmitError::Missing("<Header> is missing"))?
                    + "<Header>".len();
                document.insert_str(at, &format!("\n    <FlowInstanceID>{id}</FlowInstanceID>"));
                id
            }
        };
        if let Some(held) = self.list.iter().find(|i| i.id == id) {
            // The same export again (a tutorial's command run twice) is the same instance.
            if held.document == document {
                return Ok(id);
            }
            return Err(SubmitError::Missing(
                "another instance with this FlowInstanceID exists; leave FlowInstanceID out to get a new one",
            ));
        }
        self.next_id = self.next_id.max(id + 1);
        self.list.push(Instance {
            id,
            family_id,
            status,
            status_id,
            added,
            status_updated: added,
            poster_civic_no: None,
            document,
            encoding,
            messages: Vec::new(),
            internal_messages: Vec::new(),
            attachments: Vec::new(),
            delivered: None,
            external_id: None,
            withheld: false,
        });
        Ok(id)
    }

    /// Store a FlowInstance export that names its FlowInstanceID, replacing the instance of
    /// that id if there is one (its status, messages and deliveries go with it); `withheld`
    /// as `POST /_submit?withheld=true`. What loads a fixed scenario again calls this.
    pub fn replace(&mut self, bytes: &[u8], withheld: bool) -> Result<u64, SubmitError> {
        let root = xml::parse(bytes).map_err(SubmitError::Xml)?;
        let id: u64 = root
            .text_at(&["Header", "FlowInstanceID"])
            .and_then(|s| s.trim().parse().ok())
            .ok_or(SubmitError::Missing(
                "Header/FlowInstanceID (a number) is missing: a replacement names the instance",
            ))?;
        let held = self.list.iter().position(|i| i.id == id);
        let earlier = held.map(|at| self.list.remove(at));
        match self.submit(bytes) {
            Ok(id) => {
                self.withhold(id, withheld);
                Ok(id)
            }
            Err(e) => {
                // Refused: the instance held stays as it was.
                if let (Some(at), Some(i)) = (held, earlier) {
                    self.list.insert(at, i);
                }
                Err(e)
            }
        }
    }

    /// Whether the instance's export fails (see [`Instance::withheld`]).
    pub fn withhold(&mut self, id: u64, withheld: bool) {
        if let Some(i) = self.find_mut(id) {
            i.withheld = withheld;
        }
    }

    /// Who posted the instance (a personnummer, 12 digits; see [`Instance::poster_civic_no`]).
    pub fn set_poster(&mut self, id: u64, civic_no: Option<String>) {
        if let Some(i) = self.find_mut(id) {
            i.poster_civic_no = civic_no;
        }
    }

    fn find_mut(&mut self, id: u64) -> Option<&mut Instance> {
        self.list.iter_mut().find(|i| i.id == id)
    }
}

fn strip_prolog(text: &str) -> &str {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with("<?xml")
        && let Some(end) = t.find("?>")
    {
        return t[end + 2..].trim_start();
    }
    t
}

impl Instance {
    /// The export with its current status, in `encoding`, with a matching prolog.
    pub fn export(&self, encoding: Encoding) -> Vec<u8> {
        let mut doc = self.document.clone();
        if let (Some(start), Some(end)) = (doc.find("<Status>"), doc.find("</Status>")) {
            doc.replace_range(
                start..end + "</Status>".len(),
                &format!(
                    "<Status>\n      <ID>{}</ID>\n      <Name><![CDATA[{}]]></Name>\n    </Status>",
                    self.status_id, self.status
                ),
            );
        }
        let prolog = format!("<?xml version=\"1.0\" encoding=\"{}\"?>\n", encoding.name());
        [prolog.into_bytes(), xml::encode(&doc, encoding)].concat()
    }
}

/// The routes, relative to `/sandbox/oep`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route(
            "/api/instanceapi/getinstances/family/{family}/{status}",
            get(list),
        )
        .route("/api/instanceapi/getinstance/{id}/xml", get(export))
        .route("/api/callback", post(callback))
        .route("/_submit", post(submit))
        .route("/_instances", get(instances))
        .with_state(world)
}

fn latin1_xml(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, OEP_XML)],
        xml::encode(text, Encoding::Latin1),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Period {
    from_date: Option<NaiveDate>,
    to_date: Option<NaiveDate>,
}

async fn list(
    State(w): State<Arc<World>>,
    Path((family, status)): Path<(u64, String)>,
    Query(period): Query<Period>,
) -> Response {
    let oep = lock(&w.oep);
    let mut xml = String::from("<?xml version='1.0' encoding='ISO-8859-1'?>\n<FlowInstances>\n");
    for i in oep.list.iter().filter(|i| {
        i.family_id == family
            && i.status.eq_ignore_ascii_case(&status)
            && period.from_date.is_none_or(|d| i.added.date() >= d)
            && period.to_date.is_none_or(|d| i.added.date() <= d)
    }) {
        let added = i.added.format("%Y-%m-%d %H:%M");
        let ms = i.added.and_utc().timestamp_millis();
        xml.push_str(&format!(
            "\t<FlowInstance>\n\t\t<flowInstanceID>{}</flowInstanceID>\n\t\t<added>{added}</added>\n\
             \t\t<firstSubmitted>{added}</firstSubmitted>\n\t\t<fullyPopulated>true</fullyPopulated>\n\
             \t\t<lastStatusChange>{added}</lastStatusChange>\n\t\t<profileID>1</profileID>\n\
             \t\t<remote>false</remote>\n\t\t<addedInMilliseconds>{ms}</addedInMilliseconds>\n\
             \t\t<firstSubmittedInMilliseconds>{ms}\n\t\t</firstSubmittedInMilliseconds>\n\
             \t\t<flowFamilyID>{}</flowFamilyID>\n\t\t<Status>\n\t\t\t<statusID>{}</statusID>\n\
             \t\t\t<name>{}</name>\n\t\t</Status>\n\t</FlowInstance>\n",
            i.id,
            i.family_id,
            i.status_id,
            escape(&i.status)
        ));
    }
    xml.push_str("</FlowInstances>\n");
    latin1_xml(StatusCode::OK, &xml)
}

async fn export(State(w): State<Arc<World>>, Path(id): Path<u64>) -> Response {
    let oep = lock(&w.oep);
    match oep.list.iter().find(|i| i.id == id) {
        Some(i) if i.withheld => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Export failed",
            format!("flow instance {id} could not be exported"),
        ),
        Some(i) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, OEP_XML)],
            i.export(Encoding::Latin1),
        )
            .into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("no flow instance with ID {id}"),
        ),
    }
}

fn soap_fault(message: &str) -> Response {
    latin1_xml(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!(
            "<?xml version='1.0' encoding='ISO-8859-1'?><S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\">\
             <S:Body><S:Fault><faultcode>S:Server</faultcode><faultstring>{}</faultstring></S:Fault></S:Body></S:Envelope>",
            escape(message)
        ),
    )
}

fn soap_response(operation: &str, inner: &str) -> Response {
    latin1_xml(
        StatusCode::OK,
        &format!(
            "<?xml version='1.0' encoding='ISO-8859-1'?>\n<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\">\n\
             \t<S:Body>\n\t\t<{operation}Response xmlns=\"http://www.oeplatform.org/version/1.0/schemas/integration/callback\">{inner}</{operation}Response>\n\
             \t</S:Body>\n</S:Envelope>\n"
        ),
    )
}

async fn callback(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let envelope = match xml::parse(&body) {
        Ok(e) => e,
        Err(e) => return soap_fault(&format!("Unreadable SOAP request: {e}")),
    };
    let Some(soap_body) = envelope
        .child("Body")
        .filter(|_| envelope.name == "Envelope")
    else {
        return soap_fault("Not a SOAP 1.1 envelope with a Body");
    };
    // The operation is the Body's first element (the Body's own attributes are no operation).
    let Some(args) = soap_body.children.first() else {
        return soap_fault("The SOAP Body is empty");
    };
    // What OeP's callback XSD refuses, the simulation refuses before it looks anything up.
    if let Err(violation) = oep_callback::check(args) {
        return soap_fault(&violation);
    }
    let op = &args.name;
    let number = |k: &str| {
        args.text_at(&[k])
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let mut oep = lock(&w.oep);
    let external = args
        .text_at(&["externalID", "ID"])
        .map(|s| s.trim().to_string());
    let target = match number("flowInstanceID") {
        Some(id) => Some(id),
        None => external.as_deref().and_then(|ext| {
            oep.list
                .iter()
                .find(|i| i.external_id.as_deref() == Some(ext))
                .map(|i| i.id)
        }),
    };
    let Some(id) = target.filter(|id| oep.list.iter().any(|i| i.id == *id)) else {
        let shown = target.map_or_else(|| external.unwrap_or_default(), |id| id.to_string());
        return soap_fault(&format!(
            "The requested flow instance with ID {shown} was not found"
        ));
    };
    oep.next_event += 1;
    let event = oep.next_event;
    let Some(instance) = oep.find_mut(id) else {
        return soap_fault("The requested flow instance was not found");
    };
    match op.as_str() {
        "setStatus" => {
            // The contract check let exactly one of the two through; an alias may be empty.
            let status_id = args
                .child("statusID")
                .map(|e| e.text.trim().trim_start_matches('+').parse::<i64>());
            match (args.child("statusAlias"), status_id) {
                (Some(alias), _) => instance.status = alias.text.clone(),
                (None, Some(Ok(status_id))) if status_id > 0 => {
                    instance.status_id = status_id.unsigned_abs();
                    instance.status = format!("Status {status_id}");
                }
                (None, Some(Ok(status_id))) => {
                    return soap_fault(&format!(
                        "The requested status with ID {status_id} was not found"
                    ));
                }
                _ => return soap_fault("setStatus needs statusAlias or statusID"),
            }
            instance.status_updated = chrono::Local::now().naive_local();
            soap_response("setStatus", &format!("<eventID>{event}</eventID>"))
        }
        "addMessage" | "addInternalMessage" => {
            let text = args
                .text_at(&["message", "message"])
                .unwrap_or_default()
                .to_string();
            if let Some(message) = args.child("message") {
                instance.attachments.extend(
                    message
                        .children_named("attachments")
                        .filter_map(|a| a.text_at(&["filename"]).map(str::to_string)),
                );
            }
            if op == "addMessage" {
                instance.messages.push(text);
            } else {
                instance.internal_messages.push(text);
            }
            soap_response(op, &format!("<messageID>{event}</messageID>"))
        }
        "confirmDelivery" => {
            let delivered = matches!(
                args.text_at(&["delivered"]).map(str::trim),
                Some("true" | "1")
            );
            instance.delivered = Some((delivered, external.clone().unwrap_or_default()));
            if external.is_some() {
                instance.external_id = external;
            }
            soap_response("confirmDelivery", "")
        }
        other => soap_fault(&format!(
            "Unknown operation {other}; the simulation serves {}",
            oep_callback::operations().collect::<Vec<_>>().join(", ")
        )),
    }
}

#[derive(Deserialize)]
struct Push {
    #[serde(default)]
    push: bool,
    /// The instance is listed but its export fails (see [`Instance::withheld`]).
    #[serde(default)]
    withheld: bool,
    /// The poster's personnummer, `YYYYMMDDNNNN` (see [`Instance::poster_civic_no`]).
    poster: Option<String>,
}

/// The poster's personnummer as `_submit` takes it, or what is wrong with it (never
/// repeating the number).
pub fn poster_civic_no(given: &str) -> Result<String, &'static str> {
    if given.len() != 12 || !given.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "`poster` must be the poster's personnummer as 12 digits, YYYYMMDDNNNN, without a dash",
        );
    }
    if !super::personnummer::is_valid(given) {
        return Err("`poster` is not a personnummer: its date or its check digit is wrong");
    }
    Ok(given.to_string())
}

async fn submit(
    State(w): State<Arc<World>>,
    Query(q): Query<Push>,
    body: axum::body::Bytes,
) -> Response {
    let poster = match q.poster.as_deref().map(poster_civic_no).transpose() {
        Ok(p) => p,
        Err(why) => return problem(StatusCode::BAD_REQUEST, "Invalid poster", why),
    };
    if q.withheld && q.push {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "withheld and push exclude each other",
            "a withheld instance is one OeP cannot export, so it cannot push it either; submit with one of them",
        );
    }
    let (id, push) = {
        let mut oep = lock(&w.oep);
        let id = match oep.submit(&body) {
            Ok(id) => id,
            Err(e) => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Not a FlowInstance",
                    e.to_string(),
                );
            }
        };
        if q.withheld {
            oep.withhold(id, true);
        }
        if poster.is_some() {
            oep.set_poster(id, poster);
        }
        let push = q.push.then(|| {
            let i = oep.list.iter().find(|i| i.id == id);
            (oep.push_url.clone(), i.map(|i| i.export(i.encoding)))
        });
        (id, push)
    };
    if let Some((url, doc)) = push {
        let (Some(url), Some(doc)) = (url, doc) else {
            return problem(
                StatusCode::CONFLICT,
                "Nowhere to push",
                "the sandbox runs without Knutpunkt's HTTP ingress; submit without ?push=true",
            );
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut req = reqwest::Client::new()
            .post(&url)
            .header(header::CONTENT_TYPE, "application/xml")
            .body(doc);
        // OeP's integration authenticates its pushes; in development the push route's
        // scheme trusts the sandbox's issuer, so the simulation presents its token.
        if let Some(idp) = &w.idp
            && let Ok(token) = idp.issue(serde_json::Map::from_iter([
                ("sub".to_string(), serde_json::Value::from("oep")),
                ("aud".to_string(), serde_json::Value::from("knutpunkt")),
            ]))
        {
            req = req.bearer_auth(token);
        }
        let sent = req.send().await;
        return match sent {
            Ok(r) => (
                StatusCode::CREATED,
                Json(json!({ "flowInstanceID": id, "pushed": { "url": url, "status": r.status().as_u16() } })),
            )
                .into_response(),
            Err(e) => problem(
                StatusCode::BAD_GATEWAY,
                "Push failed",
                format!("instance {id} stored, but posting it to {url} failed: {e}"),
            ),
        };
    }
    (StatusCode::CREATED, Json(json!({ "flowInstanceID": id }))).into_response()
}

async fn instances(State(w): State<Arc<World>>) -> Json<Value> {
    let oep = lock(&w.oep);
    Json(Value::Array(
        oep.list
            .iter()
            .map(|i| {
                json!({
                    "flowInstanceID": i.id,
                    "familyID": i.family_id,
                    "status": i.status,
                    "added": i.added,
                    "messages": i.messages,
                    "internalMessages": i.internal_messages,
                    "attachments": i.attachments,
                    "delivered": i.delivered.as_ref().map(|d| d.0),
                    "externalID": i.external_id,
                    "poster": i.poster_civic_no,
                })
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_flow_instance_id_is_assigned_and_exported_in_latin1() {
        let mut oep = Instances::default();
        let seeded = oep.list.len();
        let doc = leave_application(
            "Åsa Öhrnbjörk",
            "20130412-2383",
            "Fjällresa",
            "Inkommen",
            20,
        );
        let id = oep.submit(doc.as_bytes()).expect("accepted");
        assert_eq!(oep.list.len(), seeded + 1);
        let bytes = oep.list[seeded].export(Encoding::Latin1);
        assert!(bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"));
        let doc = xml::parse(&bytes).expect("readable");
        assert_eq!(
            doc.text_at(&["Header", "FlowInstanceID"]),
            Some(id.to_string().as_str())
        );
        assert_eq!(
            doc.text_at(&["Values", "Elev", "Efternamn"]),
            Some("Öhrnbjörk")
        );
        assert!(oep.submit(b"<Other/>").is_err());
    }

    /// `_submit?poster=` stores who posted the instance; a malformed number is a 400 that
    /// says what is wrong without repeating it, and nothing is stored.
    #[tokio::test]
    async fn submit_takes_the_posters_personnummer() {
        let w = Arc::new(World::default());
        let before = lock(&w.oep).list.len();
        let doc = leave_application(
            "Elin Sandberg",
            "20120503-2424",
            "Fjällresa",
            "Inkommen",
            20,
        );
        for (bad, says) in [
            ("19800611-2463", "12 digits"),
            ("19800611246", "12 digits"),
            ("198006112464", "check digit"),
            ("198013112463", "date"),
        ] {
            let q = Push {
                push: false,
                withheld: false,
                poster: Some(bad.to_string()),
            };
            let r = submit(
                State(w.clone()),
                Query(q),
                axum::body::Bytes::from(doc.clone()),
            )
            .await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
            let text = String::from_utf8_lossy(
                &axum::body::to_bytes(r.into_body(), 1 << 20)
                    .await
                    .expect("body"),
            )
            .into_owned();
            assert!(text.contains(says), "{bad}: {text}");
            assert!(!text.contains(bad), "{text}");
        }
        assert_eq!(
            lock(&w.oep).list.len(),
            before,
            "a refused submit stores nothing"
        );
        let q = Push {
            push: false,
            withheld: false,
            poster: Some("198006112463".into()),
        };
        let r = submit(State(w.clone()), Query(q), axum::body::Bytes::from(doc)).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let oep = lock(&w.oep);
        assert_eq!(
            oep.list.last().and_then(|i| i.poster_civic_no.as_deref()),
            Some("198006112463")
        );
        // The seed's applications were posted by the children's first guardians.
        assert_eq!(oep.list[0].poster_civic_no.as_deref(), Some("198503122387"));
        assert!(
            oep.list[..before]
                .iter()
                .all(|i| i.poster_civic_no.is_some())
        );
    }

    async fn call(w: &Arc<World>, body: &str) -> (StatusCode, String) {
        let r = callback(State(w.clone()), axum::body::Bytes::from(body.to_string())).await;
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The operation is the Body's first element: attributes of the Body are no operation,
    /// a repeated operation is done once, and an empty message is stored empty.
    #[tokio::test]
    async fn the_callback_reads_the_first_element_of_the_body() {
        let w = Arc::new(World::default());
        let id = lock(&w.oep).list[0].id;
        let envelope = |body_attr: &str, ops: &str| {
            format!(
                "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" \
                 xmlns:wsu=\"urn:wsu\"><S:Body{body_attr}>{ops}</S:Body></S:Envelope>"
            )
        };
        let set = |alias: &str| {
            format!(
                "<setStatus xmlns=\"{}\"><flowInstanceID>{id}</flowInstanceID><statusAlias>{alias}</statusAlias></setStatus>",
                oep_callback::NS
            )
        };
        let (status, text) = call(&w, &envelope(" wsu:Id=\"body-1\"", &set("Beslutad"))).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(lock(&w.oep).list[0].status, "Beslutad");

        let twice = format!("{}{}", set("Komplettering"), set("Avslutad"));
        let (status, text) = call(&w, &envelope("", &twice)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(lock(&w.oep).list[0].status, "Komplettering");

        let add = |message: &str| {
            format!(
                "<addMessage xmlns=\"{}\"><flowInstanceID>{id}</flowInstanceID>{message}</addMessage>",
                oep_callback::NS
            )
        };
        let (status, text) = call(
            &w,
            &envelope(
                "",
                &add("<message><added>2026-12-05T10:00:00Z</added><message/><userID>knutpunkt</userID></message>"),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(
            lock(&w.oep).list[0].messages.last().map(String::as_str),
            Some("")
        );
        // What OeP's XSD refuses, the sandbox refuses: no `added` (the regression of a
        // decision message OeP would not have shown), a bad dateTime, a bare message.
        for (message, why) in [
            (
                "<message><message>Beslut</message><userID>knutpunkt</userID></message>",
                "Expected is ( added )",
            ),
            (
                "<message><added>igår</added><message>Beslut</message><userID>knutpunkt</userID></message>",
                "xs:dateTime",
            ),
            ("<message/>", "Expected is ( added )"),
        ] {
            let (status, text) = call(&w, &envelope("", &add(message))).await;
            assert_eq!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{message}: {text}"
            );
            assert!(text.contains(why), "{message}: {text}");
        }

        let (status, text) = call(&w, &envelope("", "")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(text.contains("The SOAP Body is empty"), "{text}");
    }
}
