//! Lärplattform, the learning platform, in SS 12000 shapes (`fixtures/ss12000`): teachers
//! register attendance per lesson and grades here; the platform shows leave decisions and
//! signed grades. The calls the flows use:
//!
//! | call | answer |
//! |---|---|
//! | `GET /attendances?meta.modified.after=<RFC 3339>[&expand=calendarEvent][&limit=N]`, then `GET /attendances?pageToken=…[&expand=…][&limit=N]` | `{"data": [Attendance], "pageToken": …}` (SS 12000: `calendarEvent`, `student`, `reporter`, `isReported`, `attendanceMinutes`, `validAbsenceMinutes`, `invalidAbsenceMinutes`, `absenceReason`, `reportedTimestamp`, `meta`), oldest `meta.modified` first; with `expand=calendarEvent` each record also holds its lesson as `_embedded.calendarEvent` (SS 12000's `_embedded`), so a reader needs no call per record. In pages, as SS 12000 allows a server: at most `limit` records (100 when absent), and `pageToken` (an opaque value; null on the last page) for the next, which takes no other filter (400 when combined with `meta.modified.after`) |
//! | `GET /calendarEvents/{id}` | the lesson: `startTime`, `endTime`, `activity` (subject), `group`, `organisation` (school unit) |
//! | `GET /calendarEvents?startTime.onOrAfter=&startTime.onOrBefore=[&expand=attendance]` | `{"data": [CalendarEvent]}`, the lessons starting in that span (both required, as in SS 12000; compared on the lesson's local wall-clock time, a date alone meaning its whole day), in start order; with `expand=attendance` each holds its attendance records as `_embedded.attendance` |
//! | `GET /grades?meta.modified.after=<RFC 3339>` | `{"data": [Grade]}` (SS 12000: `student`, `organisation`, `registeredBy`, `gradingTeacher`, `group`, `registeredDate`, `gradeValue`, `finalGrade`, `syllabus`, `semester`, `year`) |
//! | `POST /leaveDecisions` | a decision on a leave application, for the student's teachers to see → 201; the same `Idempotency-Key` again → 200 |
//! | `POST /signedGrades` | signed grades of a catalogue, for display → 201; same key again → 200 |
//! | `GET /leaveDecisions`, `GET /signedGrades` | what was received |
//!
//! Sandbox controls, as a teacher would act: `POST /_register-attendance` with
//! `{teacher, schoolUnitCode, group, date, lessons: [{subject, start: "08:10", minutes,
//! students: [{civicNo, present: bool, absence: "valid" | "invalid"}]}]}` and
//! `POST /_register-grades` with `{teacher, schoolUnitCode, group, syllabus, semester, year,
//! final, grades: [{civicNo, gradeValue}]}` create the records (persons by civic number from
//! the seed; an unknown one is a 422) — a student's grade for the same syllabus, semester
//! and year is changed in place (same `id`, a new `meta.modified`); and
//! `POST /_finalize-grades` with `{teacher, schoolUnitCode, group, syllabus, semester, year}`
//! marks the group's registered grades of that course final (definitivmarkering: `finalGrade`
//! true, a new `meta.modified`; 422 when there is none to mark). A grade's `group` is the
//! seeded group of that name at the unit (`{id, displayName}`), or only `{displayName}`.
//! `POST /_correct-attendance` with `{id, present: bool, absence: "valid" | "invalid"}` is a
//! teacher correcting a registered record: changed in place (same `id`, a new
//! `meta.modified`), as lärplattform does; 404 for an unknown id.

// The helpers fail with the finished problem response the handler returns as it is.
#![allow(
    clippy::result_large_err,
    reason = "an Err is the problem response itself, returned once per request"
)]

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::control::{idempotency_key, json_object, not_an_object, problem};
use super::seed::Population;
use super::{World, lock, read};

/// What the platform holds.
#[derive(Debug, Default)]
pub struct Platform {
    attendances: Vec<Value>,
    calendar_events: Vec<Value>,
    grades: Vec<Value>,
    leave_decisions: Vec<(Option<String>, Value)>,
    signed_grades: Vec<(Option<String>, Value)>,
}

/// The routes, relative to `/sandbox/larplattform`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/attendances", get(attendances))
        .route("/calendarEvents", get(calendar_events))
        .route("/calendarEvents/{id}", get(calendar_event))
        .route("/grades", get(grades))
        .route(
            "/leaveDecisions",
            get(leave_decisions).post(receive_leave_decision),
        )
        .route(
            "/signedGrades",
            get(signed_grades).post(receive_signed_grades),
        )
        .route("/_register-attendance", post(register_attendance))
        .route("/_correct-attendance", post(correct_attendance))
        .route("/_register-grades", post(register_grades))
        .route("/_finalize-grades", post(finalize_grades))
        .with_state(world)
}

#[derive(Deserialize)]
struct Since {
    #[serde(rename = "meta.modified.after")]
    after: Option<String>,
    /// SS 12000 `expand`: here `calendarEvent` (comma-separated values allowed).
    expand: Option<String>,
    /// SS 12000 `limit`: records per page (at least 1).
    limit: Option<String>,
    /// SS 12000 `pageToken`: where the previous page ended (opaque to the client).
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
}

/// Records per page when the client sets no `limit` (SS 12000 lets a server page anyway).
const PAGE_SIZE: usize = 100;

/// What a page token stands for: the query's `meta.modified.after` and the last record
/// served, `(meta.modified, id)` — a keyset, so a record changed between two pages moves to
/// the end of the order and still comes, instead of shifting an offset past another.
#[derive(serde::Serialize, Deserialize)]
struct PageToken {
    after: Option<String>,
    last: (String, String),
}

impl PageToken {
    fn encode(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(text: &str) -> Option<PageToken> {
        use base64::Engine as _;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// The page a query asks for: (`meta.modified.after`, the last record served, limit), or
/// the 400 problem.
#[allow(clippy::type_complexity)]
fn page_of(s: &Since) -> Result<(Option<String>, Option<(String, String)>, usize), Response> {
    let limit = match s.limit.as_deref().map(str::parse::<usize>) {
        None => PAGE_SIZE,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "Invalid limit",
                "`limit` is a whole number ≥ 1 (SS 12000)",
            ));
        }
    };
    let Some(text) = s.page_token.as_deref() else {
        return Ok((s.after.clone(), None, limit));
    };
    if s.after.is_some() {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "Invalid filter",
            "`pageToken` cannot be combined with other filters, only with `limit` (SS 12000): \
             leave `meta.modified.after` out of the next pages' requests",
        ));
    }
    match PageToken::decode(text) {
        Some(t) => Ok((t.after, Some(t.last), limit)),
        None => Err(problem(
            StatusCode::BAD_REQUEST,
            "Invalid pageToken",
            "`pageToken` is not one this server gave: send the `pageToken` of the previous answer as it is",
        )),
    }
}

/// Does an SS 12000 `expand` parameter ask for `what`?
fn expands(expand: Option<&str>, what: &str) -> bool {
    expand.is_some_and(|e| e.split(',').any(|x| x.trim() == what))
}

fn modified_after(items: &[Value], after: Option<&str>) -> Vec<Value> {
    // RFC 3339 timestamps of one offset compare as text.
    items
        .iter()
        .filter(|v| after.is_none_or(|a| v["meta"]["modified"].as_str().is_some_and(|m| m > a)))
        .cloned()
        .collect()
}

async fn attendances(State(w): State<Arc<World>>, Query(s): Query<Since>) -> Response {
    let (after, last, limit) = match page_of(&s) {
        Ok(page) => page,
        Err(problem) => return problem,
    };
    let platform = lock(&w.larplattform);
    // Oldest change first, then by id (a corrected record moves to the end).
    let key = |v: &Value| {
        (
            v["meta"]["modified"].as_str().unwrap_or("").to_string(),
            v["id"].as_str().unwrap_or("").to_string(),
        )
    };
    let mut data = modified_after(&platform.attendances, after.as_deref());
    data.sort_by_key(key);
    data.retain(|v| last.as_ref().is_none_or(|l| key(v) > *l));
    let more = data.len() > limit;
    data.truncate(limit);
    let next = more
        .then(|| {
            data.last().map(|v| {
                PageToken {
                    after: after.clone(),
                    last: key(v),
                }
                .encode()
            })
        })
        .flatten();
    if expands(s.expand.as_deref(), "calendarEvent") {
        for record in &mut data {
            let lesson = platform
                .calendar_events
                .iter()
                .find(|e| e["id"] == record["calendarEvent"]["id"])
                .cloned();
            if let Some(lesson) = lesson {
                record["_embedded"] = json!({ "calendarEvent": lesson });
            }
        }
    }
    Json(json!({ "data": data, "pageToken": next })).into_response()
}

#[derive(Deserialize)]
struct Span {
    #[serde(rename = "startTime.onOrAfter")]
    from: Option<String>,
    #[serde(rename = "startTime.onOrBefore")]
    to: Option<String>,
    /// SS 12000 `expand`: here `attendance`.
    expand: Option<String>,
}

/// `bound` as local wall-clock text: at most `YYYY-MM-DDTHH:MM:SS` (an offset is dropped,
/// the lessons are in local time).
fn wall_clock(bound: &str) -> &str {
    bound.get(..19).unwrap_or(bound)
}

/// Does a lesson starting at `start` (local `YYYY-MM-DDTHH:MM:SS`) fall in `[from, to]`?
/// Text comparison of one format; a shorter bound (a date) compares that prefix, so
/// `onOrBefore=2026-11-24` takes the whole day.
fn starts_within(start: &str, from: &str, to: &str) -> bool {
    start >= from && start.get(..to.len()).unwrap_or(start) <= to
}

async fn calendar_events(State(w): State<Arc<World>>, Query(s): Query<Span>) -> Response {
    let (Some(from), Some(to)) = (s.from.as_deref(), s.to.as_deref()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "startTime.onOrAfter and startTime.onOrBefore are required",
        );
    };
    let (from, to) = (wall_clock(from), wall_clock(to));
    let platform = lock(&w.larplattform);
    let mut data: Vec<Value> = platform
        .calendar_events
        .iter()
        .filter(|e| {
            e["startTime"]
                .as_str()
                .is_some_and(|start| starts_within(start, from, to))
        })
        .cloned()
        .collect();
    data.sort_by(|a, b| a["startTime"].as_str().cmp(&b["startTime"].as_str()));
    if expands(s.expand.as_deref(), "attendance") {
        for lesson in &mut data {
            let records: Vec<Value> = platform
                .attendances
                .iter()
                .filter(|r| r["calendarEvent"]["id"] == lesson["id"])
                .cloned()
                .collect();
            lesson["_embedded"] = json!({ "attendance": records });
        }
    }
    Json(json!({ "data": data })).into_response()
}

async fn grades(State(w): State<Arc<World>>, Query(s): Query<Since>) -> Response {
    let data = modified_after(&lock(&w.larplattform).grades, s.after.as_deref());
    Json(json!({ "data": data })).into_response()
}

async fn calendar_event(State(w): State<Arc<World>>, Path(id): Path<String>) -> Response {
    match lock(&w.larplattform)
        .calendar_events
        .iter()
        .find(|e| e["id"] == id.as_str())
    {
        Some(e) => Json(e.clone()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no calendar event {id}"),
        ),
    }
}

fn person_ref(pop: &Population, civic_no: &str) -> Result<Value, Response> {
    pop.person_by_civic_no(civic_no)
        .map(|p| json!({"id": p.id, "displayName": p.display_name()}))
        .ok_or_else(|| {
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unknown person",
                "a civic number in the request is not a person of the platform",
            )
        })
}

fn unit_ref(pop: &Population, code: &str) -> Result<Value, Response> {
    pop.unit(code)
        .map(|u| json!({"id": u.id, "displayName": u.display_name, "schoolUnitCode": u.school_unit_code}))
        .ok_or_else(|| {
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unknown school unit",
                format!("no school unit {code}"),
            )
        })
}

fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

fn parse(body: &[u8]) -> Result<Value, Response> {
    json_object(body).ok_or_else(|| not_an_object("see the table in the module doc"))
}

fn build_attendance(pop: &Population, req: &Value) -> Result<(Vec<Value>, Vec<Value>), Response> {
    let str_of = |k: &str| req[k].as_str().filter(|s| !s.is_empty());
    let (Some(teacher), Some(unit), Some(group), Some(date)) = (
        str_of("teacher"),
        str_of("schoolUnitCode"),
        str_of("group"),
        str_of("date"),
    ) else {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "teacher, schoolUnitCode, group and date are required",
        ));
    };
    let reporter = person_ref(pop, teacher)?;
    let organisation = unit_ref(pop, unit)?;
    let Some(lessons) = req["lessons"].as_array().filter(|l| !l.is_empty()) else {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "lessons: at least one",
        ));
    };
    let stamp = now();
    let (mut events, mut records) = (Vec::new(), Vec::new());
    for lesson in lessons {
        let (Some(subject), Some(start), Some(minutes)) = (
            lesson["subject"].as_str(),
            lesson["start"].as_str(),
            lesson["minutes"].as_u64(),
        ) else {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "every lesson needs subject, start (HH:MM) and minutes",
            ));
        };
        let Ok(start_time) =
            chrono::NaiveDateTime::parse_from_str(&format!("{date} {start}"), "%Y-%m-%d %H:%M")
        else {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "date YYYY-MM-DD and start HH:MM",
            ));
        };
        let end_time = start_time + chrono::Duration::minutes(minutes as i64);
        let event_id = Uuid::now_v7();
        events.push(json!({
            "id": event_id, "meta": {"created": stamp, "modified": stamp},
            "startTime": start_time.format("%Y-%m-%dT%H:%M:00").to_string(),
            "endTime": end_time.format("%Y-%m-%dT%H:%M:00").to_string(),
            "activity": {"displayName": subject}, "group": {"displayName": group},
            "organisation": organisation,
        }));
        for s in lesson["students"].as_array().into_iter().flatten() {
            let student = person_ref(pop, s["civicNo"].as_str().unwrap_or_default())?;
            let present = s["present"].as_bool().unwrap_or(true);
            let absence = s["absence"].as_str();
            let (valid, invalid) = match (present, absence) {
                (true, _) => (0, 0),
                (false, Some("valid")) => (minutes, 0),
                (false, _) => (0, minutes),
            };
            records.push(json!({
                "id": Uuid::now_v7(), "meta": {"created": stamp, "modified": stamp},
                "calendarEvent": {"id": event_id, "displayName": format!("{subject} {group} {start}")},
                "student": student, "reporter": reporter, "isReported": true,
                "attendanceMinutes": if present { minutes } else { 0 },
                "validAbsenceMinutes": valid, "invalidAbsenceMinutes": invalid,
                "absenceReason": match (present, absence) { (false, Some("valid")) => "Sjuk", (false, _) => "Ogiltig", _ => "" },
                "reportedTimestamp": stamp,
            }));
        }
    }
    Ok((events, records))
}

async fn register_attendance(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let req = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let built = build_attendance(&read(&w.population), &req);
    match built {
        Ok((events, records)) => {
            let mut p = lock(&w.larplattform);
            p.calendar_events.extend(events);
            p.attendances.extend(records.iter().cloned());
            (StatusCode::CREATED, Json(json!({ "data": records }))).into_response()
        }
        Err(e) => e,
    }
}

async fn correct_attendance(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let req = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let Some(id) = req["id"].as_str() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "id (the attendance record's) is required",
        );
    };
    let present = req["present"].as_bool().unwrap_or(true);
    let absence = req["absence"].as_str();
    let mut p = lock(&w.larplattform);
    let Some(record) = p
        .attendances
        .iter_mut()
        .find(|r| r["id"].as_str() == Some(id))
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "no attendance record with that id",
        );
    };
    let minutes = record["attendanceMinutes"].as_i64().unwrap_or(0)
        + record["validAbsenceMinutes"].as_i64().unwrap_or(0)
        + record["invalidAbsenceMinutes"].as_i64().unwrap_or(0);
    let (valid, invalid) = match (present, absence) {
        (true, _) => (0, 0),
        (false, Some("valid")) => (minutes, 0),
        (false, _) => (0, minutes),
    };
    record["attendanceMinutes"] = json!(if present { minutes } else { 0 });
    record["validAbsenceMinutes"] = json!(valid);
    record["invalidAbsenceMinutes"] = json!(invalid);
    record["absenceReason"] = json!(match (present, absence) {
        (false, Some("valid")) => "Sjuk",
        (false, _) => "Ogiltig",
        _ => "",
    });
    record["meta"]["modified"] = json!(now());
    (StatusCode::OK, Json(record.clone())).into_response()
}

/// What a teacher's grade control names: the teacher, the school unit, the group and the
/// syllabus.
struct GradeRequest<'a> {
    teacher: Value,
    unit: &'a str,
    organisation: Value,
    group: &'a str,
    syllabus: &'a str,
}

/// The head of `_register-grades` and `_finalize-grades`, or the problem to answer.
fn grade_request<'a>(pop: &Population, req: &'a Value) -> Result<GradeRequest<'a>, Response> {
    let str_of = |k: &str| req[k].as_str().filter(|s| !s.is_empty());
    let (Some(teacher), Some(unit), Some(group), Some(syllabus)) = (
        str_of("teacher"),
        str_of("schoolUnitCode"),
        str_of("group"),
        str_of("syllabus"),
    ) else {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "teacher, schoolUnitCode, group and syllabus are required (semester and year default to VT and 2026)",
        ));
    };
    Ok(GradeRequest {
        teacher: person_ref(pop, teacher)?,
        unit,
        organisation: unit_ref(pop, unit)?,
        group,
        syllabus,
    })
}

async fn register_grades(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let req = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let pop = read(&w.population);
    let GradeRequest {
        teacher,
        unit,
        organisation,
        group,
        syllabus,
    } = match grade_request(&pop, &req) {
        Ok(g) => g,
        Err(e) => return e,
    };
    let stamp = now();
    let group_ref = pop
        .unit(unit)
        .and_then(|u| pop.group_named(u.id, group))
        .map_or_else(
            || json!({"displayName": group}),
            |g| json!({"id": g.id, "displayName": g.display_name}),
        );
    let mut out = Vec::new();
    for g in req["grades"].as_array().into_iter().flatten() {
        let student = match person_ref(&pop, g["civicNo"].as_str().unwrap_or_default()) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(value) = g["gradeValue"]
            .as_str()
            .filter(|v| ["A", "B", "C", "D", "E", "F", "-"].contains(v))
        else {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "gradeValue: A–F or -",
            );
        };
        out.push(json!({
            "id": Uuid::now_v7(), "meta": {"created": stamp, "modified": stamp},
            "student": student, "organisation": organisation, "registeredBy": teacher,
            "gradingTeacher": teacher, "group": group_ref,
            "registeredDate": stamp[..10], "gradeValue": value,
            "finalGrade": req["final"].as_bool().unwrap_or(false),
            "syllabus": {"displayName": syllabus},
            "semester": req["semester"].as_str().unwrap_or("VT"), "year": req["year"].as_u64().unwrap_or(2026),
        }));
    }
    if out.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "grades: at least one",
        );
    }
    let mut platform = lock(&w.larplattform);
    for new in &mut out {
        // One grade per student, syllabus, semester and year: a new registration changes it.
        if let Some(old) = platform.grades.iter_mut().find(|g| same_course(g, new)) {
            new["id"] = old["id"].clone();
            new["meta"]["created"] = old["meta"]["created"].clone();
            *old = new.clone();
        } else {
            platform.grades.push(new.clone());
        }
    }
    (StatusCode::CREATED, Json(json!({ "data": out }))).into_response()
}

/// Do two grades record the same student's grade for one syllabus, semester and year?
fn same_course(a: &Value, b: &Value) -> bool {
    a["student"]["id"] == b["student"]["id"]
        && a["organisation"]["id"] == b["organisation"]["id"]
        && a["syllabus"] == b["syllabus"]
        && a["semester"] == b["semester"]
        && a["year"] == b["year"]
}

async fn finalize_grades(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let req = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let pop = read(&w.population);
    let GradeRequest {
        teacher,
        unit: _,
        organisation,
        group,
        syllabus,
    } = match grade_request(&pop, &req) {
        Ok(g) => g,
        Err(e) => return e,
    };
    let semester = req["semester"].as_str().unwrap_or("VT");
    let year = req["year"].as_u64().unwrap_or(2026);
    let stamp = now();
    let mut platform = lock(&w.larplattform);
    let mut out = Vec::new();
    for g in platform.grades.iter_mut().filter(|g| {
        g["organisation"]["id"] == organisation["id"]
            && g["group"]["displayName"] == group
            && g["syllabus"]["displayName"] == syllabus
            && g["semester"] == semester
            && g["year"] == year
            && g["finalGrade"] != true
    }) {
        g["finalGrade"] = json!(true);
        g["gradingTeacher"] = teacher.clone();
        g["meta"]["modified"] = json!(stamp);
        out.push(g.clone());
    }
    if out.is_empty() {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Nothing to mark final",
            "the group has no registered grades of that syllabus, semester and year that are not final yet",
        );
    }
    Json(json!({ "data": out })).into_response()
}

/// Keep `v` in `list` once per idempotency key: 201 new, 200 seen.
fn receive(list: &mut Vec<(Option<String>, Value)>, key: Option<String>, v: Value) -> Response {
    if key.is_some() && list.iter().any(|(k, _)| *k == key) {
        return (StatusCode::OK, Json(v)).into_response();
    }
    list.push((key, v.clone()));
    (StatusCode::CREATED, Json(v)).into_response()
}

async fn receive_leave_decision(
    State(w): State<Arc<World>>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if req["student"].is_null() || req["decision"].as_str().is_none() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "student and decision are required",
        );
    }
    receive(
        &mut lock(&w.larplattform).leave_decisions,
        idempotency_key(&h),
        req,
    )
}

async fn receive_signed_grades(
    State(w): State<Arc<World>>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if !req["grades"].is_array() || req["signature"].as_str().is_none() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "grades and signature are required",
        );
    }
    receive(
        &mut lock(&w.larplattform).signed_grades,
        idempotency_key(&h),
        req,
    )
}

async fn leave_decisions(State(w): State<Arc<World>>) -> Response {
    let data: Vec<Value> = lock(&w.larplattform)
        .leave_decisions
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    Json(json!({ "data": data })).into_response()
}

async fn signed_grades(State(w): State<Arc<World>>) -> Response {
    let data: Vec<Value> = lock(&w.larplattform)
        .signed_grades
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    Json(json!({ "data": data })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_bound_takes_the_whole_day_and_offsets_are_dropped() {
        let at = "2026-11-24T15:40:00";
        assert!(starts_within(at, "2026-11-24", "2026-11-24"));
        assert!(starts_within(
            at,
            wall_clock("2026-11-24T00:00:00+01:00"),
            wall_clock("2026-11-24T23:59:59+01:00")
        ));
        assert!(!starts_within(at, "2026-11-25", "2026-11-25"));
        assert!(!starts_within(at, "2026-11-23", "2026-11-24T15:39:59"));
        assert!(starts_within(
            at,
            "2026-11-24T15:40:00",
            "2026-11-24T15:40:00"
        ));
    }
}
