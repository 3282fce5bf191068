//! One request through the ingress's checks, in order — auth, rate, body size and time,
//! content type, well-formedness, schema — into a message the broker has confirmed; or the
//! problem that says what to fix. Nothing enters the broker unless every check passed.

use axum::body::Body as HttpBody;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::{Caller, Refused};
use super::{
    CORRELATION_HEADER, HTTP_METHOD, HttpRoute, RECEIVED_AT, RETRY_AFTER_SECS, RouteState, Shared,
};
use crate::codec::{self, JsonLimits, XmlToJsonOptions};
use crate::core::envelope::{self, Body, Envelope, header as knut_header};
use crate::core::problem::{FieldError, Problem};
use crate::route::model::{BodyFormat, Claims};
use crate::telemetry::otel;
use tracing::Instrument as _;

/// Why a body could not be read.
enum ReadError {
    TooLarge,
    Unreadable,
}

async fn read_body(body: HttpBody, limit: usize) -> Result<Bytes, ReadError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ReadError::Unreadable)?;
        if buf.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

pub(super) async fn handle(state: &RouteState, shared: &Shared, req: Request) -> Response {
    if !otel::enabled() {
        return match accept_request(state, shared, req).await {
            Ok(r) => r,
            Err(p) => p.into_response(),
        };
    }
    // With traces on, a span per request: the method and the route's path template (never
    // the path, which may hold a personnummer), continuing the caller's `traceparent`.
    let span = otel::ingress_span(
        req.method().as_str(),
        &state.route.spec.path,
        &state.route.route,
        req.headers()
            .get(otel::TRACEPARENT)
            .and_then(|v| v.to_str().ok()),
        shared.settings.trust_traceparent,
    );
    let response = match accept_request(state, shared, req)
        .instrument(span.clone())
        .await
    {
        Ok(r) => r,
        Err(p) => p.into_response(),
    };
    otel::finish_ingress(&span, response.status().as_u16());
    response
}

// `JsonLimits` is a unit struct in the codec stub; the real one has fields.
async fn accept_request(
    state: &RouteState,
    shared: &Shared,
    req: Request,
) -> Result<Response, Problem> {
    let route = &state.route;
    let (mut parts, body) = req.into_parts();
    // The path's parameters (`{id}`), percent-decoded; one that does not decode to UTF-8 is
    // a 400.
    let params: Vec<(String, String)> =
        match axum::extract::RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(raw) => raw
                .iter()
                .map(|(name, value)| (format!("{PARAM_HEADER_PREFIX}{name}"), value.to_string()))
                .collect(),
            Err(_) => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-path",
                    "The path is not acceptable",
                    "A part of the path is not valid percent-encoded UTF-8; correct the URL.",
                    crate::core::redact::mask_path(parts.uri.path()),
                ));
            }
        };
    // The path as the problem names it: a personnummer in it (a path parameter) is masked,
    // also percent-encoded, so that no answer or log of a refusal repeats it.
    let instance = crate::core::redact::mask_path(parts.uri.path());
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(
            || "peer:unknown".to_string(),
            |c| format!("peer:{}", c.0.ip()),
        );
    let too_many = |wait: u64| {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many requests",
            format!("This client sent more requests to this endpoint than it may; send again in {wait} s."),
            instance.clone(),
        )
        .with_header(header::RETRY_AFTER, wait.to_string())
    };

    // 2. Auth.
    let mut caller = Caller::default();
    if let Some(scheme) = route.spec.auth.scheme() {
        let Some(check) = shared.settings.auth.get(scheme) else {
            tracing::error!(
                route = route.route,
                auth = scheme,
                "the route names an auth scheme that is not configured"
            );
            return Err(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "auth-not-configured",
                "Authentication is not configured",
                "The service cannot check credentials for this endpoint; tell its operators.",
                instance,
            ));
        };
        match check.check(scheme, &parts.headers).await {
            Ok(c) => caller = c,
            Err(Refused::Unavailable) => {
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "credentials-unverifiable",
                    "Credentials cannot be checked now",
                    "The service cannot check tokens at the moment; nothing was accepted. Send the request again later.",
                    instance,
                )
                .with_header(header::RETRY_AFTER, RETRY_AFTER_SECS));
            }
            Err(Refused::Credentials(why)) => {
                // Failed attempts count against the peer: guessing is slowed down too.
                state.limiter.check(&peer).map_err(too_many)?;
                audit_refusal(shared, &route.route, None, "refused-credentials").await;
                return Err(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Missing or wrong credentials",
                    format!("{why} (see the securitySchemes in /openapi.json)."),
                    instance,
                )
                .with_header(header::WWW_AUTHENTICATE, check.challenge()));
            }
        }
    }
    // Rate: per client (its credentials, else its address) and route.
    state
        .limiter
        .check(caller.client.as_deref().unwrap_or(&peer))
        .map_err(too_many)?;

    // A claim the token lacks is a 403 naming the claim, never a value.
    let claim_headers = match claim_headers(&route.spec.claims, caller.claims.as_ref()) {
        Ok(h) => Ok(h),
        Err(name) => {
            audit_refusal(
                shared,
                &route.route,
                caller.client.as_deref(),
                "refused-claim-missing",
            )
            .await;
            Err(name)
        }
    };
    let claim_headers = claim_headers.map_err(|name| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "claim-missing",
            "The credentials do not say who you act for",
            format!(
                "This endpoint needs a bearer token with the `{name}` claim; ask the identity provider for a token that carries it."
            ),
            instance.clone(),
        )
    })?;

    // 3. Body size.
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The body is too large",
            format!(
                "This endpoint accepts bodies up to {} bytes.",
                state.max_body
            ),
            instance.clone(),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return Err(too_large());
    }
    // A GET or DELETE carries its message in the query string: `?a=1&b=x` is `{"a": "1",
    // "b": "x"}` (a repeated name gives an array), checked like a JSON body.
    let from_query = matches!(parts.method, Method::GET | Method::DELETE);
    let raw = match tokio::time::timeout(
        shared.settings.request_timeout,
        read_body(body, state.max_body),
    )
    .await
    {
        Err(_) => {
            return Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "The body took too long",
                format!(
                    "The whole body must arrive within {}; send the request again.",
                    humantime::format_duration(shared.settings.request_timeout)
                ),
                instance,
            ));
        }
        Ok(Ok(b)) => b,
        Ok(Err(ReadError::TooLarge)) => return Err(too_large()),
        Ok(Err(ReadError::Unreadable)) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "body-unreadable",
                "The body could not be read",
                "The connection ended or the body's framing was broken; send the request again.",
                instance,
            ));
        }
    };

    let request_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    // 4. Format: a declared format is also the content type the client must say it sends.
    if !from_query && let Some(f) = route.spec.format {
        let (ok, wanted) = match f {
            BodyFormat::Json => (
                request_type.as_deref().is_some_and(envelope::is_json_type),
                "application/json",
            ),
            BodyFormat::Xml => (
                request_type.as_deref().is_some_and(envelope::is_xml_type),
                "application/xml (or text/xml)",
            ),
        };
        if !ok {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported content type",
                format!(
                    "This endpoint takes {wanted}: send that body with `Content-Type: {wanted}`."
                ),
                instance,
            ));
        }
    }
    let format = match route.spec.format {
        _ if from_query => Some(BodyFormat::Json),
        Some(f) => Some(f),
        None if route.spec.schema.is_some() => match request_type.as_deref() {
            Some(t) if envelope::is_json_type(t) => Some(BodyFormat::Json),
            Some(t) if envelope::is_xml_type(t) => Some(BodyFormat::Xml),
            _ => {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported content type",
                    "This endpoint checks its body against a schema: send JSON (application/json) or XML (application/xml).",
                    instance,
                ));
            }
        },
        // No body where no format is declared (a POST that only says "this happened"): the
        // message is JSON null, which jq programs read, rather than zero bytes they cannot.
        None if raw.is_empty() => Some(BodyFormat::Json),
        None => None,
    };
    let parsed = match format {
        _ if from_query => Some(query_object(parts.uri.query())),
        Some(BodyFormat::Json) if raw.is_empty() && route.spec.format.is_none() => {
            Some(Value::Null)
        }
        Some(BodyFormat::Json) => Some(
            codec::parse_json(&raw, &JsonLimits::default()).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-json",
                    "The body is not acceptable JSON",
                    format!("{e}. Send one well-formed JSON document in UTF-8."),
                    instance.clone(),
                )
            })?,
        ),
        Some(BodyFormat::Xml) => Some(
            codec::xml_to_json(&raw, &XmlToJsonOptions::default()).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-xml",
                    "The body is not acceptable XML",
                    format!(
                        "{e}. Send one well-formed XML document without a DOCTYPE, in the encoding its prolog declares (UTF-8, ISO-8859-1 or Windows-1252)."
                    ),
                    instance.clone(),
                )
            })?,
        ),
        None => None,
    };

    // 5. Schema.
    if let (Some(schema), Some(value)) = (&route.spec.schema, &parsed)
        && let Err(violations) = shared.schemas.validate(schema, value)
    {
        return Err(schema_problem(
            violations
                .into_iter()
                .map(|v| FieldError {
                    pointer: v.instance_path,
                    detail: v.reason,
                })
                .collect(),
            instance,
        ));
    }

    // 6. The envelope.
    let mut message = match (format, parsed) {
        (Some(BodyFormat::Json), Some(value)) => Envelope::new(envelope::JSON, Body::Json(value)),
        (Some(BodyFormat::Xml), _) => Envelope::new(
            request_type.unwrap_or_else(|| envelope::XML.to_string()),
            Body::Bytes(raw),
        ),
        _ => Envelope::new(
            request_type.unwrap_or_else(|| "application/octet-stream".to_string()),
            Body::Bytes(raw),
        ),
    };
    if let Some(id) = parts
        .headers
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
    {
        message.correlation_id = id;
    }
    message
        .headers
        .insert(knut_header::ROUTE.into(), route.route.clone());
    message
        .headers
        .insert(HTTP_METHOD.into(), parts.method.as_str().to_string());
    message
        .headers
        .insert(knut_header::HTTP_PATH.into(), instance.clone());
    // When the request came, for what depends on the day (an age, a deadline), so that a
    // retry or a replay reckons from the request, not from when it is processed.
    message.headers.insert(
        RECEIVED_AT.into(),
        message
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    message.headers.extend(claim_headers);
    message.headers.extend(params);

    if !route.replies {
        otel::accepted(&message.id, &message.correlation_id, &mut message.headers);
        accept(shared, route, &message, &instance).await?;
        let body = json!({"id": message.id, "correlation_id": message.correlation_id});
        let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
        set_correlation(&mut response, message.correlation_id);
        return Ok(response);
    }

    // A route with a `reply` step: wait for the answer.
    let Some(replies) = &shared.replies else {
        tracing::error!(
            route = route.route,
            "a route with a reply step, but no reply queue is running"
        );
        return Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "replies-not-configured",
            "Answers cannot be received",
            "This endpoint answers synchronously but the service runs without a reply queue; tell its operators.",
            instance,
        ));
    };
    let mut waiter = match replies.register(message.correlation_id) {
        Some(w) => w,
        None => {
            // Someone already waits on this correlation id: this request gets its own.
            message.correlation_id = message.id;
            replies.register(message.correlation_id).ok_or_else(|| {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker-unavailable",
                    "Try again",
                    "The request could not be registered; send it again.",
                    instance.clone(),
                )
                .with_header(header::RETRY_AFTER, RETRY_AFTER_SECS)
            })?
        }
    };
    message
        .headers
        .insert(knut_header::REPLY_TO.into(), replies.queue().to_string());
    otel::accepted(&message.id, &message.correlation_id, &mut message.headers);
    accept(shared, route, &message, &instance).await?;

    let Some(rx) = waiter.rx.take() else {
        return Err(timeout_problem(state, instance));
    };
    match tokio::time::timeout(state.reply_timeout, rx).await {
        Ok(Ok(answer)) => Ok(reply_response(answer, message.correlation_id, &instance)),
        Ok(Err(_)) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "The service is shutting down",
            "The request was accepted, but the answer can no longer be delivered to this connection.",
            instance,
        )
        .with_header(header::RETRY_AFTER, RETRY_AFTER_SECS)),
        Err(_) => Err(timeout_problem(state, instance)),
    }
}

/// The message of a GET or DELETE: the query's parameters as a JSON object of strings (a
/// name given more than once: an array of its values, in order).
fn query_object(query: Option<&str>) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let v = Value::String(v.into_owned());
        match map.get_mut(k.as_ref()) {
            None => {
                map.insert(k.into_owned(), v);
            }
            Some(Value::Array(a)) => a.push(v),
            Some(first) => *first = Value::Array(vec![first.take(), v]),
        }
    }
    Value::Object(map)
}

/// A refusal at the door of a route that keeps the access audit, written before the answer
/// goes (a store that fails is logged, without who; the answer is the refusal all the same).
async fn audit_refusal(shared: &Shared, route: &str, actor: Option<&str>, action: &str) {
    let Some(audit) = shared.settings.refusals.as_ref() else {
        return;
    };
    if !audit.routes.contains(route) {
        return;
    }
    let record = crate::store::AccessRecord {
        at: chrono::Utc::now(),
        actor: actor.unwrap_or("anonymous").to_string(),
        on_behalf_of: None,
        action: action.to_string(),
        resource: None,
        right: None,
        allowed: false,
        route: route.to_string(),
        correlation_id: Uuid::now_v7(),
    };
    if let Err(error) = audit.store.access_audit_append(&record).await {
        tracing::warn!(route, %error, "the access audit did not take a refusal at the door");
    }
}

/// Prefix of the headers holding the verified token's claims a route asked for
/// (`claims: [orgnr]` → `knut-claim-orgnr`; `claims: {personalNumber: <claim>}` →
/// `knut-claim-personalNumber`).
pub const CLAIM_HEADER_PREFIX: &str = "knut-claim-";

/// The header prefix a path parameter's value goes under: `{id}` → `knut-param-id`.
pub const PARAM_HEADER_PREFIX: &str = "knut-param-";

/// The headers for the claims `wanted` of a verified token: strings as they are, other
/// values as JSON; or the first claim the token lacks (credentials without claims lack all).
fn claim_headers(wanted: &Claims, claims: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    wanted
        .pairs()
        .into_iter()
        .map(|(header, claim)| match claims.and_then(|c| c.get(claim)) {
            Some(v) if !v.is_null() => Ok((
                format!("{CLAIM_HEADER_PREFIX}{header}"),
                crate::core::value_to_string(v),
            )),
            _ => Err(claim.to_string()),
        })
        .collect()
}

async fn accept(
    shared: &Shared,
    route: &HttpRoute,
    message: &Envelope,
    instance: &str,
) -> Result<(), Problem> {
    shared
        .ingress
        .accept(&route.route, message)
        .await
        .map_err(|error| {
            tracing::warn!(route = route.route, correlation_id = %message.correlation_id, %error, "request not accepted: broker error");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker-unavailable",
                "The message could not be accepted",
                "The message broker did not take the message; nothing was accepted. Send the request again later.",
                instance,
            )
            .with_header(header::RETRY_AFTER, RETRY_AFTER_SECS)
        })
}

fn timeout_problem(state: &RouteState, instance: String) -> Problem {
    Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        "reply-timeout",
        "No answer in time",
        format!(
            "The request was accepted but no answer came within {} s; it may still be processed. Use the x-correlation-id response header when asking about it.",
            state.reply_timeout.as_secs_f64()
        ),
        instance,
    )
}

/// The 422 problem for a body that does not satisfy its schema.
pub fn schema_problem(errors: Vec<FieldError>, instance: String) -> Problem {
    let n = errors.len();
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema-violation",
        "The body does not satisfy the schema",
        format!("{n} place(s) in the body do not satisfy the endpoint's schema; see `errors`."),
        instance,
    )
    .with_errors(errors)
}

fn reply_response(answer: Envelope, correlation_id: Uuid, instance: &str) -> Response {
    let status = answer
        .header(knut_header::REPLY_STATUS)
        .map(|s| {
            s.parse::<u16>()
                .ok()
                .and_then(|n| StatusCode::from_u16(n).ok())
        })
        .unwrap_or(Some(StatusCode::OK));
    let Some(status) = status else {
        return Problem::new(
            StatusCode::BAD_GATEWAY,
            "invalid-reply",
            "The answer was not valid",
            "The route answered with a status that is not an HTTP status; tell the service's operators.",
            instance,
        )
        .into_response();
    };
    let mut response = (status, answer.body.to_bytes()).into_response();
    if let Ok(ct) = HeaderValue::from_str(&answer.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    set_correlation(&mut response, correlation_id);
    response
}

fn set_correlation(response: &mut Response, id: Uuid) {
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert(CORRELATION_HEADER, v);
    }
}
