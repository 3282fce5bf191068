//! What Knutpunkt declares on RabbitMQ, as data: one plan used both to declare the
//! topology ([`super::AmqpBroker`]) and to print it as RabbitMQ definitions JSON
//! (`knut topology`), so what operators review is exactly what knut declares.
//!
//! For a set of routes the plan holds:
//! - durable topic exchanges: `knut.ingress` and every exchange a route consumes from or
//!   publishes to;
//! - per route a durable work queue `knut.route.<id>` and dead-letter queue
//!   `knut.dlq.<id>` (`x-queue-type` from `broker.queue_type`), the work queue bound to
//!   `knut.ingress` with the route id and to the route's own bindings. A quorum work queue
//!   (and partition queue) has the last line of defence against a message that is never
//!   settled — a step that crashes the process every time, a broker that refuses every
//!   retry: after [`DELIVERY_LIMIT`] deliveries RabbitMQ dead-letters it, at least once, to
//!   the route's dead-letter queue (`x-delivery-limit`, `x-dead-letter-exchange: ""`,
//!   `x-dead-letter-routing-key: knut.dlq.<id>`, `x-dead-letter-strategy: at-least-once`,
//!   which needs `x-overflow: reject-publish`). Classic queues count no deliveries and
//!   get no limit; a step's panic is dead-lettered by knut itself on either.
//! - per route the retry ladder `knut.retry.<id>.<rung>` (classic, `x-message-ttl`,
//!   dead-lettering to the work queue through the default exchange). knut declares these
//!   on first use; the definitions list them all so an imported broker needs nothing more;
//! - per ordered route (`ordered_by`) the partition queues `knut.route.<id>.p<k>` (same
//!   type, reached through the default exchange, no bindings); its work queue and every
//!   partition queue get `x-single-active-consumer: true`. An ordered route retries in
//!   place, so it has no retry ladder.

use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::{Map, Value, json};

use super::QueueType;
use super::delay::{RUNGS_MS, delay_queue};
use crate::broker::{INGRESS_EXCHANGE, Topology, dead_letter_queue, work_queue};

/// The value of a queue argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    /// A text argument (`x-queue-type`, `x-dead-letter-exchange`).
    Text(String),
    /// An integer argument (`x-message-ttl`).
    Int(i64),
    /// A boolean argument (`x-single-active-consumer`).
    Bool(bool),
}

impl Argument {
    fn to_amqp(&self) -> AMQPValue {
        match self {
            Argument::Text(t) => AMQPValue::LongString(LongString::from(t.as_str())),
            Argument::Int(i) => AMQPValue::LongLongInt(*i),
            Argument::Bool(b) => AMQPValue::Boolean(*b),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Argument::Text(t) => Value::from(t.as_str()),
            Argument::Int(i) => Value::from(*i),
            Argument::Bool(b) => Value::from(*b),
        }
    }
}

/// How many times a quorum work queue delivers a message before RabbitMQ dead-letters it to
/// the route's dead-letter queue. Knutpunkt settles every delivery it processes (retries go
/// through the retry ladder as new messages), so only a message that was never settled —
/// the process died or gave it back each time — comes near it.
pub const DELIVERY_LIMIT: i64 = 20;

/// A durable queue and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// The queue name.
    pub name: String,
    /// `x-…` arguments, in declaration order.
    pub arguments: Vec<(&'static str, Argument)>,
}

impl QueueSpec {
    fn new(name: String, queue_type: QueueType) -> Self {
        QueueSpec {
            name,
            arguments: vec![("x-queue-type", Argument::Text(queue_type.as_str().into()))],
        }
    }

    /// A queue of an ordered route: one consumer at a time delivers, the next takes over.
    fn single_active(name: String, queue_type: QueueType) -> Self {
        let mut spec = QueueSpec::new(name, queue_type);
        spec.arguments
            .push(("x-single-active-consumer", Argument::Bool(true)));
        spec
    }

    /// A work (or partition) queue of `route`: on quorum queues, a message delivered
    /// [`DELIVERY_LIMIT`] times goes to the route's dead-letter queue, at least once.
    fn with_delivery_limit(mut self, route: &str, queue_type: QueueType) -> Self {
        if queue_type == QueueType::Quorum {
            self.arguments.extend([
                ("x-delivery-limit", Argument::Int(DELIVERY_LIMIT)),
                ("x-dead-letter-exchange", Argument::Text(String::new())),
                (
                    "x-dead-letter-routing-key",
                    Argument::Text(dead_letter_queue(route)),
                ),
                (
                    "x-dead-letter-strategy",
                    Argument::Text("at-least-once".into()),
                ),
                ("x-overflow", Argument::Text("reject-publish".into())),
            ]);
        }
        self
    }

    /// The arguments as an AMQP field table.
    pub fn field_table(&self) -> FieldTable {
        let mut table = FieldTable::default();
        for (key, value) in &self.arguments {
            table.insert((*key).into(), value.to_amqp());
        }
        table
    }

    fn arguments_json(&self) -> Value {
        let mut map = Map::new();
        for (key, value) in &self.arguments {
            map.insert((*key).to_string(), value.to_json());
        }
        Value::Object(map)
    }
}

/// A binding of a queue to a topic exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The exchange.
    pub exchange: String,
    /// The queue.
    pub queue: String,
    /// The routing key pattern.
    pub key: String,
}

/// Exchanges, queues and bindings, in the order they are declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definitions {
    /// Durable topic exchanges.
    pub exchanges: Vec<String>,
    /// Durable queues.
    pub queues: Vec<QueueSpec>,
    /// Queue bindings.
    pub bindings: Vec<Binding>,
}

/// The delay queue of `route` for one rung of the retry ladder.
pub fn delay_queue_spec(route: &str, rung_ms: u64) -> QueueSpec {
    let mut spec = QueueSpec::new(delay_queue(route, rung_ms), QueueType::Classic);
    spec.arguments.extend([
        (
            "x-message-ttl",
            Argument::Int(i64::try_from(rung_ms).unwrap_or(i64::MAX)),
        ),
        ("x-dead-letter-exchange", Argument::Text(String::new())),
        (
            "x-dead-letter-routing-key",
            Argument::Text(work_queue(route)),
        ),
    ]);
    spec
}

/// What `declare` puts on the broker for `topology`: exchanges, work and dead-letter
/// queues, the partition queues of ordered routes, bindings (the retry ladder is left to
/// first use).
pub fn plan(topology: &Topology, queue_type: QueueType) -> Definitions {
    fn add_exchange(name: &str, exchanges: &mut Vec<String>) {
        if !exchanges.iter().any(|e| e == name) {
            exchanges.push(name.to_string());
        }
    }
    let mut exchanges = vec![INGRESS_EXCHANGE.to_string()];
    for e in &topology.exchanges {
        add_exchange(e, &mut exchanges);
    }
    let mut queues = Vec::new();
    let mut bindings = Vec::new();
    for rq in &topology.routes {
        let wq = work_queue(&rq.route);
        if rq.partitions.is_some() {
            queues.push(
                QueueSpec::single_active(wq.clone(), queue_type)
                    .with_delivery_limit(&rq.route, queue_type),
            );
        } else {
            queues.push(
                QueueSpec::new(wq.clone(), queue_type).with_delivery_limit(&rq.route, queue_type),
            );
        }
        queues.push(QueueSpec::new(dead_letter_queue(&rq.route), queue_type));
        for pq in rq.partition_queues() {
            queues.push(
                QueueSpec::single_active(pq, queue_type).with_delivery_limit(&rq.route, queue_type),
            );
        }
        bindings.push(Binding {
            exchange: INGRESS_EXCHANGE.to_string(),
            queue: wq.clone(),
            key: rq.route.clone(),
        });
        for (exchange, pattern) in &rq.bindings {
            add_exchange(exchange, &mut exchanges);
            bindings.push(Binding {
                exchange: exchange.clone(),
                queue: wq.clone(),
                key: pattern.clone(),
            });
        }
    }
    for o in &topology.outlets {
        queues.push(QueueSpec::new(
            o.queue.clone(),
            o.queue_type.unwrap_or(queue_type),
        ));
        for (exchange, pattern) in &o.bindings {
            add_exchange(exchange, &mut exchanges);
            bindings.push(Binding {
                exchange: exchange.clone(),
                queue: o.queue.clone(),
                key: pattern.clone(),
            });
        }
    }
    Definitions {
        exchanges,
        queues,
        bindings,
    }
}

/// The complete plan, retry ladders included (ordered routes retry in place and have
/// none): what `knut topology` prints.
pub fn full_plan(topology: &Topology, queue_type: QueueType) -> Definitions {
    let mut defs = plan(topology, queue_type);
    for rq in topology.routes.iter().filter(|rq| rq.partitions.is_none()) {
        defs.queues.extend(
            RUNGS_MS
                .iter()
                .map(|&rung| delay_queue_spec(&rq.route, rung)),
        );
    }
    defs
}

impl Definitions {
    /// RabbitMQ definitions JSON (the format of `rabbitmqctl import_definitions` and the
    /// management UI's import) for virtual host `vhost`.
    pub fn to_json(&self, vhost: &str) -> Value {
        let exchanges: Vec<Value> = self
            .exchanges
            .iter()
            .map(|name| {
                json!({
                    "name": name, "vhost": vhost, "type": "topic", "durable": true,
                    "auto_delete": false, "internal": false, "arguments": {}
                })
            })
            .collect();
        let queues: Vec<Value> = self
            .queues
            .iter()
            .map(|q| {
                json!({
                    "name": q.name, "vhost": vhost, "durable": true, "auto_delete": false,
                    "arguments": q.arguments_json()
                })
            })
            .collect();
        let bindings: Vec<Value> = self
            .bindings
            .iter()
            .map(|b| {
                json!({
                    "source": b.exchange, "vhost": vhost, "destination": b.queue,
                    "destination_type": "queue", "routing_key": b.key, "arguments": {}
                })
            })
            .collect();
        json!({
            "vhosts": [{ "name": vhost }],
            "exchanges": exchanges,
            "queues": queues,
            "bindings": bindings,
        })
    }
}

impl Definitions {
    /// Add what `other` declares that this does not yet (one vhost holding both).
    pub fn merge(&mut self, other: &Definitions) {
        for e in &other.exchanges {
            if !self.exchanges.contains(e) {
                self.exchanges.push(e.clone());
            }
        }
        for q in &other.queues {
            if !self.queues.iter().any(|x| x.name == q.name) {
                self.queues.push(q.clone());
            }
        }
        for b in &other.bindings {
            if !self.bindings.contains(b) {
                self.bindings.push(b.clone());
            }
        }
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.exchanges
            .iter()
            .map(String::as_str)
            .chain(self.queues.iter().map(|q| q.name.as_str()))
    }
}

/// One plane on the broker: its virtual host, its user and what it declares there.
#[derive(Debug, Clone)]
pub struct PlaneDefinitions {
    /// The plane's virtual host.
    pub vhost: String,
    /// The plane's user (its password is set by the operators, never here).
    pub user: String,
    /// Its exchanges, queues and bindings.
    pub definitions: Definitions,
}

/// `^(…)$` matching exactly the names and the extra patterns (as they are). The names are
/// written as a trie, names sharing a prefix sharing it in the pattern
/// (`knut\.dlq\.(?:a|b)`): RabbitMQ compiles a permission with Erlang's PCRE, which refuses
/// a pattern too large to compile (about 64 KiB), and the shipped routes' 1,200 queue names
/// listed one by one did not fit (`rabbitmqctl import_definitions` failed).
fn only(names: impl IntoIterator<Item = String>, patterns: &[&str]) -> String {
    let names: std::collections::BTreeSet<String> = names.into_iter().collect();
    let words: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut parts: Vec<String> = Vec::new();
    if !words.is_empty() {
        parts.push(trie(&words));
    }
    parts.extend(patterns.iter().map(|p| p.to_string()));
    parts.sort();
    parts.dedup();
    format!("^({})$", parts.join("|"))
}

/// A pattern matching exactly `words` (sorted, no duplicates), escaped, as a trie.
fn trie(words: &[&str]) -> String {
    let mut branches = Vec::new();
    let mut optional = false;
    let mut i = 0;
    while i < words.len() {
        let Some(first) = words[i].chars().next() else {
            // The empty word: what precedes this group may end here.
            optional = true;
            i += 1;
            continue;
        };
        let group: Vec<&str> = words[i..]
            .iter()
            .take_while(|w| w.starts_with(first))
            .copied()
            .collect();
        i += group.len();
        let prefix = common_prefix(&group);
        let rest: Vec<&str> = group.iter().map(|w| &w[prefix.len()..]).collect();
        let tail = if rest.len() == 1 {
            String::new()
        } else {
            trie(&rest)
        };
        branches.push(format!("{}{tail}", regex::escape(prefix)));
    }
    match (branches.len(), optional) {
        (0, _) => String::new(),
        (1, false) => branches.remove(0),
        (_, false) => format!("(?:{})", branches.join("|")),
        (_, true) => format!("(?:{})?", branches.join("|")),
    }
}

/// The longest prefix all of `words` (at least one) share, on character boundaries.
fn common_prefix<'a>(words: &[&'a str]) -> &'a str {
    let first = words[0];
    let mut end = 0;
    for (at, c) in first.char_indices() {
        if words[1..].iter().all(|w| w[at..].starts_with(c)) {
            end = at + c.len_utf8();
        } else {
            break;
        }
    }
    &first[..end]
}

/// A plane user's permissions on its own vhost: exactly its exchanges and queues (and its
/// reply queues); writing also to the default exchange (retries, dead letters, replies).
fn own_permissions(p: &PlaneDefinitions) -> Value {
    let names: Vec<String> = p.definitions.names().map(str::to_string).collect();
    json!({
        "user": p.user, "vhost": p.vhost,
        "configure": only(names.clone(), &[r"knut\.reply\..+"]),
        "write": only(names.clone(), &[r"knut\.reply\..+", r"amq\.default"]),
        "read": only(names, &[r"knut\.reply\..+"]),
    })
}

/// RabbitMQ definitions JSON for the planes: both vhosts with their exchanges, queues and
/// bindings, the two users (no passwords: `password_hash` empty, so nobody logs in until
/// the operators set one) and least-privilege permissions. The external user has no
/// permission at all on the internal vhost. The internal user may, on the external vhost,
/// use only its bridge routes' queues (`bridge`: their part of the external vhost) and
/// read the exchanges they bind; on `knut.ingress` there it may publish (a dead letter's
/// replay) and bind only its bridges' own routing keys (topic permissions).
pub fn planes_json(
    internal: &PlaneDefinitions,
    external: Option<&PlaneDefinitions>,
    bridge: Option<&Definitions>,
    bridge_routes: &[String],
) -> Value {
    let mut value = internal.definitions.to_json(&internal.vhost);
    let mut users = vec![json!({"name": internal.user, "password_hash": "", "tags": ""})];
    let mut permissions = vec![own_permissions(internal)];
    let mut topic_permissions = Vec::new();
    if let Some(ext) = external {
        let mut ext_defs = ext.definitions.clone();
        if let Some(b) = bridge {
            ext_defs.merge(b);
        }
        let ext_json = ext_defs.to_json(&ext.vhost);
        for key in ["vhosts", "exchanges", "queues", "bindings"] {
            if let (Some(all), Some(more)) = (
                value.get_mut(key).and_then(Value::as_array_mut),
                ext_json.get(key).and_then(Value::as_array),
            ) {
                for item in more {
                    if !all.contains(item) {
                        all.push(item.clone());
                    }
                }
            }
        }
        if ext.user != internal.user {
            users.push(json!({"name": ext.user, "password_hash": "", "tags": ""}));
        }
        permissions.push(own_permissions(ext));
        if let Some(b) = bridge
            && ext.vhost != internal.vhost
        {
            let queues: Vec<String> = b.queues.iter().map(|q| q.name.clone()).collect();
            let readable: Vec<String> = b.names().map(str::to_string).collect();
            permissions.push(json!({
                "user": internal.user, "vhost": ext.vhost,
                "configure": only(readable.clone(), &[]),
                "write": only(queues, &[r"amq\.default", r"knut\.ingress"]),
                "read": only(readable, &[]),
            }));
            let keys = only(bridge_routes.iter().cloned(), &[]);
            topic_permissions.push(json!({
                "user": internal.user, "vhost": ext.vhost, "exchange": INGRESS_EXCHANGE,
                "write": keys, "read": keys,
            }));
        }
    }
    value["users"] = Value::Array(users);
    value["permissions"] = Value::Array(permissions);
    value["topic_permissions"] = Value::Array(topic_permissions);
    value
}

/// The user named by an `amqp://` URL, if it names one.
pub fn user_of(url: &str) -> Option<String> {
    url.parse::<lapin::uri::AMQPUri>()
        .ok()
        .map(|u| u.authority.userinfo.username)
        .filter(|u| !u.is_empty())
}

/// The virtual host named by an `amqp://` URL (`/` when it names none), percent-decoded.
/// The error never repeats the URL, which may hold a password.
pub fn vhost_of(url: &str) -> Result<String, String> {
    url.parse::<lapin::uri::AMQPUri>()
        .map(|u| u.vhost)
        .map_err(|_| "broker.url is not a valid amqp:// or amqps:// URL".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::RouteQueue;

    /// A permission pattern matches exactly its names: none missing, nothing more (a
    /// prefix, an extension, a sibling), written as a trie far shorter than the list.
    #[test]
    fn a_permission_pattern_matches_exactly_its_names() {
        let names: Vec<String> = [
            "knut.route.a",
            "knut.route.ab",
            "knut.route.abc",
            "knut.dlq.a",
            "knut.dlq.b-c",
            "knut.retry.a.100ms",
            "knut.retry.a.10m",
            "knut.retry.a.1h",
            "case.events",
            "å.ä",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let pattern = only(names.clone(), &[r"knut\.reply\..+"]);
        let re = regex::Regex::new(&pattern).expect("a valid pattern");
        for n in &names {
            assert!(re.is_match(n), "{n} not matched by {pattern}");
        }
        assert!(re.is_match("knut.reply.x1"));
        for n in [
            "knut.route.",
            "knut.route",
            "knut.route.abcd",
            "knut.route.b",
            "knut.dlq.b",
            "knut.dlq.b-",
            "knut.retry.a.1",
            "knut.retry.a.10ms",
            "knut.retry.a",
            "case",
            "case.events.x",
            "knut.routeXa",
            "å",
            "",
            "xknut.route.a",
        ] {
            assert!(!re.is_match(n), "{n} matched by {pattern}");
        }
        assert_eq!(only(Vec::new(), &[]), "^()$");
        assert_eq!(only(vec!["a.b".to_string()], &[]), r"^(a\.b)$");
        // 80 routes' retry ladders: the list was ~2,700 characters per route.
        let many: Vec<String> = (0..80)
            .flat_map(|r| {
                [
                    "100ms", "250ms", "500ms", "1s", "2s", "5s", "10s", "30s", "1m", "2m", "5m",
                    "10m", "30m", "1h",
                ]
                .map(move |rung| format!("knut.retry.some-route-name-{r}.{rung}"))
            })
            .collect();
        let listed: usize = many.iter().map(|n| regex::escape(n).len() + 1).sum();
        let pattern = only(many.clone(), &[]);
        assert!(pattern.len() * 5 < listed, "{} vs {listed}", pattern.len());
        let re = regex::Regex::new(&pattern).expect("valid");
        assert!(many.iter().all(|n| re.is_match(n)));
        assert!(!re.is_match("knut.retry.some-route-name-80.1s"));
    }

    fn topology() -> Topology {
        Topology {
            exchanges: vec!["school.events".into()],
            outlets: Vec::new(),
            routes: vec![RouteQueue {
                route: "placement-change".into(),
                bindings: vec![("school.events".into(), "placement.*".into())],
                partitions: None,
            }],
        }
    }

    #[test]
    fn plan_has_ingress_work_dlq_and_bindings() {
        let d = plan(&topology(), QueueType::Quorum);
        assert_eq!(d.exchanges, ["knut.ingress", "school.events"]);
        let names: Vec<_> = d.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            ["knut.route.placement-change", "knut.dlq.placement-change"]
        );
        // The work queue has the delivery limit and dead-letters to the route's own
        // dead-letter queue; the dead-letter queue is plain.
        assert_eq!(
            d.queues[0].arguments,
            vec![
                ("x-queue-type", Argument::Text("quorum".into())),
                ("x-delivery-limit", Argument::Int(DELIVERY_LIMIT)),
                ("x-dead-letter-exchange", Argument::Text(String::new())),
                (
                    "x-dead-letter-routing-key",
                    Argument::Text("knut.dlq.placement-change".into())
                ),
                (
                    "x-dead-letter-strategy",
                    Argument::Text("at-least-once".into())
                ),
                ("x-overflow", Argument::Text("reject-publish".into())),
            ]
        );
        assert_eq!(
            d.queues[1].arguments,
            vec![("x-queue-type", Argument::Text("quorum".into()))]
        );
        // Classic queues count no deliveries: no limit.
        let classic = plan(&topology(), QueueType::Classic);
        assert!(
            classic
                .queues
                .iter()
                .all(|q| q.arguments == vec![("x-queue-type", Argument::Text("classic".into()))])
        );
        assert_eq!(
            d.bindings,
            [
                Binding {
                    exchange: "knut.ingress".into(),
                    queue: "knut.route.placement-change".into(),
                    key: "placement-change".into()
                },
                Binding {
                    exchange: "school.events".into(),
                    queue: "knut.route.placement-change".into(),
                    key: "placement.*".into()
                }
            ]
        );
    }

    #[test]
    fn definitions_json_is_importable_shape() {
        let v = full_plan(&topology(), QueueType::Classic).to_json("skola");
        assert_eq!(v["vhosts"][0]["name"], "skola");
        assert_eq!(v["exchanges"][1]["type"], "topic");
        assert_eq!(v["exchanges"][1]["durable"], true);
        let queues = v["queues"].as_array().expect("queues");
        assert_eq!(queues.len(), 2 + RUNGS_MS.len());
        assert_eq!(queues[0]["arguments"]["x-queue-type"], "classic");
        let delay = &queues[2];
        assert_eq!(delay["name"], "knut.retry.placement-change.100ms");
        assert_eq!(delay["arguments"]["x-message-ttl"], 100);
        assert_eq!(delay["arguments"]["x-dead-letter-exchange"], "");
        assert_eq!(
            delay["arguments"]["x-dead-letter-routing-key"],
            "knut.route.placement-change"
        );
        assert_eq!(v["bindings"][1]["source"], "school.events");
        assert_eq!(v["bindings"][1]["destination_type"], "queue");
    }

    #[test]
    fn ordered_route_has_single_active_partitions_and_no_retry_ladder() {
        let mut t = topology();
        t.routes.push(RouteQueue {
            route: "student-events".into(),
            bindings: vec![("school.events".into(), "student.#".into())],
            partitions: Some(3),
        });
        let d = full_plan(&t, QueueType::Quorum);
        let ordered: Vec<&QueueSpec> = d
            .queues
            .iter()
            .filter(|q| q.name.contains("student-events"))
            .collect();
        let names: Vec<&str> = ordered.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "knut.route.student-events",
                "knut.dlq.student-events",
                "knut.route.student-events.p0",
                "knut.route.student-events.p1",
                "knut.route.student-events.p2",
            ],
            "no retry ladder for an ordered route"
        );
        let sac = vec![
            ("x-queue-type", Argument::Text("quorum".into())),
            ("x-single-active-consumer", Argument::Bool(true)),
            ("x-delivery-limit", Argument::Int(DELIVERY_LIMIT)),
            ("x-dead-letter-exchange", Argument::Text(String::new())),
            (
                "x-dead-letter-routing-key",
                Argument::Text("knut.dlq.student-events".into()),
            ),
            (
                "x-dead-letter-strategy",
                Argument::Text("at-least-once".into()),
            ),
            ("x-overflow", Argument::Text("reject-publish".into())),
        ];
        for q in [ordered[0], ordered[2], ordered[3], ordered[4]] {
            assert_eq!(q.arguments, sac, "{}", q.name);
        }
        assert_eq!(
            ordered[1].arguments,
            [("x-queue-type", Argument::Text("quorum".into()))],
            "the dead-letter queue is an ordinary queue"
        );
        // The unordered route keeps its whole ladder and no single active consumer.
        let unordered = d
            .queues
            .iter()
            .filter(|q| q.name.contains("placement-change"))
            .count();
        assert_eq!(unordered, 2 + RUNGS_MS.len());
        // Partition queues are reached by name, never bound to an exchange.
        let partitions = &names[2..];
        assert!(
            d.bindings
                .iter()
                .all(|b| !partitions.contains(&b.queue.as_str()))
        );
        let json = d.to_json("/");
        let p1 = json["queues"]
            .as_array()
            .expect("queues")
            .iter()
            .find(|q| q["name"] == "knut.route.student-events.p1")
            .expect("p1 listed");
        assert_eq!(p1["arguments"]["x-single-active-consumer"], true);
        assert_eq!(
            ordered[2]
                .field_table()
                .inner()
                .get("x-single-active-consumer"),
            Some(&AMQPValue::Boolean(true))
        );
    }

    #[test]
    fn vhost_from_url() {
        assert_eq!(vhost_of("amqp://u:p@h:5672/%2f").as_deref(), Ok("/"));
        assert_eq!(vhost_of("amqp://h:5672").as_deref(), Ok("/"));
        assert_eq!(
            vhost_of("amqps://h/skola?heartbeat=10").as_deref(),
            Ok("skola")
        );
        let err = vhost_of("amqp://u:hemligt@h:notaport/x").expect_err("bad port");
        assert!(!err.contains("hemligt"), "{err}");
    }
}
