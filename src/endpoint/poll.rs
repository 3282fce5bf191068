//! Poll endpoint: a polling consumer on an adapter operation, e.g. OeP's
//! `getinstances/family/{familyId}/{status}?fromDate` followed by `getinstance/{id}/xml`.
//!
//! ```yaml
//! from:
//!   poll:
//!     adapter: oep
//!     list: list-instances            # the operation that lists the items
//!     params: { familyId: 412, status: Inkommen }   # its message body (plus `watermark`);
//!                                     # a list of them: one list call each, items merged
//!     every: 1m                       # or cron: "*/5 7-18 * * 1-5"
//!     items: .FlowInstances.FlowInstance
//!     id: .flowInstanceID             # per-item dedupe key
//!     fetch: get-instance             # optional: called per new item; its answer is the message
//!     fetch_failed: hand_on           # optional: a failed fetch also hands the item itself on
//!     watermark: .added               # optional: the highest value handed on is kept
//!     page: { next: .pageToken }      # optional: the list answers in pages
//! ```
//!
//! One poll:
//! 1. read the route's watermark from the state store and call `list` with the message body
//!    `params + {watermark}` (the stored value, or null before the first item): the adapter
//!    operation's `{jq}` path and `query` read it (e.g. `fromDate: '.watermark[0:10]'`);
//!    With `page`, the list is called again with `page` set to the token `page.next` gives
//!    on the answer, until it gives none (or `page.max` pages, default 100: the rest come
//!    at the next poll, from the watermark this one moved); a page that fails ends the
//!    listing there, and the items of the pages before it go on;
//! 2. `items` over the answer (XML converted to JSON) gives the items: each output is an
//!    item, an array output counts as its elements and null as none, so one path serves
//!    OeP's "one child is an object, several are an array";
//! 3. per item, in watermark order: `id` names it. An item seen before (state store,
//!    [`Store::is_seen`]) is skipped. A new one becomes one message — the answer of `fetch`
//!    called with the item as its message (bytes and content type as they came), or the
//!    item itself as JSON — accepted for the route (confirmed by the broker), and only then
//!    marked seen ([`Store::mark_seen`]);
//! 4. the watermark advances to the highest value among the items handed on (or seen
//!    before) that is below the value of every item not handed on: it never passes an item
//!    that is still to be published, so a failed item is listed again at the next poll.
//!
//! # Exactly once, across restarts
//!
//! The message of an item has the id `UUIDv5("poll/<route>", <item id>)`
//! ([`Envelope::keyed`]), the same in every poll and every process. An item is marked seen
//! only after the broker confirmed its message, so a stop or crash before that leaves it
//! unseen and it is handed on at a later poll; a crash *between* the confirm and the mark
//! hands it on a second time with the **same message id**. Every adapter call of the route
//! carries that id as `Idempotency-Key` (and it is the key a `publish` step derives its
//! ids from), so the receiving system recognises the repeat; an `idempotent` step lets it
//! pass like any redelivery of one message. Apart from that window — milliseconds per
//! item — every item reaches the route once: the seen-set and the watermark are in the
//! state store (SQLite or PostgreSQL) and survive restarts. On the embedded broker, which
//! keeps messages in memory, a message handed on but not yet processed when knut stops is
//! lost with the process; run on RabbitMQ where that matters.
//!
//! Failures are retried at the next poll and never drop an item: a failed `list` changes
//! nothing; a failed `fetch` of one item leaves it unseen while the others go on (with
//! `fetch_failed: hand_on` the listed item is also handed on, header `knut-fetch-error`, under
//! the id `UUIDv5("poll/<route>", "<item id>#fetch-failed")`); a broker
//! or state store failure ends the poll early. Log lines name the route, counts, message
//! ids and the reason (adapter and operation, HTTP status) — never an item id or item
//! content, which may be personal data. Metrics: `knut_poll_runs_total`,
//! `knut_poll_items_total` and `knut_poll_failures_total`, labelled by route.
//!
//! # Several instances
//!
//! On a shared PostgreSQL store several knut instances share the seen-set and the
//! watermark, and a poll lease in the store: one instance at a time polls a route (see
//! `Lease`); the others skip their ticks while the lease is held. Should two hand on the
//! same item anyway (a lease expired mid-poll), it carries the same message id, so the
//! downstream `Idempotency-Key` suppresses the repeat.

use std::cmp::Ordering;
use std::time::Duration;

use chrono::Utc;
use croner::Cron;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Ingress;
use crate::adapter::client::AdapterClient;
use crate::core::envelope::{Body, Envelope, JSON, header};
use crate::core::error::StepError;
use crate::core::value_to_string;
use crate::expr::{ExprError, Program, Vars};
use crate::route::model::{FetchFailed, PollFrom};
use crate::store::{Store, StoreError};

/// Why a poll did nothing.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The `list` operation failed (the adapter's reason: operation, status, timeout).
    #[error("the list call failed: {0}")]
    List(StepError),
    /// The `list` operation answered something that is neither JSON nor XML.
    #[error("the list call answered `{0}`, which is neither JSON nor XML")]
    NotJson(String),
    /// The `items` program failed on the answer.
    #[error("items: {0}")]
    Items(ExprError),
    /// The state store could not be read.
    #[error("state store: {0}")]
    Store(StoreError),
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollReport {
    /// Items the list gave (duplicates within the answer counted once).
    pub listed: usize,
    /// New items handed on to the route (confirmed by the broker).
    pub handed_on: usize,
    /// Items seen before, skipped.
    pub seen: usize,
    /// Items that could not be handed on (no id, fetch failed, broker or store failed, or
    /// the poll stopped first): tried again at the next poll.
    pub failed: usize,
    /// The watermark stored by this poll, when it advanced.
    pub watermark: Option<Value>,
}

/// When a poll endpoint polls.
enum Schedule {
    Every(Duration),
    Cron(Box<Cron>),
}

/// A poll endpoint, built from its route's `from.poll`.
pub struct Poller {
    route: String,
    /// The origin of the items' message ids: `poll/<route>`.
    origin: String,
    spec: PollFrom,
    items: Program,
    id: Program,
    watermark: Option<Program>,
    next_page: Option<Program>,
    client: AdapterClient,
    store: Store,
    ingress: Ingress,
}

/// One listed item, ready to be handed on.
struct Item {
    id: String,
    value: Value,
    mark: Option<Value>,
}

impl Poller {
    /// Build the poll endpoint of `route`; the error says which program does not compile.
    pub fn new(
        route: &str,
        spec: &PollFrom,
        client: AdapterClient,
        store: Store,
        ingress: Ingress,
    ) -> Result<Poller, String> {
        let compile = |field: &str, src: &str| {
            Program::compile(src).map_err(|e| format!("from.poll.{field}: {e}"))
        };
        if spec.since.is_some() && spec.watermark.is_none() {
            return Err(
                "from.poll.since: a starting point needs `watermark` (what it is compared with)"
                    .into(),
            );
        }
        Ok(Poller {
            route: route.to_string(),
            origin: format!("poll/{route}"),
            items: compile("items", &spec.items)?,
            id: compile("id", &spec.id)?,
            watermark: spec
                .watermark
                .as_deref()
                .map(|w| compile("watermark", w))
                .transpose()?,
            next_page: spec
                .page
                .as_ref()
                .map(|p| compile("page.next", &p.next))
                .transpose()?,
            spec: spec.clone(),
            client,
            store,
            ingress,
        })
    }

    /// The id of the message an item with id `item_id` becomes.
    pub fn message_id(&self, item_id: &str) -> uuid::Uuid {
        Envelope::keyed(&self.origin, item_id, JSON, Body::default()).id
    }

    /// Poll once: list, hand on every new item, advance the watermark. Stops between items
    /// when `shutdown` is cancelled (what is left is tried at the next poll).
    pub async fn poll_once(&self, shutdown: &CancellationToken) -> Result<PollReport, PollError> {
        let stored = self
            .store
            .watermark(&self.route)
            .await
            .map_err(PollError::Store)?
            .map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text)));
        // The first poll of a route with `since` starts that long ago, not at the beginning.
        let from = stored
            .clone()
            .or_else(|| self.spec.since.and_then(starting_point))
            .unwrap_or(Value::Null);
        let (items, cap) = self.list_all(from).await?;

        let mut report = PollReport::default();
        let mut pending: Vec<Item> = Vec::with_capacity(items.len());
        let mut ids = std::collections::HashSet::new();
        let mut held_back: Vec<Option<Value>> = Vec::new();
        for value in items {
            let mark = self.mark_of(&value);
            match self.id_of(&value) {
                Ok(id) => {
                    if ids.insert(id.clone()) {
                        pending.push(Item { id, value, mark });
                    }
                }
                Err(reason) => {
                    tracing::error!(route = %self.route, %reason, "a listed item has no usable id; it is not handed on and holds the watermark back");
                    held_back.push(mark);
                }
            }
        }
        report.listed = pending.len() + held_back.len();
        // Oldest first: a poll that stops early has handed on a prefix.
        pending.sort_by(|a, b| match (&a.mark, &b.mark) {
            (Some(x), Some(y)) => jq_order(x, y),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        });

        let mut handled: Vec<Option<Value>> = Vec::new();
        let mut pending = pending.into_iter();
        for item in pending.by_ref() {
            if shutdown.is_cancelled() {
                held_back.push(item.mark);
                break;
            }
            match self.take(&item).await {
                Taken::Seen => {
                    report.seen += 1;
                    handled.push(item.mark);
                }
                Taken::HandedOn => {
                    report.handed_on += 1;
                    handled.push(item.mark);
                }
                Taken::Failed => held_back.push(item.mark),
                Taken::Stop => {
                    held_back.push(item.mark);
                    break;
                }
            }
        }
        held_back.extend(pending.map(|i| i.mark));
        report.failed = held_back.len();
        // A listing that stopped before its last page has not seen every item of the highest
        // value it listed (a later page may hold more with the same value): the watermark
        // stays below that value, and those listed are skipped as seen next time.
        held_back.extend(cap.map(Some));

        if self.watermark.is_some()
            && let Some(next) = advance(stored.as_ref(), &handled, &held_back)
        {
            match self
                .store
                .set_watermark(&self.route, &next.to_string())
                .await
            {
                Ok(()) => report.watermark = Some(next),
                Err(e) => {
                    tracing::warn!(route = %self.route, error = %e, "the watermark could not be stored; the next poll lists from the previous one");
                }
            }
        }
        Ok(report)
    }

    /// The items of every list (one per entry of `params` when it is a list), and the cap
    /// for the watermark: for each list that stopped before its last page the highest value
    /// it listed (a page not listed may hold more of it), and of those the lowest. A list
    /// whose first page fails fails the poll (its items could otherwise be passed by the
    /// watermark).
    async fn list_all(&self, watermark: Value) -> Result<(Vec<Value>, Option<Value>), PollError> {
        let empty = serde_json::Map::new();
        let entries: Vec<&serde_json::Map<String, Value>> = match &self.spec.params {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_object).collect(),
            Some(Value::Object(map)) => vec![map],
            _ => vec![&empty],
        };
        let mut items = Vec::new();
        let mut cap: Option<Value> = None;
        for params in entries {
            let (found, whole) = self.list_pages(params, watermark.clone()).await?;
            if !whole
                && let Some(highest) = found
                    .iter()
                    .filter_map(|item| self.mark_of(item))
                    .max_by(jq_order)
                && cap.as_ref().is_none_or(|c| jq_order(&highest, c).is_lt())
            {
                cap = Some(highest);
            }
            items.extend(found);
        }
        Ok((items, cap))
    }

    /// The items of every page of one list from `watermark` (one page without `page`), and
    /// whether the listing reached the last page. A failure of the first page fails the
    /// poll; a later page's failure ends the listing there, and the items of the pages
    /// before it go on.
    async fn list_pages(
        &self,
        params: &serde_json::Map<String, Value>,
        watermark: Value,
    ) -> Result<(Vec<Value>, bool), PollError> {
        let (Some(next_page), Some(paging)) = (&self.next_page, &self.spec.page) else {
            let answer = self.list(params, watermark, None).await?;
            let items = extract_items(&self.items, &answer).map_err(PollError::Items)?;
            return Ok((items, true));
        };
        let mut items = Vec::new();
        let mut page = Value::Null;
        for listed in 1..=paging.max {
            let answer = self
                .list(params, watermark.clone(), Some(page.clone()))
                .await;
            let got = answer.and_then(|a| {
                let found = extract_items(&self.items, &a).map_err(PollError::Items)?;
                Ok((a, found))
            });
            let answer = match got {
                Ok((answer, found)) => {
                    items.extend(found);
                    answer
                }
                Err(error) if listed == 1 => return Err(error),
                Err(error) => {
                    tracing::warn!(route = %self.route, page = listed, %error, "a page of the list failed; the items of the pages before it go on, the rest come at the next poll");
                    return Ok((items, false));
                }
            };
            let next = match next_page.first(&answer, &Vars::default()) {
                Ok(Some(Value::Null) | None) => return Ok((items, true)),
                Ok(Some(Value::String(s))) if s.is_empty() => return Ok((items, true)),
                Ok(Some(next)) => next,
                Err(e) => {
                    tracing::warn!(route = %self.route, page = listed, error = %e, "page.next failed on a list answer; the listing ends there");
                    return Ok((items, false));
                }
            };
            if next == page {
                tracing::error!(route = %self.route, page = listed, "the list answered the page it was asked for as the next one; the listing ends there");
                return Ok((items, false));
            }
            page = next;
        }
        if self.watermark.is_some() {
            tracing::info!(route = %self.route, pages = paging.max, "page.max pages listed; the rest come at the next poll, from the watermark this one moves");
        } else {
            tracing::warn!(route = %self.route, pages = paging.max, "page.max pages listed, and without `watermark` every poll starts at the first page again: items beyond page.max are never reached");
        }
        Ok((items, false))
    }

    /// Call the list operation with `params + {watermark}` (and `page`, when paging); its
    /// answer as JSON.
    async fn list(
        &self,
        params: &serde_json::Map<String, Value>,
        watermark: Value,
        page: Option<Value>,
    ) -> Result<Value, PollError> {
        let mut body = params.clone();
        body.insert("watermark".into(), watermark);
        if let Some(page) = page {
            body.insert("page".into(), page);
        }
        let request = Envelope::json(Value::Object(body));
        let answer = self
            .client
            .call(&self.spec.adapter, &self.spec.list, &request)
            .await
            .map_err(PollError::List)?;
        match answer.body {
            Body::Json(v) => Ok(v),
            Body::Bytes(b) if b.is_empty() => Ok(Value::Null),
            Body::Bytes(_) => Err(PollError::NotJson(answer.content_type)),
        }
    }

    fn id_of(&self, item: &Value) -> Result<String, String> {
        match self.id.first(item, &Vars::default()) {
            Ok(Some(Value::Null)) | Ok(None) => Err("the id expression gave no value".into()),
            Ok(Some(v)) => {
                let id = value_to_string(&v);
                if id.is_empty() {
                    Err("the id expression gave an empty string".into())
                } else {
                    Ok(id)
                }
            }
            Err(e) => Err(format!("id: {e}")),
        }
    }

    fn mark_of(&self, item: &Value) -> Option<Value> {
        let program = self.watermark.as_ref()?;
        match program.first(item, &Vars::default()) {
            Ok(Some(Value::Null)) | Ok(None) => None,
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(route = %self.route, error = %e, "watermark: the expression failed on an item");
                None
            }
        }
    }

    /// Hand one item on unless it was seen before: fetch, accept, mark seen.
    async fn take(&self, item: &Item) -> Taken {
        match self.store.is_seen(&self.route, &item.id).await {
            Ok(true) => return Taken::Seen,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(route = %self.route, error = %e, "state store: cannot tell new items from seen ones; the poll stops here");
                return Taken::Stop;
            }
        }
        let mut message =
            Envelope::keyed(&self.origin, &item.id, JSON, Body::Json(item.value.clone()));
        if let Some(fetch) = &self.spec.fetch {
            match self
                .client
                .call_raw(&self.spec.adapter, fetch, &message)
                .await
            {
                Ok(answer) => {
                    message.content_type = answer.content_type;
                    message.body = answer.body;
                }
                Err(error) => {
                    tracing::warn!(route = %self.route, message_id = %message.id, %error, "a new item could not be fetched; it is tried again at the next poll");
                    if self.spec.fetch_failed == FetchFailed::HandOn {
                        return self.hand_on_unfetched(item, &error).await;
                    }
                    return Taken::Failed;
                }
            }
        }
        if let Err(error) = self.ingress.accept(&self.route, &message).await {
            tracing::warn!(route = %self.route, message_id = %message.id, %error, "the broker did not accept a new item; the poll stops here and it is tried again at the next");
            return Taken::Stop;
        }
        if let Err(e) = self.store.mark_seen(&self.route, &item.id).await {
            // Handed on but not recorded: the next poll hands it on again, with the same
            // message id (see the module docs).
            tracing::warn!(route = %self.route, message_id = %message.id, error = %e, "an item was handed on but could not be marked seen; it may be handed on again with the same id");
        }
        tracing::debug!(route = %self.route, message_id = %message.id, "new item handed on");
        Taken::HandedOn
    }

    /// `fetch_failed: hand_on`: the listed item itself goes to the route, saying why its
    /// fetch failed; the item stays unseen, so it is fetched again at the next poll. Its
    /// message id is its own (the same at every poll), apart from the fetched one's.
    async fn hand_on_unfetched(&self, item: &Item, error: &StepError) -> Taken {
        let mut message = Envelope::keyed(
            &self.origin,
            &format!("{}#fetch-failed", item.id),
            JSON,
            Body::Json(item.value.clone()),
        );
        message
            .headers
            .insert(header::FETCH_ERROR.to_string(), error.to_string());
        if let Err(error) = self.ingress.accept(&self.route, &message).await {
            tracing::warn!(route = %self.route, message_id = %message.id, %error, "the broker did not accept an item that could not be fetched; the poll stops here");
            return Taken::Stop;
        }
        Taken::Failed
    }
}

/// What became of one listed item.
enum Taken {
    Seen,
    HandedOn,
    Failed,
    Stop,
}

/// The items in the list's answer: every output of `program`; an array output counts as
/// its elements, a null output as none.
pub fn extract_items(program: &Program, answer: &Value) -> Result<Vec<Value>, ExprError> {
    let mut items = Vec::new();
    for output in program.run(answer, &Vars::default())? {
        match output {
            Value::Array(a) => items.extend(a),
            Value::Null => {}
            other => items.push(other),
        }
    }
    Ok(items)
}

/// jq's order of values: null < false < true < numbers < strings < arrays < objects;
/// numbers by value, strings by code point, arrays element by element (objects by text).
pub fn jq_order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(false) => 1,
            Value::Bool(true) => 2,
            Value::Number(_) => 3,
            Value::String(_) => 4,
            Value::Array(_) => 5,
            Value::Object(_) => 6,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| jq_order(p, q))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        _ if rank(a) != rank(b) => rank(a).cmp(&rank(b)),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// The moment `since` before now, in Swedish time as RFC 3339 (what lärplattform's
/// `meta.modified` looks like; OeP's adapter reads its date).
fn starting_point(since: Duration) -> Option<Value> {
    let ago = chrono::Duration::from_std(since).ok()?;
    let at = (chrono::Utc::now() - ago).with_timezone(&chrono_tz::Europe::Stockholm);
    Some(Value::String(
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    ))
}

/// The watermark after a poll, when it moves forward: the highest value among the items
/// handed on (or seen before) that is below the value of every item not handed on, if that
/// is above `stored`. An item not handed on that has no value could be anywhere: then the
/// watermark stays.
pub fn advance(
    stored: Option<&Value>,
    handled: &[Option<Value>],
    held_back: &[Option<Value>],
) -> Option<Value> {
    if held_back.iter().any(Option::is_none) {
        return None;
    }
    let limit = held_back.iter().flatten().min_by(|a, b| jq_order(a, b));
    let best = handled
        .iter()
        .flatten()
        .filter(|v| limit.is_none_or(|l| jq_order(v, l).is_lt()))
        .max_by(|a, b| jq_order(a, b))?;
    match stored {
        Some(s) if jq_order(best, s).is_le() => None,
        _ => Some(best.clone()),
    }
}

fn schedule(spec: &PollFrom) -> Result<Schedule, String> {
    match (&spec.every, &spec.cron) {
        (Some(every), None) if !every.is_zero() => Ok(Schedule::Every(*every)),
        (None, Some(cron)) => super::timer::parse_cron(cron).map(|c| Schedule::Cron(Box::new(c))),
        _ => Err("a poll needs exactly one of `every` (longer than zero) and `cron`".into()),
    }
}

/// Run the poll endpoint of `route` until `shutdown`: with `every`, a poll at start and then
/// `every` after the end of each; with `cron`, a poll at each fire time (Europe/Stockholm).
pub async fn run(
    route: String,
    spec: PollFrom,
    client: AdapterClient,
    store: Store,
    ingress: Ingress,
    shutdown: CancellationToken,
) {
    let lease = Lease::new(&route, store.clone(), &spec);
    let (poller, schedule) = match Poller::new(&route, &spec, client, store, ingress)
        .and_then(|p| Ok((p, schedule(&spec)?)))
    {
        Ok(built) => built,
        Err(reason) => {
            tracing::error!(route, %reason, "poll endpoint not started");
            return;
        }
    };
    let mut after = Utc::now();
    loop {
        if let Schedule::Cron(cron) = &schedule {
            let Some(at) = super::timer::wait_for_fire(&route, cron, after, &shutdown).await else {
                return;
            };
            after = at;
        }
        let outcome = if lease.hold().await {
            let started = std::time::Instant::now();
            let outcome = poller.poll_once(&shutdown).await;
            lease.took(started.elapsed());
            Some(outcome)
        } else {
            None
        };
        match outcome {
            None => {}
            Some(Ok(report)) => {
                crate::telemetry::metrics::poll(
                    &route,
                    report.handed_on as u64,
                    report.failed as u64,
                );
                if report.handed_on > 0 || report.failed > 0 {
                    tracing::info!(
                        route,
                        listed = report.listed,
                        handed_on = report.handed_on,
                        seen = report.seen,
                        failed = report.failed,
                        "polled"
                    );
                } else {
                    tracing::debug!(
                        route,
                        listed = report.listed,
                        seen = report.seen,
                        "polled: nothing new"
                    );
                }
            }
            Some(Err(error)) => {
                crate::telemetry::metrics::poll(&route, 0, 1);
                tracing::warn!(route, %error, "poll failed; trying again at the next");
            }
        }
        if let Schedule::Every(every) = &schedule {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(*every) => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }
    }
    lease.release().await;
}

/// The poll lease: of several knut instances on one state store, one polls a route at a
/// time (the others skip their turn). It lasts two polling intervals plus as long as the
/// holder's last poll took (at least 10 s; 5 minutes and the last poll for a cron
/// schedule), and is renewed at every turn — the next turn comes one interval after a
/// poll ends, so a holder whose polls take about as long as the last never loses it.
/// When the holder dies, another instance takes over at its first turn after the lease ran
/// out: within three intervals (plus the last poll's duration) of the death — at once when
/// it stops gracefully.
struct Lease {
    name: String,
    holder: String,
    ttl: Duration,
    /// How long this instance's last poll took (microseconds).
    last_poll_us: std::sync::atomic::AtomicU64,
    store: Store,
    route: String,
    held: std::sync::atomic::AtomicBool,
}

impl Lease {
    fn new(route: &str, store: Store, spec: &PollFrom) -> Lease {
        let ttl = match spec.every {
            Some(every) => (every * 2).max(Duration::from_secs(10)),
            None => Duration::from_secs(300),
        };
        Lease {
            name: format!("poll/{route}"),
            holder: uuid::Uuid::now_v7().to_string(),
            ttl,
            last_poll_us: 0.into(),
            store,
            route: route.to_string(),
            held: false.into(),
        }
    }

    /// Remember how long this instance's poll took: the lease it takes next covers as much.
    fn took(&self, poll: Duration) {
        let us = u64::try_from(poll.as_micros()).unwrap_or(u64::MAX);
        self.last_poll_us
            .store(us, std::sync::atomic::Ordering::Relaxed);
    }

    /// Take or renew the lease; false when another instance holds it or the store fails.
    async fn hold(&self) -> bool {
        use std::sync::atomic::Ordering;
        let last = Duration::from_micros(self.last_poll_us.load(Ordering::Relaxed));
        let now = match self
            .store
            .take_lease(&self.name, &self.holder, self.ttl.saturating_add(last))
            .await
        {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(route = %self.route, %error, "cannot take the poll lease; skipping this poll");
                false
            }
        };
        let before = self.held.swap(now, Ordering::Relaxed);
        crate::telemetry::metrics::poll_lease(&self.route, before, now);
        if now != before {
            if now {
                tracing::info!(route = %self.route, "this instance polls (it holds the poll lease)");
            } else {
                tracing::info!(route = %self.route, "another instance polls (it holds the poll lease)");
            }
        }
        now
    }

    async fn release(&self) {
        // Given back on purpose: not held any more, and not lost.
        crate::telemetry::metrics::poll_lease(&self.route, false, false);
        if let Err(error) = self.store.release_lease(&self.name, &self.holder).await {
            tracing::warn!(route = %self.route, %error, "could not release the poll lease; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, Query, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use futures::StreamExt;
    use serde_json::json;

    use super::*;
    use crate::adapter::{Adapter, AdapterSpec, OperationSpec, RequestBody};
    use crate::broker::embedded::EmbeddedBroker;
    use crate::broker::{Broker, Topology, work_queue};
    use crate::core::vocab::HttpMethod;

    fn program(src: &str) -> Program {
        Program::compile(src).expect("compiles")
    }

    #[test]
    fn items_are_the_outputs_with_arrays_spread_and_null_as_none() {
        let items = program(".FlowInstances.FlowInstance");
        let many = json!({"FlowInstances": {"FlowInstance": [{"id": "1"}, {"id": "2"}]}});
        let one = json!({"FlowInstances": {"FlowInstance": {"id": "1"}}});
        let none = json!({"FlowInstances": null});
        assert_eq!(extract_items(&items, &many).unwrap().len(), 2);
        assert_eq!(
            extract_items(&items, &one).unwrap(),
            vec![json!({"id": "1"})]
        );
        assert!(extract_items(&items, &none).unwrap().is_empty());
        let streamed = program(".a[], .b");
        assert_eq!(
            extract_items(&streamed, &json!({"a": [1, [2, 3]], "b": 4})).unwrap(),
            vec![json!(1), json!(2), json!(3), json!(4)]
        );
        assert!(extract_items(&program(".a + 1"), &json!({"a": "x"})).is_err());
    }

    #[test]
    fn values_are_ordered_as_jq_orders_them() {
        use Ordering::*;
        assert_eq!(jq_order(&json!(2), &json!(10)), Less);
        assert_eq!(jq_order(&json!(2.5), &json!(2.5)), Equal);
        assert_eq!(
            jq_order(&json!("2026-11-02 08:14"), &json!("2026-11-02 10:00")),
            Less
        );
        assert_eq!(jq_order(&json!(null), &json!(false)), Less);
        assert_eq!(jq_order(&json!(true), &json!(0)), Less);
        assert_eq!(jq_order(&json!(99), &json!("1")), Less);
        assert_eq!(jq_order(&json!([1, 2]), &json!([1, 3])), Less);
        assert_eq!(jq_order(&json!([1, 2]), &json!([1])), Greater);
    }

    #[test]
    fn the_watermark_never_passes_an_item_not_handed_on() {
        let v = |s: &str| Some(json!(s));
        // Everything handed on: the highest value.
        assert_eq!(
            advance(None, &[v("10:00"), v("10:05"), v("09:00")], &[]),
            Some(json!("10:05"))
        );
        // Never backwards, never the same again.
        assert_eq!(advance(Some(&json!("10:05")), &[v("10:00")], &[]), None);
        assert_eq!(advance(Some(&json!("10:05")), &[v("10:05")], &[]), None);
        // A held-back item caps it strictly below its own value…
        assert_eq!(
            advance(None, &[v("10:00"), v("10:05"), v("10:10")], &[v("10:05")]),
            Some(json!("10:00"))
        );
        // …also when another item shares that value, so both are listed again.
        assert_eq!(advance(None, &[v("10:05")], &[v("10:05")]), None);
        // A held-back item without a value could be anywhere: the watermark stays.
        assert_eq!(advance(None, &[v("10:00")], &[None]), None);
        // Items without values do not move it.
        assert_eq!(advance(None, &[None], &[]), None);
        // Numbers compare as numbers.
        assert_eq!(
            advance(Some(&json!(9)), &[Some(json!(10)), Some(json!(100))], &[]),
            Some(json!(100))
        );
    }

    /// A small system to poll: `GET /items?from=` lists `{items: [{id, at}]}` with `at >=
    /// from`, `GET /items/{id}` answers the item as XML (503 for ids in `failing`), `GET
    /// /down` answers 503. Every list query is recorded.
    #[derive(Default)]
    struct System {
        items: Mutex<Vec<(String, String)>>,
        failing: Mutex<Vec<String>>,
        queries: Mutex<Vec<BTreeMap<String, String>>>,
        fetched: Mutex<Vec<String>>,
        /// `/pages` answers 503 for this page token.
        failing_page: Mutex<Option<String>>,
    }

    async fn serve(system: Arc<System>) -> String {
        use axum::routing::get;
        async fn list(
            State(s): State<Arc<System>>,
            Query(q): Query<BTreeMap<String, String>>,
        ) -> axum::Json<Value> {
            let from = q.get("from").cloned().unwrap_or_default();
            s.queries.lock().unwrap().push(q);
            let items: Vec<Value> = s
                .items
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, at)| *at >= from)
                .map(|(id, at)| json!({"id": id, "at": at}))
                .collect();
            axum::Json(json!({ "items": items }))
        }
        async fn fetch(
            State(s): State<Arc<System>>,
            Path(id): Path<String>,
        ) -> axum::response::Response {
            s.fetched.lock().unwrap().push(id.clone());
            if s.failing.lock().unwrap().contains(&id) {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            (
                [("content-type", "text/xml; charset=ISO-8859-1")],
                format!("<item><id>{id}</id></item>"),
            )
                .into_response()
        }
        /// Two items a page, oldest first: the first page by `from`, the next by `page`
        /// (the offset), never both; `next` is null on the last.
        async fn pages(
            State(s): State<Arc<System>>,
            Query(q): Query<BTreeMap<String, String>>,
        ) -> axum::response::Response {
            s.queries.lock().unwrap().push(q.clone());
            if q.contains_key("page") && q.contains_key("from") {
                return StatusCode::BAD_REQUEST.into_response();
            }
            if q.contains_key("page") && *s.failing_page.lock().unwrap() == q.get("page").cloned() {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            let (from, offset) = match q.get("page") {
                Some(p) => {
                    let (from, offset) = p.split_once('@').unwrap_or(("", "0"));
                    (from.to_string(), offset.parse::<usize>().unwrap_or(0))
                }
                None => (q.get("from").cloned().unwrap_or_default(), 0),
            };
            let mut all: Vec<(String, String)> = s
                .items
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, at)| *at > from)
                .cloned()
                .collect();
            all.sort_by(|a, b| a.1.cmp(&b.1));
            let next = (all.len() > offset + 2).then(|| format!("{from}@{}", offset + 2));
            let items: Vec<Value> = all
                .iter()
                .skip(offset)
                .take(2)
                .map(|(id, at)| json!({"id": id, "at": at}))
                .collect();
            axum::Json(json!({ "items": items, "next": next })).into_response()
        }
        let app = axum::Router::new()
            .route("/pages", get(pages))
            .route("/items", get(list))
            .route("/items/{id}", get(fetch))
            .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .with_state(system);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn client(base: &str) -> AdapterClient {
        let op = |path: &str, query: &[(&str, &str)]| OperationSpec {
            method: HttpMethod::Get,
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: Default::default(),
            body: RequestBody::None,
            response: None,
        };
        let operations = [
            (
                "list".to_string(),
                op("/items", &[("from", ".watermark"), ("kind", ".kind")]),
            ),
            ("get".to_string(), op("/items/{.id}", &[])),
            (
                "pages".to_string(),
                op(
                    "/pages",
                    &[
                        ("from", "if .page then null else .watermark end"),
                        ("page", ".page"),
                    ],
                ),
            ),
            ("down".to_string(), op("/down", &[])),
        ]
        .into();
        let adapter = Adapter {
            spec: AdapterSpec {
                adapter: "sys".into(),
                description: None,
                base_url: base.into(),
                timeout: Duration::from_secs(5),
                headers: Default::default(),
                operations,
                ..Default::default()
            },
            file: "adapters/sys.yaml".into(),
            base_url: base.into(),
        };
        AdapterClient::new(&[("sys".to_string(), adapter)].into()).unwrap()
    }

    fn spec(list: &str, fetch: Option<&str>) -> PollFrom {
        PollFrom {
            adapter: "sys".into(),
            list: list.into(),
            params: Some(json!({"kind": "ledighet"})),
            every: Some(Duration::from_millis(50)),
            cron: None,
            items: ".items".into(),
            id: ".id".into(),
            fetch: fetch.map(str::to_string),
            fetch_failed: FetchFailed::Retry,
            watermark: Some(".at".into()),
            since: None,
            page: None,
        }
    }

    /// `since`: the first poll lists from that long ago (Swedish time, RFC 3339), not from
    /// the beginning; later polls from the stored watermark. Without `watermark` it is an
    /// error.
    #[tokio::test]
    async fn the_first_poll_starts_at_since() {
        let system = Arc::new(System::default());
        let base = serve(system.clone()).await;
        let broker = EmbeddedBroker::new();
        broker.declare(&Topology::single("polled")).await.unwrap();
        let store = Store::memory().await.unwrap();
        let mut with_since = spec("list", None);
        with_since.since = Some(Duration::from_secs(7 * 24 * 3600));
        let poller = Poller::new(
            "polled",
            &with_since,
            client(&base),
            store.clone(),
            Ingress::new(Arc::new(broker.clone())),
        )
        .unwrap();
        poller.poll_once(&CancellationToken::new()).await.unwrap();
        let from = system.queries.lock().unwrap()[0]
            .get("from")
            .cloned()
            .expect("the first poll has a starting point");
        let at = chrono::DateTime::parse_from_rfc3339(&from).expect("RFC 3339");
        let ago = chrono::Utc::now() - at.with_timezone(&chrono::Utc);
        assert!(
            (ago - chrono::Duration::days(7)).num_seconds().abs() < 60,
            "{from}"
        );
        assert!(
            from.ends_with("+01:00") || from.ends_with("+02:00"),
            "{from}"
        );

        let mut no_mark = with_since.clone();
        no_mark.watermark = None;
        let err = Poller::new(
            "polled",
            &no_mark,
            client(&base),
            store,
            Ingress::new(Arc::new(broker)),
        )
        .err()
        .expect("since needs a watermark");
        assert!(err.contains("from.poll.since"), "{err}");
    }

    struct Setup {
        system: Arc<System>,
        broker: EmbeddedBroker,
        store: Store,
        poller: Poller,
    }

    async fn setup(list: &str, fetch: Option<&str>) -> Setup {
        setup_with(&spec(list, fetch)).await
    }

    async fn setup_with(spec: &PollFrom) -> Setup {
        let system = Arc::new(System::default());
        let base = serve(system.clone()).await;
        let broker = EmbeddedBroker::new();
        broker.declare(&Topology::single("polled")).await.unwrap();
        let store = Store::memory().await.unwrap();
        let poller = Poller::new(
            "polled",
            spec,
            client(&base),
            store.clone(),
            Ingress::new(Arc::new(broker.clone())),
        )
        .unwrap();
        Setup {
            system,
            broker,
            store,
            poller,
        }
    }

    impl Setup {
        fn add(&self, id: &str, at: &str) {
            self.system
                .items
                .lock()
                .unwrap()
                .push((id.to_string(), at.to_string()));
        }

        async fn poll(&self) -> PollReport {
            self.poller
                .poll_once(&CancellationToken::new())
                .await
                .expect("the poll runs")
        }

        /// Every message waiting in the route's queue (taken and acked).
        async fn taken(&self) -> Vec<Envelope> {
            let queue = work_queue("polled");
            let n = self.broker.queue_depth(&queue).await.unwrap() as usize;
            let mut c = self.broker.consume(&queue, 100).await.unwrap();
            let mut out = Vec::new();
            for _ in 0..n {
                let d = c.next().await.expect("a message");
                out.push(d.envelope.clone());
                d.ack().await.unwrap();
            }
            out
        }
    }

    /// A paged list: each poll lists page after page (the first by the watermark, the next
    /// by the token alone) until the last; at `max` pages it stops and the next poll goes on
    /// from the watermark; a failing later page ends the listing, the pages before it go on.
    #[tokio::test]
    async fn a_paged_list_is_listed_to_its_last_page() {
        let mut s = setup("pages", None).await;
        for (id, at) in [
            ("a", "10:01"),
            ("b", "10:02"),
            ("c", "10:03"),
            ("d", "10:04"),
            ("e", "10:05"),
        ] {
            s.add(id, at);
        }
        let paged = |max| {
            let mut p = spec("pages", None);
            p.page = Some(crate::route::model::PollPage {
                next: ".next".into(),
                max,
            });
            p
        };
        let (client, store, broker) = (s.poller.client.clone(), s.store.clone(), s.broker.clone());
        let poller = move |spec: PollFrom| {
            Poller::new(
                "polled",
                &spec,
                client.clone(),
                store.clone(),
                Ingress::new(Arc::new(broker.clone())),
            )
            .unwrap()
        };
        s.poller = poller(paged(100));
        let report = s.poll().await;
        assert_eq!((report.listed, report.handed_on), (5, 5));
        assert_eq!(report.watermark, Some(json!("10:05")));
        let queries = std::mem::take(&mut *s.system.queries.lock().unwrap());
        assert_eq!(queries.len(), 3, "three pages of two: {queries:?}");
        assert!(
            !queries[0].contains_key("page"),
            "the first page by the watermark (null yet)"
        );
        assert!(
            queries[1..]
                .iter()
                .all(|q| q.contains_key("page") && !q.contains_key("from"))
        );
        assert_eq!(s.taken().await.len(), 5);

        // At most two pages a poll: the watermark stays below the highest value listed (a
        // page not listed may hold more of it), and the next poll goes on from there.
        for (id, at) in [
            ("f", "10:06"),
            ("g", "10:07"),
            ("h", "10:08"),
            ("i", "10:09"),
            ("j", "10:10"),
        ] {
            s.add(id, at);
        }
        s.poller = poller(paged(2));
        let report = s.poll().await;
        assert_eq!(
            (report.handed_on, report.failed, report.watermark.clone()),
            (4, 0, Some(json!("10:08")))
        );
        let report = s.poll().await;
        assert_eq!(
            (report.handed_on, report.seen, report.watermark),
            (1, 1, Some(json!("10:10")))
        );
        assert_eq!(s.taken().await.len(), 5);

        // A later page that fails: the first page's items go on, the rest at the next poll.
        for (id, at) in [("k", "10:11"), ("l", "10:12"), ("m", "10:13")] {
            s.add(id, at);
        }
        *s.system.failing_page.lock().unwrap() = Some("10:10@2".into());
        s.poller = poller(paged(100));
        let report = s.poll().await;
        assert_eq!(
            (report.handed_on, report.watermark.clone()),
            (2, Some(json!("10:11")))
        );
        *s.system.failing_page.lock().unwrap() = None;
        let report = s.poll().await;
        assert_eq!(
            (report.handed_on, report.watermark),
            (1, Some(json!("10:13")))
        );
        assert_eq!(s.taken().await.len(), 3);

        // Six items of one value (one registration), the second page failing: the
        // watermark does not pass that value, so the four not listed come at the next poll.
        for id in ["n1", "n2", "n3", "n4", "n5", "n6"] {
            s.add(id, "10:20");
        }
        *s.system.failing_page.lock().unwrap() = Some("10:13@2".into());
        let report = s.poll().await;
        assert_eq!((report.handed_on, report.watermark.clone()), (2, None));
        *s.system.failing_page.lock().unwrap() = None;
        let report = s.poll().await;
        assert_eq!(
            (report.handed_on, report.seen, report.watermark),
            (4, 2, Some(json!("10:20")))
        );
        assert_eq!(s.taken().await.len(), 6);
    }

    #[tokio::test]
    async fn each_new_item_is_handed_on_once_oldest_first_with_a_stable_id() {
        let s = setup("list", None).await;
        s.add("b", "2026-11-02 10:05");
        s.add("a", "2026-11-02 10:00");
        let report = s.poll().await;
        assert_eq!(
            (report.listed, report.handed_on, report.seen, report.failed),
            (2, 2, 0, 0)
        );
        assert_eq!(report.watermark, Some(json!("2026-11-02 10:05")));
        let got = s.taken().await;
        let bodies: Vec<Value> = got
            .iter()
            .map(|m| m.json_body().unwrap().into_owned())
            .collect();
        assert_eq!(
            bodies,
            vec![
                json!({"id": "a", "at": "2026-11-02 10:00"}),
                json!({"id": "b", "at": "2026-11-02 10:05"})
            ]
        );
        assert_eq!(got[0].id, s.poller.message_id("a"));
        assert_eq!(
            got[0].id,
            Envelope::keyed("poll/polled", "a", JSON, Body::default()).id
        );
        assert!(s.store.is_seen("polled", "a").await.unwrap());

        // The list is asked from the watermark on (inclusive): b comes again, and is seen.
        s.add("c", "2026-11-02 10:07");
        let report = s.poll().await;
        assert_eq!((report.listed, report.handed_on, report.seen), (2, 1, 1));
        let got = s.taken().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, s.poller.message_id("c"));
        let queries = s.system.queries.lock().unwrap().clone();
        assert_eq!(queries[0].get("from"), None, "no watermark yet");
        assert_eq!(queries[0].get("kind").map(String::as_str), Some("ledighet"));
        assert_eq!(
            queries[1].get("from").map(String::as_str),
            Some("2026-11-02 10:05")
        );
        assert_eq!(
            s.store.watermark("polled").await.unwrap().as_deref(),
            Some("\"2026-11-02 10:07\"")
        );

        // Nothing new: nothing handed on, the watermark stays.
        let report = s.poll().await;
        assert_eq!((report.handed_on, report.watermark), (0, None));
        assert!(s.taken().await.is_empty());
    }

    #[tokio::test]
    async fn a_failed_fetch_holds_the_watermark_back_and_is_tried_again() {
        let s = setup("list", Some("get")).await;
        s.add("1", "2026-11-02 10:00");
        s.add("2", "2026-11-02 10:05");
        s.add("3", "2026-11-02 10:10");
        s.system.failing.lock().unwrap().push("2".into());
        let report = s.poll().await;
        assert_eq!((report.handed_on, report.failed), (2, 1));
        assert_eq!(report.watermark, Some(json!("2026-11-02 10:00")));
        let got = s.taken().await;
        assert_eq!(got.len(), 2);
        // The fetched answer is the message, as it came.
        assert_eq!(got[0].content_type, "text/xml; charset=ISO-8859-1");
        assert_eq!(
            got[0].body.to_bytes(),
            bytes::Bytes::from("<item><id>1</id></item>")
        );
        assert_eq!(got[1].id, s.poller.message_id("3"));
        assert!(!s.store.is_seen("polled", "2").await.unwrap());

        // The next poll lists from 10:00 and hands on item 2 alone.
        s.system.failing.lock().unwrap().clear();
        let report = s.poll().await;
        assert_eq!((report.handed_on, report.seen, report.failed), (1, 2, 0));
        assert_eq!(report.watermark, Some(json!("2026-11-02 10:10")));
        let got = s.taken().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, s.poller.message_id("2"));
        assert_eq!(got[0].correlation_id, got[0].id);
        assert_eq!(
            s.system.fetched.lock().unwrap().clone(),
            vec!["1", "2", "3", "2"]
        );
    }

    /// `fetch_failed: hand_on`: an item whose fetch fails reaches the route as the listed
    /// item, with why, under an id of its own; it stays unseen, and the next poll fetches
    /// it and hands it on as usual.
    #[tokio::test]
    async fn hand_on_passes_an_unfetched_item_on_with_why() {
        let mut spec = spec("list", Some("get"));
        spec.fetch_failed = FetchFailed::HandOn;
        let s = setup_with(&spec).await;
        s.add("1", "2026-11-02 10:00");
        s.add("2", "2026-11-02 10:05");
        s.system.failing.lock().unwrap().push("2".into());
        let report = s.poll().await;
        assert_eq!((report.handed_on, report.failed), (1, 1));
        let got = s.taken().await;
        assert_eq!(got.len(), 2);
        let (unfetched, fetched): (Vec<_>, Vec<_>) = got
            .into_iter()
            .partition(|m| m.headers.contains_key(header::FETCH_ERROR));
        assert_eq!(fetched.len(), 1);
        assert_eq!(fetched[0].id, s.poller.message_id("1"));
        let unfetched = &unfetched[0];
        assert_eq!(unfetched.content_type, JSON);
        assert_eq!(
            *unfetched.json_body().unwrap(),
            json!({"id": "2", "at": "2026-11-02 10:05"})
        );
        let why = &unfetched.headers[header::FETCH_ERROR];
        assert!(why.contains("503"), "{why}");
        assert_ne!(unfetched.id, s.poller.message_id("2"));
        assert!(!s.store.is_seen("polled", "2").await.unwrap());

        s.system.failing.lock().unwrap().clear();
        let report = s.poll().await;
        assert_eq!((report.handed_on, report.seen, report.failed), (1, 1, 0));
        let got = s.taken().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, s.poller.message_id("2"));
        assert!(!got[0].headers.contains_key(header::FETCH_ERROR));
    }

    #[tokio::test]
    async fn nothing_is_marked_seen_before_the_broker_confirmed_it() {
        let s = setup("list", None).await;
        s.add("1", "2026-11-02 10:00");
        s.broker.close().await;
        let report = s.poll().await;
        assert_eq!((report.handed_on, report.failed), (0, 1));
        assert_eq!(report.watermark, None);
        assert!(!s.store.is_seen("polled", "1").await.unwrap());
        assert_eq!(s.store.watermark("polled").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_failed_list_changes_nothing_and_items_without_id_hold_back() {
        let s = setup("down", None).await;
        let err = s
            .poller
            .poll_once(&CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PollError::List(e) if e.kind == crate::core::error::FailureKind::Transient)
        );
        assert!(
            err.to_string().contains("sys.down answered HTTP 503"),
            "{err}"
        );

        let s = setup("list", None).await;
        s.add("", "2026-11-02 10:00");
        s.add("2", "2026-11-02 10:05");
        let report = s.poll().await;
        assert_eq!((report.handed_on, report.failed), (1, 1));
        assert_eq!(report.watermark, None, "below the id-less item's value");
    }

    /// `params` as a list: one list call per entry (OeP lists one status a call), the items
    /// merged and each handed on once however many lists name it.
    #[tokio::test]
    async fn a_list_of_params_lists_each_and_merges() {
        let mut s = setup("list", None).await;
        s.add("a", "10:01");
        s.add("b", "10:02");
        let mut spec = spec("list", None);
        spec.params = Some(json!([{"kind": "beviljat"}, {"kind": "beslutad"}]));
        s.poller = Poller::new(
            "polled",
            &spec,
            s.poller.client.clone(),
            s.store.clone(),
            Ingress::new(Arc::new(s.broker.clone())),
        )
        .unwrap();
        let report = s.poll().await;
        assert_eq!((report.listed, report.handed_on), (2, 2));
        let kinds: Vec<String> = s
            .system
            .queries
            .lock()
            .unwrap()
            .iter()
            .filter_map(|q| q.get("kind").cloned())
            .collect();
        assert_eq!(kinds, ["beviljat", "beslutad"]);
        assert_eq!(s.taken().await.len(), 2);
    }

    #[tokio::test]
    async fn a_stopped_poll_hands_on_nothing_more() {
        let s = setup("list", None).await;
        s.add("1", "2026-11-02 10:00");
        let stop = CancellationToken::new();
        stop.cancel();
        let report = s.poller.poll_once(&stop).await.unwrap();
        assert_eq!((report.handed_on, report.failed), (0, 1));
        assert!(s.taken().await.is_empty());
    }

    #[tokio::test]
    async fn run_polls_at_start_and_stops_on_shutdown() {
        let s = setup("list", None).await;
        s.add("1", "2026-11-02 10:00");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            "polled".into(),
            spec("list", None),
            s.poller.client.clone(),
            s.store.clone(),
            s.poller.ingress.clone(),
            shutdown.clone(),
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !s.store.is_seen("polled", "1").await.unwrap() {
            assert!(std::time::Instant::now() < deadline, "never polled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.taken().await.len(), 1);
    }

    /// Two instances on one store: one polls at a time; when it stops gracefully the
    /// other takes over at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_two_instances_one_polls_and_the_other_takes_over() {
        let s = setup("list", None).await;
        s.add("a", "1");
        let base = serve(s.system.clone()).await;
        let ingress = Ingress::new(Arc::new(s.broker.clone()));
        let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
        let a = tokio::spawn(run(
            "polled".into(),
            spec("list", None),
            client(&base),
            s.store.clone(),
            ingress.clone(),
            stop_a.clone(),
        ));
        // Let a take the lease before b starts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b = tokio::spawn(run(
            "polled".into(),
            spec("list", None),
            client(&base),
            s.store.clone(),
            ingress,
            stop_b.clone(),
        ));
        let queries = || s.system.queries.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let in_600ms = queries();
        // One instance every 50 ms: about 14 polls in 700 ms; two would make about 26.
        assert!(
            (3..=18).contains(&in_600ms),
            "{in_600ms} polls: one instance polls"
        );
        let holder = s
            .store
            .take_lease("poll/polled", "someone-else", Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!holder, "the lease is held");
        stop_a.cancel();
        a.await.unwrap();
        let before = queries();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            queries() >= before + 3,
            "b took over at once: {} → {}",
            before,
            queries()
        );
        stop_b.cancel();
        b.await.unwrap();
        // Gracefully stopped: the lease is free.
        assert!(
            s.store
                .take_lease("poll/polled", "someone-else", Duration::from_secs(1))
                .await
                .unwrap()
        );
        assert_eq!(s.taken().await.len(), 1, "the item was handed on once");
    }
}
