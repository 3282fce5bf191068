//! Relay benchmark (issue 3): what a Knutpunkt route costs beyond the broker hop.
//!
//! Runs, on the same RabbitMQ broker and with the same message, prefetch and concurrency:
//! - (a) a raw lapin relay: consume from queue A, publish to queue B with a confirm, ack;
//! - (b) a Knutpunkt route `queue → xml_to_json → validate → transform (jq) → publish`,
//!   loaded from a root written to a temporary folder and run by the same `RouteWorker`,
//!   broker, effects, store and journal that `System::start` wires (`System::start` itself
//!   refuses the route, since no route consumes `bench.out`: the bench's queue does), with
//!   the metrics recorder installed as `knut run` installs it.
//!
//! The message is a fictional ~7 KB OeP FlowInstance export in ISO-8859-1, persistent,
//! confirms on everywhere. A producer keeps at most `WINDOW` messages in flight (published
//! and not yet arrived at the final queue), so the latency (publish time in a header → time
//! of arrival at the final queue) measures the relay, not a backlog.
//!
//! **Placement** (see `relay/placement.rs`): by default the private RabbitMQ node runs on
//! one core and this whole process (producer, sink and relay a or b) on another, the same
//! for (a) and (b) — production runs RabbitMQ on machines of its own, so the route's cost
//! must not be taken from the broker's core. `KNUT_BENCH_PLACEMENT=shared` lets both share
//! every core instead.
//!
//! **Rounds**: after a warm-up of each relay, `KNUT_BENCH_ROUNDS` (default 3) timed runs per
//! relay, alternating (a) and (b) so that a change of load on the machine falls on both; the
//! medians are reported, with each run's figures and the CPU time the bench process and the
//! broker used per message (which side is the bottleneck).
//!
//! Run: `cargo bench --bench relay` (a private RabbitMQ node is started and stopped, as in
//! the tests; `KNUT_BENCH_AMQP_URL` names another broker instead — never the machine's
//! shared one — which is then not placed). `KNUT_BENCH_MESSAGES` (default 20000),
//! `KNUT_BENCH_WARMUP` (default 1000) and `KNUT_BENCH_ROUNDS` (default 3) set the counts.
//!
//! Figures: see the README, section Benchmark.

/// The allocator `knut` runs with (see src/main.rs), so (b) measures what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "relay/cpu.rs"]
mod cpu;
#[path = "relay/placement.rs"]
mod placement;
#[path = "../tests/support/rabbit.rs"]
mod rabbit;
#[path = "../tests/support/root.rs"]
mod root;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::{Mutex, Semaphore};

/// Header holding the publish time (microseconds since the epoch).
const SENT_AT: &str = "bench-sent-at";
/// Unacknowledged deliveries per consumer (knut's default).
const PREFETCH: u16 = 32;
/// Deliveries processed at the same time per relay (knut's default).
const CONCURRENCY: usize = 8;
/// Messages in flight between producer and final queue.
const WINDOW: usize = 64;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

async fn confirm_channel(conn: &Connection) -> Res<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Publish with `mandatory` and wait for the confirm; a nack or a return is an error.
async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Res<()> {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            props,
        )
        .await?
        .await?;
    match confirm {
        lapin::Confirmation::Ack(None) => Ok(()),
        other => Err(format!("publish not confirmed: {other:?}").into()),
    }
}

/// A fictional OeP FlowInstance export (the shape of a real one), ISO-8859-1, about 7 KB.
/// The people are invented; 201203152384 is a constructed personnummer with a valid Luhn
/// digit, fictional.
fn flow_instance(id: usize) -> Vec<u8> {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<FlowInstance>\n");
    x.push_str(&format!(
        "    <Header>\n        <Flow>\n            <FamilyID>261</FamilyID>\n            <Version>22</Version>\n            <FlowID>1234</FlowID>\n            <Name>\n                <![CDATA[Busskortsansökan för gymnasieelever]]>\n            </Name>\n        </Flow>\n        <FlowInstanceID>{id}</FlowInstanceID>\n        <Status>\n            <ID>123</ID>\n            <Name>\n                <![CDATA[Manuell handläggning]]>\n            </Name>\n        </Status>\n"
    ));
    for role in ["Poster", "Owner", "Editor"] {
        x.push_str(&format!(
            "        <{role}>\n            <Firstname>\n                <![CDATA[Åsa]]>\n            </Firstname>\n            <Lastname>\n                <![CDATA[Öhrnbjörk]]>\n            </Lastname>\n            <Email>\n                <![CDATA[asa.ohrnbjork@exempel.se]]>\n            </Email>\n            <ID>41501</ID>\n        </{role}>\n"
        ));
    }
    x.push_str("        <Posted>2026-01-15T18:01:24</Posted>\n        <Updated>2026-01-16T11:27:06</Updated>\n        <FirstSubmitted>2026-01-15T18:01:24</FirstSubmitted>\n        <LastSubmitted>2026-01-16T11:27:06</LastSubmitted>\n    </Header>\n    <Values>\n");
    let queries = [
        (
            "personOrtf",
            "Personnummer eller tf-nummer?",
            "Personnummer",
        ),
        ("Personnummer", "Elevens personnummer", "201203152384"),
        (
            "Besked",
            "Besked",
            "Eleven har rätt till elevresa med busskort till/från folkbokföringsadressen.",
        ),
        (
            "IntygarOmStuderarPaHeltid",
            "Jag/mitt barn studerar heltid",
            "JA",
        ),
        (
            "IntygarOmEjInackorderingstillagg",
            "Jag/mitt barn har inte inackorderingstillägg",
            "JA",
        ),
        ("Skola", "Skola", "Västermalms gymnasium"),
        ("Program", "Program", "Naturvetenskapsprogrammet"),
        ("Arskurs", "Årskurs", "2"),
        ("Adress", "Folkbokföringsadress", "Storgatan 12 B"),
        ("Postnummer", "Postnummer", "852 30"),
        ("Ort", "Ort", "Sundsvall"),
        ("Avstand", "Avstånd till skolan (km)", "7,4"),
        ("Hallplats", "Närmaste hållplats", "Sundsvalls busstation"),
        ("Kortnummer", "Kortnummer", "123456"),
        ("Vardnadshavare1", "Vårdnadshavare", "Björn Öhrnbjörk"),
        ("Telefon", "Telefon", "060-123 45 67"),
        ("Epost", "E-post", "bjorn.ohrnbjork@exempel.se"),
        (
            "Ovrigt",
            "Övrigt",
            "Eleven åker även till träning på tisdagar och torsdagar.",
        ),
    ];
    for (i, (tag, name, value)) in queries.iter().enumerate() {
        x.push_str(&format!(
            "        <{tag}>\n            <QueryID>{}</QueryID>\n            <Name>\n                <![CDATA[{name}]]>\n            </Name>\n            <Value>\n                <![CDATA[{value}]]>\n            </Value>\n        </{tag}>\n",
            58953 + i
        ));
    }
    x.push_str("        <BeslutetGallerForPerioden>\n            <QueryID>58990</QueryID>\n            <Name>\n                <![CDATA[Beslutet gäller för perioden]]>\n            </Name>\n            <StartDate>2026-01-16</StartDate>\n            <EndDate>2028-06-12</EndDate>\n        </BeslutetGallerForPerioden>\n");
    x.push_str("    </Values>\n</FlowInstance>\n");
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&x);
    bytes.into_owned()
}

const ROUTE: &str = r#"# Benchmark relay: an OeP FlowInstance export in, the canonical application out.
route: bench-relay
description: Benchmark relay (queue → xml_to_json → validate → transform → publish)
from:
  queue: { exchange: bench.in, keys: [flowinstance] }
consumer: { prefetch: PREFETCH, concurrency: CONCURRENCY }
steps:
  - xml_to_json: {}
  - validate: { schema: oep-flowinstance.v1 }
  - transform:
      jq: |
        .FlowInstance as $f
        | {
            flowInstanceId: $f.Header.FlowInstanceID,
            familyId: $f.Header.Flow.FamilyID,
            flowVersion: $f.Header.Flow.Version,
            flowName: $f.Header.Flow.Name,
            status: $f.Header.Status.Name,
            posted: $f.Header.Posted,
            poster: { firstname: $f.Header.Poster.Firstname, lastname: $f.Header.Poster.Lastname },
            values: (($f.Values // {}) | with_entries(.value |= (if type == "object" and has("Value") then .Value else . end)))
          }
  - publish: { exchange: bench.out, key: application.submitted }
"#;

fn write_root(dir: &Path) -> Res<()> {
    for sub in ["routes", "schemas", "adapters", "transforms"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let route = ROUTE
        .replace("CONCURRENCY", &CONCURRENCY.to_string())
        .replace("PREFETCH", &PREFETCH.to_string());
    std::fs::write(dir.join("routes/bench-relay.yaml"), route)?;
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/oep-flowinstance.v1.json");
    std::fs::copy(schema, dir.join("schemas/oep-flowinstance.v1.json"))?;
    Ok(())
}

/// What one run measured.
struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
    elapsed: Duration,
    /// CPU time of this process (producer, sink, relay) during the run.
    bench_cpu: Option<Duration>,
    /// CPU time of the broker node during the run (when it is ours).
    broker_cpu: Option<Duration>,
}

/// Drive `count` messages through a relay: publish to (`exchange`, `key`) keeping at most
/// `WINDOW` in flight, and take them from `sink` (a queue the relay's output reaches).
async fn drive(
    conn: &Connection,
    route: &Relay<'_>,
    body: &[u8],
    count: usize,
    broker_pid: Option<u32>,
) -> Res<Figures> {
    let Relay {
        exchange,
        key,
        sink,
        ..
    } = *route;
    let window = Arc::new(Semaphore::new(WINDOW));
    // Sink: record latencies, ack, release the window.
    let sink_ch = conn.create_channel().await?;
    sink_ch
        .basic_qos(WINDOW as u16 * 2, BasicQosOptions::default())
        .await?;
    let mut consumer = sink_ch
        .basic_consume(
            sink.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let sink_window = window.clone();
    let sink_task = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(count);
        while latencies.len() < count {
            let Some(d) = consumer.next().await else {
                return Err::<_, String>("the sink consumer ended".into());
            };
            let d = d.map_err(|e| e.to_string())?;
            let arrived = now_micros();
            let sent = d
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(SENT_AT).cloned())
                .and_then(|v| match v {
                    AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes())
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok()),
                    _ => None,
                })
                .ok_or("a message reached the sink without its send time")?;
            latencies.push(Duration::from_micros(arrived.saturating_sub(sent)));
            d.ack(BasicAckOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            sink_window.add_permits(1);
        }
        Ok(latencies)
    });
    // Producer: one confirm channel, up to WINDOW publishes awaiting their confirms.
    let pub_ch = Arc::new(confirm_channel(conn).await?);
    let started = Instant::now();
    let cpu_at_start = (
        cpu::used(std::process::id()),
        broker_pid.and_then(cpu::used),
    );
    let mut confirms = tokio::task::JoinSet::new();
    for _ in 0..count {
        window.acquire().await?.forget();
        let mut headers = FieldTable::default();
        headers.insert(
            SENT_AT.into(),
            AMQPValue::LongString(LongString::from(now_micros().to_string())),
        );
        let props = BasicProperties::default()
            .with_content_type("application/xml".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let ch = pub_ch.clone();
        let body = body.to_vec();
        let (exchange, key) = (exchange.to_string(), key.to_string());
        confirms.spawn(async move { publish(&ch, &exchange, &key, &body, props).await });
        while let Some(r) = confirms.try_join_next() {
            r??;
        }
    }
    while let Some(r) = confirms.join_next().await {
        r??;
    }
    let mut latencies = sink_task.await??;
    let elapsed = started.elapsed();
    let since = |start: Option<Duration>, now: Option<Duration>| Some(now?.saturating_sub(start?));
    let bench_cpu = since(cpu_at_start.0, cpu::used(std::process::id()));
    let broker_cpu = since(cpu_at_start.1, broker_pid.and_then(cpu::used));
    let _ = sink_ch.close(200, "done".into()).await;
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Figures {
        rate: count as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        elapsed,
        bench_cpu,
        broker_cpu,
    })
}

/// (a) The raw lapin relay: consume A, publish to B with a confirm, ack; no processing.
async fn raw_relay(conn: &Connection, a: &str, b: &str, stop: Arc<AtomicBool>) -> Res<()> {
    let consume_ch = conn.create_channel().await?;
    consume_ch
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut consumer = consume_ch
        .basic_consume(
            a.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let pub_ch = Arc::new(Mutex::new(confirm_channel(conn).await?));
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let b = b.to_string();
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let Some(Ok(d)) = consumer.next().await else {
                break;
            };
            let ch = pub_ch.clone();
            let b = b.clone();
            tokio::spawn(async move {
                let confirm = {
                    let ch = ch.lock().await;
                    ch.basic_publish(
                        "".into(),
                        b.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &d.data,
                        d.properties.clone(),
                    )
                    .await
                };
                let ok = match confirm {
                    Ok(c) => matches!(c.await, Ok(lapin::Confirmation::Ack(None))),
                    Err(_) => false,
                };
                if ok {
                    let _ = d.ack(BasicAckOptions::default()).await;
                } else {
                    eprintln!("raw relay: a publish was not confirmed");
                }
                drop(permit);
            });
        }
    });
    Ok(())
}

fn vm(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len()..].trim().to_string())
        })
        .unwrap_or_else(|| "n/a".into())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// "412 µs/msg (96 % of a core)" for a CPU time over a run.
fn cpu_text(cpu: Option<Duration>, f: &Figures, count: usize) -> String {
    match cpu {
        Some(c) => format!(
            "{:>4.0} µs/msg ({:>3.0} % of a core)",
            c.as_secs_f64() * 1e6 / count as f64,
            100.0 * c.as_secs_f64() / f.elapsed.as_secs_f64()
        ),
        None => "n/a".into(),
    }
}

fn show(name: &str, f: &Figures, count: usize) {
    println!(
        "{name:<40} {:>6.0} msg/s   p50 {:>6.2} ms   p99 {:>6.2} ms   cpu: bench {}, broker {}",
        f.rate,
        ms(f.p50),
        ms(f.p99),
        cpu_text(f.bench_cpu, f, count),
        cpu_text(f.broker_cpu, f, count),
    );
}

/// The median of some values (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Medians over the rounds of one relay.
struct Medians {
    rate: f64,
    p50: f64,
    p99: f64,
}

fn medians(runs: &[Figures]) -> Medians {
    Medians {
        rate: median(runs.iter().map(|f| f.rate).collect()),
        p50: median(runs.iter().map(|f| ms(f.p50)).collect()),
        p99: median(runs.iter().map(|f| ms(f.p99)).collect()),
    }
}

/// Where a relay takes its input and where its output arrives.
#[derive(Clone, Copy)]
struct Relay<'a> {
    name: &'a str,
    exchange: &'a str,
    key: &'a str,
    sink: &'a str,
}

/// The Knutpunkt side: the route worker as `System::start` wires it (same broker,
/// pipeline, effects, store and journal), with the metrics recorder installed as in
/// `knut run`. `System::start` itself is not used because its cross-reference check wants
/// a route consuming `bench.out`, and here the bench's own queue is the consumer.
struct Knut {
    shutdown: tokio_util::sync::CancellationToken,
    worker: tokio::task::JoinHandle<()>,
    journal: tokio::task::JoinHandle<()>,
    broker: knutpunkt::broker::SharedBroker,
    _root: tempfile::TempDir,
}

async fn start_knut(url: &str) -> Res<Knut> {
    let dir = tempfile::tempdir()?;
    write_root(dir.path())?;
    let config = knutpunkt::config::Config::from_toml_str(&format!(
        "[broker]\nurl = \"{url}\"\nprefetch = {PREFETCH}\n[http]\nbind = \"127.0.0.1:0\"\n[admin]\nbind = \"127.0.0.1:0\"\n[sandbox]\nenabled = false\n"
    ))?;
    knutpunkt::telemetry::metrics::install();
    let routes = knutpunkt::route::load::load_routes(dir.path()).map_err(|d| {
        d.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let resources = knutpunkt::resources::Resources::load(dir.path()).map_err(|p| p.join("\n"))?;
    let broker = knutpunkt::runtime::connect_broker(&config).await?;
    broker
        .declare(&knutpunkt::runtime::topology(&routes))
        .await?;
    let store = knutpunkt::store::Store::connect(&config.store_url(dir.path())).await?;
    let (journal, journal_task) = knutpunkt::runtime::journal::Journal::start(store.clone());
    let effects = Arc::new(knutpunkt::runtime::effects::LiveEffects::new(
        broker.clone(),
        resources.client.clone(),
        dir.path(),
    ));
    let route = &routes.first().ok_or("no route in the bench root")?.route;
    let pipeline = knutpunkt::step::Pipeline::build(&route.steps, "steps", &resources)
        .map_err(|e| e.to_string())?;
    let worker = knutpunkt::runtime::worker::RouteWorker {
        pipeline: Arc::new(pipeline),
        context: knutpunkt::step::Context {
            route: Arc::from(route.route.as_str()),
            // Each step journaled, as `knut run` has it.
            effects: Arc::new(knutpunkt::runtime::journal::JournaledEffects::new(
                effects,
                journal.clone(),
                Arc::from(route.route.as_str()),
            )),
            store,
        },
        retry: route.errors.retry.clone(),
        consumer: route.consumer.clone(),
        broker: broker.clone(),
        journal,
        bridge: false,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));
    Ok(Knut {
        shutdown,
        worker: worker_task,
        journal: journal_task,
        broker,
        _root: dir,
    })
}

async fn bench() -> Res<()> {
    let count = env_usize("KNUT_BENCH_MESSAGES", 20_000);
    let warmup = env_usize("KNUT_BENCH_WARMUP", 1_000);
    let rounds = env_usize("KNUT_BENCH_ROUNDS", 3).max(1);
    let placement = placement::Placement::from_env()?;
    let (url, pid_file) = match std::env::var("KNUT_BENCH_AMQP_URL") {
        Ok(u) => (u, None),
        Err(_) => {
            eprintln!(
                "starting a private RabbitMQ node (KNUT_BENCH_AMQP_URL names another broker)"
            );
            placement.before_broker_start()?;
            let url = rabbit::amqp_url().await;
            let node = rabbit::private_node()
                .await
                .ok_or("no private node although KNUT_BENCH_AMQP_URL is unset")?;
            (url, Some(node.dir.join("rabbitmq.pid")))
        }
    };
    let placed = placement.after_broker_start(pid_file.as_deref())?;
    let broker_pid = pid_file
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse::<u32>().ok());
    let body = flow_instance(4711);
    println!(
        "relay benchmark: {rounds} rounds of {count} messages per relay (medians reported), \
         {warmup} warm-up messages each first; {} byte ISO-8859-1 FlowInstance, persistent, \
         confirms on, quorum queues, prefetch {PREFETCH}, concurrency {CONCURRENCY}, window {WINDOW}",
        body.len()
    );
    println!("placement: {placed}");
    let tag = std::process::id();
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let admin = conn.create_channel().await?;

    // (a) raw lapin relay
    let (qa, qb) = (format!("bench.raw.a.{tag}"), format!("bench.raw.b.{tag}"));
    for q in [&qa, &qb] {
        admin
            .queue_declare(q.as_str().into(), durable(), quorum())
            .await?;
    }
    let relay_conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    raw_relay(&relay_conn, &qa, &qb, stop.clone()).await?;
    let raw = Relay {
        name: "(a) raw lapin relay",
        exchange: "",
        key: &qa,
        sink: &qb,
    };

    // (b) Knutpunkt route, its output bound to the sink queue
    let sink = format!("bench.knut.sink.{tag}");
    let knut_relay = Relay {
        name: "(b) knut route (xml→validate→jq)",
        exchange: "bench.in",
        key: "flowinstance",
        sink: &sink,
    };

    // Round 1 of (a) runs before knut is started, so the peak RSS after it is (a)'s alone.
    let mut runs: [Vec<Figures>; 2] = [Vec::new(), Vec::new()];
    drive(&conn, &raw, &body, warmup, broker_pid).await?;
    let first = drive(&conn, &raw, &body, count, broker_pid).await?;
    show(&format!("{} #1", raw.name), &first, count);
    runs[0].push(first);
    let rss_after_a = vm("VmHWM:");

    let knut = start_knut(&url).await?;
    admin
        .queue_declare(sink.as_str().into(), durable(), quorum())
        .await?;
    admin
        .queue_bind(
            sink.as_str().into(),
            "bench.out".into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    drive(&conn, &knut_relay, &body, warmup, broker_pid).await?;
    // Then (b), (a), (b), … alternately, so that a change of load on the machine during the
    // benchmark falls on both sides alike.
    for round in 1..=rounds {
        let order: &[usize] = if round == 1 { &[1] } else { &[0, 1] };
        for &side in order {
            let relay = [&raw, &knut_relay][side];
            let f = drive(&conn, relay, &body, count, broker_pid).await?;
            show(&format!("{} #{round}", relay.name), &f, count);
            runs[side].push(f);
        }
    }
    let (a, b) = (medians(&runs[0]), medians(&runs[1]));
    println!("medians of {rounds} rounds:");
    for (name, m) in [(raw.name, &a), (knut_relay.name, &b)] {
        println!(
            "{name:<40} {:>6.0} msg/s   p50 {:>6.2} ms   p99 {:>6.2} ms",
            m.rate, m.p50, m.p99
        );
    }
    println!("ratio b/a (medians): {:.2}", b.rate / a.rate);
    println!(
        "peak RSS (VmHWM, whole bench process incl. producer and sink): {} after (a), {} after (b)",
        rss_after_a,
        vm("VmHWM:")
    );
    knut.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), knut.worker).await;
    drop(knut.broker);
    knut.journal.abort();
    stop.store(true, Ordering::Relaxed);
    let _ = relay_conn.close(200, "done".into()).await;
    for q in [&qa, &qb, &sink] {
        let _ = admin
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rt.block_on(bench()) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
