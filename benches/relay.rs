//! Relay benchmark (issues 3 and 15): what a Knutpunkt route costs beyond the broker hop.
//!
//! Runs, on the same RabbitMQ broker and with the same message, prefetch and concurrency:
//! - (a) a raw lapin relay: consume from queue A, publish to queue B with a confirm, ack;
//! - (b) a Knutpunkt route `queue → xml_to_json → validate → transform (jq) → publish`,
//!   loaded from a root written to a temporary folder and run by the same `RouteWorker`,
//!   broker, effects, store and journal that `System::start` wires (`System::start` itself
//!   refuses the route, since no route consumes `bench.out`: the bench's queue does), with
//!   the log and the metrics recorder installed as `knut run` installs them;
//! - (a′), with `KNUT_BENCH_TOPOLOGY=1`: the raw relay on the route's topology (topic
//!   exchanges in and out, a work queue's arguments), to tell that topology's cost to the
//!   broker from the route's own.
//!
//! Each relay runs in a process of its own (this binary again, `KNUT_BENCH_CHILD`), built
//! as `knut run` builds its runtime, so that its CPU time and peak resident set are its
//! own; this process is the driver (producer and sink).
//!
//! The message is a fictional 6.5 KB OeP FlowInstance export in ISO-8859-1, persistent,
//! confirms on everywhere. A producer keeps at most `WINDOW` messages in flight (published
//! and not yet arrived at the final queue), so the latency (publish time in a header → time
//! of arrival at the final queue) measures the relay, not a backlog.
//!
//! **Placement** (see `relay/placement.rs`): by default the private RabbitMQ node runs on
//! one core and the driver and the relay processes on another, the same for (a) and (b) —
//! production runs RabbitMQ on machines of its own, so the route's cost must not be taken
//! from the broker's core. `KNUT_BENCH_PLACEMENT=shared` lets all share every core.
//!
//! **Rounds**: after a warm-up of each relay, `KNUT_BENCH_ROUNDS` (default 3) timed runs per
//! relay, alternating (a) and (b) so that a change of load on the machine falls on both; the
//! medians are reported, with each run's figures: the CPU time the relay process, the broker
//! and the driver used per message. Last, the targets of issue 15, each with its verdict.
//!
//! `KNUT_BENCH_RAW_SPIN_US` makes the raw relay spin that long per message: a raw relay as
//! slow as the route, to see what the broker spends per message at the route's rate.
//! `KNUT_BENCH_JOURNAL=DIR` keeps the route's journal in `DIR/knut.db` (SQLite, every round),
//! for the time each step took (`duration_us` by `step`).
//!
//! Run: `cargo bench --bench relay` (a private RabbitMQ node is started and stopped, as in
//! the tests; `KNUT_BENCH_AMQP_URL` names another broker instead — never the machine's
//! shared one — which is then not placed). `KNUT_BENCH_MESSAGES` (default 20000),
//! `KNUT_BENCH_WARMUP` (default 1000) and `KNUT_BENCH_ROUNDS` (default 3) set the counts.
//!
//! Figures: see docs/benchmark.md.

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
/// How long the driver waits for a relay's next message (or for it to start) before it
/// gives up: a relay that died or hangs ends the bench with an error instead of hanging it.
const STALL: Duration = Duration::from_secs(60);

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

/// A fictional OeP FlowInstance export (the shape of a real one), ISO-8859-1, 6.5 KB.
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
    /// CPU time of the relay's own process (raw relay or route) during the run.
    relay_cpu: Option<Duration>,
    /// CPU time of this process (producer and sink) during the run.
    driver_cpu: Option<Duration>,
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
    relay_pid: u32,
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
            let next = tokio::time::timeout(STALL, consumer.next())
                .await
                .map_err(|_| {
                    format!(
                        "no message reached the sink for {} s: the relay stopped",
                        STALL.as_secs()
                    )
                })?;
            let Some(d) = next else {
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
        cpu::used(relay_pid),
        cpu::used(std::process::id()),
        broker_pid.and_then(cpu::used),
    );
    let mut confirms = tokio::task::JoinSet::new();
    for _ in 0..count {
        tokio::time::timeout(STALL, window.acquire())
            .await
            .map_err(|_| {
                format!(
                    "no room in the window for {} s: the relay stopped",
                    STALL.as_secs()
                )
            })??
            .forget();
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
    let relay_cpu = since(cpu_at_start.0, cpu::used(relay_pid));
    let driver_cpu = since(cpu_at_start.1, cpu::used(std::process::id()));
    let broker_cpu = since(cpu_at_start.2, broker_pid.and_then(cpu::used));
    let _ = sink_ch.close(200, "done".into()).await;
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Figures {
        rate: count as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        elapsed,
        relay_cpu,
        driver_cpu,
        broker_cpu,
    })
}

/// (a) The raw lapin relay: consume queue `a`, publish to `exchange` with `key` with a
/// confirm, ack; no processing.
async fn raw_relay(
    conn: &Connection,
    a: &str,
    (exchange, key): (&str, &str),
    stop: Arc<AtomicBool>,
) -> Res<()> {
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
    let (exchange, key) = (exchange.to_string(), key.to_string());
    let spin = Duration::from_micros(env_usize("KNUT_BENCH_RAW_SPIN_US", 0) as u64);
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let Some(Ok(d)) = consumer.next().await else {
                break;
            };
            let ch = pub_ch.clone();
            let (exchange, key) = (exchange.clone(), key.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                while t.elapsed() < spin {
                    std::hint::spin_loop();
                }
                let confirm = {
                    let ch = ch.lock().await;
                    ch.basic_publish(
                        exchange.as_str().into(),
                        key.as_str().into(),
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
        "{name:<36} {:>6.0} msg/s   p50 {:>6.2} ms   p99 {:>6.2} ms   cpu: relay {}, broker {}, driver {}",
        f.rate,
        ms(f.p50),
        ms(f.p99),
        cpu_text(f.relay_cpu, f, count),
        cpu_text(f.broker_cpu, f, count),
        cpu_text(f.driver_cpu, f, count),
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

/// Medians over the rounds of one relay (CPU in µs per message; NaN when not known).
struct Medians {
    rate: f64,
    p50: f64,
    p99: f64,
    relay_cpu: f64,
    broker_cpu: f64,
}

fn medians(runs: &[Figures], count: usize) -> Medians {
    let per_message =
        |c: Option<Duration>| c.map_or(f64::NAN, |c| c.as_secs_f64() * 1e6 / count as f64);
    Medians {
        rate: median(runs.iter().map(|f| f.rate).collect()),
        p50: median(runs.iter().map(|f| ms(f.p50)).collect()),
        p99: median(runs.iter().map(|f| ms(f.p99)).collect()),
        relay_cpu: median(runs.iter().map(|f| per_message(f.relay_cpu)).collect()),
        broker_cpu: median(runs.iter().map(|f| per_message(f.broker_cpu)).collect()),
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
    // `KNUT_BENCH_JOURNAL=DIR` keeps the route's journal (SQLite) in DIR, for a look at the
    // steps' durations afterwards.
    let store = match std::env::var("KNUT_BENCH_JOURNAL") {
        Ok(dir) => format!("[store]\nurl = \"sqlite://{dir}/knut.db?mode=rwc\"\n"),
        Err(_) => String::new(),
    };
    let config = knutpunkt::config::Config::from_toml_str(&format!(
        "[broker]\nurl = \"{url}\"\nprefetch = {PREFETCH}\n[http]\nbind = \"127.0.0.1:0\"\n[admin]\nbind = \"127.0.0.1:0\"\n[sandbox]\nenabled = false\n{store}"
    ))?;
    // The log and the metrics recorder as `knut run` installs them.
    knutpunkt::telemetry::init(config.log.format, &config.log.level, &config.telemetry)?;
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

/// What the child process runs (`KNUT_BENCH_CHILD`), on the broker `KNUT_BENCH_CHILD_URL`.
const CHILD: &str = "KNUT_BENCH_CHILD";
const CHILD_URL: &str = "KNUT_BENCH_CHILD_URL";
/// The raw relay's input queue, output exchange and routing key: `queue,exchange,key`.
const CHILD_QUEUES: &str = "KNUT_BENCH_CHILD_QUEUES";

/// A relay in a process of its own (this binary again, in child mode), so that its CPU time
/// and peak resident set are its own, apart from the producer's and the sink's. It runs
/// until its stdin is closed.
struct RelayProcess {
    child: std::process::Child,
    pid: u32,
}

impl RelayProcess {
    /// Start `role` (`raw` or `route`) and wait until it consumes.
    fn start(role: &str, url: &str, queues: &str) -> Res<RelayProcess> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD, role)
            .env(CHILD_URL, url)
            .env(CHILD_QUEUES, queues)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or("the relay process has no stdout")?;
        // Its first line, read on a thread of its own so that a child that never answers
        // is given up on after STALL.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line);
            let _ = tx.send(read);
        });
        let line = match rx.recv_timeout(STALL) {
            Ok(read) => read?,
            Err(_) => format!("no answer within {} s", STALL.as_secs()),
        };
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the {role} relay process did not start ({})", line.trim()).into());
        }
        Ok(RelayProcess { child, pid })
    }

    /// Peak resident set size so far, in MB (10^6 bytes; `/proc` counts in KiB).
    fn peak_rss_mb(&self) -> Option<f64> {
        cpu::peak_rss_kb(self.pid).map(|kib| kib as f64 * 1024.0 / 1e6)
    }

    /// Close its stdin and wait for it to end (killed after 15 s).
    fn stop(mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Child mode: run one relay until stdin closes.
async fn child(role: &str) -> Res<()> {
    let url = std::env::var(CHILD_URL)?;
    let ready = || {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    };
    let until_stdin_closes = || {
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
    };
    match role {
        "raw" => {
            let queues = std::env::var(CHILD_QUEUES)?;
            let [a, exchange, key] = queues.split(',').collect::<Vec<_>>()[..] else {
                return Err("KNUT_BENCH_CHILD_QUEUES is queue,exchange,key".into());
            };
            let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
            let stop = Arc::new(AtomicBool::new(false));
            raw_relay(&conn, a, (exchange, key), stop.clone()).await?;
            ready();
            until_stdin_closes().await?;
            stop.store(true, Ordering::Relaxed);
            let _ = conn.close(200, "done".into()).await;
        }
        "route" => {
            let knut = start_knut(&url).await?;
            ready();
            until_stdin_closes().await?;
            knut.shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), knut.worker).await;
            drop(knut.broker);
            // The last rows' gather.
            tokio::time::sleep(Duration::from_millis(100)).await;
            knut.journal.abort();
        }
        other => return Err(format!("unknown relay `{other}`").into()),
    }
    Ok(())
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
    let raw_process = RelayProcess::start("raw", &url, &format!("{qa},,{qb}"))?;
    let raw = Relay {
        name: "(a) raw lapin relay",
        exchange: "",
        key: &qa,
        sink: &qb,
    };

    // (b) Knutpunkt route, its output bound to the sink queue
    let route_process = RelayProcess::start("route", &url, "")?;
    let sink = format!("bench.knut.sink.{tag}");
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
    let knut_relay = Relay {
        name: "(b) knut route (xml→validate→jq)",
        exchange: "bench.in",
        key: "flowinstance",
        sink: &sink,
    };

    // (a′), with KNUT_BENCH_TOPOLOGY=1: the raw relay on the route's topology — in through
    // a topic exchange to a queue with a work queue's arguments, out through a topic
    // exchange — to tell the broker's cost of that topology from the route's own.
    let topology = std::env::var("KNUT_BENCH_TOPOLOGY").is_ok_and(|v| v == "1");
    let (qa2, qb2) = (format!("bench.raw2.a.{tag}"), format!("bench.raw2.b.{tag}"));
    let mut relays = vec![(raw, raw_process.pid), (knut_relay, route_process.pid)];
    let mut topology_process = None;
    if topology {
        for ex in ["bench.raw.in", "bench.raw.out"] {
            admin
                .exchange_declare(
                    ex.into(),
                    lapin::ExchangeKind::Topic,
                    lapin::options::ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
        }
        admin
            .queue_declare(format!("{qa2}.dlq").as_str().into(), durable(), quorum())
            .await?;
        // The arguments of a route's work queue (src/broker/amqp/definitions.rs).
        let mut args = quorum();
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(20));
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(format!("{qa2}.dlq").as_str().into()),
        );
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        admin
            .queue_declare(qa2.as_str().into(), durable(), args)
            .await?;
        admin
            .queue_declare(qb2.as_str().into(), durable(), quorum())
            .await?;
        for (q, ex, key) in [
            (&qa2, "bench.raw.in", "flowinstance"),
            (&qb2, "bench.raw.out", "#"),
        ] {
            admin
                .queue_bind(
                    q.as_str().into(),
                    ex.into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        let p = RelayProcess::start(
            "raw",
            &url,
            &format!("{qa2},bench.raw.out,application.submitted"),
        )?;
        relays.push((
            Relay {
                name: "(a′) raw relay, route's topology",
                exchange: "bench.raw.in",
                key: "flowinstance",
                sink: &qb2,
            },
            p.pid,
        ));
        topology_process = Some(p);
    }
    for (relay, pid) in &relays {
        drive(&conn, relay, &body, warmup, broker_pid, *pid).await?;
    }
    // (a), (b), (a), (b), … alternately, so that a change of load on the machine during the
    // benchmark falls on both sides alike.
    let mut runs: Vec<Vec<Figures>> = relays.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for (side, (relay, pid)) in relays.iter().enumerate() {
            let f = drive(&conn, relay, &body, count, broker_pid, *pid).await?;
            show(&format!("{} #{round}", relay.name), &f, count);
            runs[side].push(f);
        }
    }
    if relays.len() > 2 {
        let m = medians(&runs[2], count);
        println!(
            "{:<36} {:>6.0} msg/s   p50 {:>6.2} ms   p99 {:>6.2} ms   cpu per message: relay {:>4.0} µs, broker {:>4.0} µs (median)",
            relays[2].0.name, m.rate, m.p50, m.p99, m.relay_cpu, m.broker_cpu
        );
    }
    let (a, b) = (medians(&runs[0], count), medians(&runs[1], count));
    println!("medians of {rounds} rounds:");
    for (name, m) in [(raw.name, &a), (knut_relay.name, &b)] {
        println!(
            "{name:<36} {:>6.0} msg/s   p50 {:>6.2} ms   p99 {:>6.2} ms   cpu per message: relay {:>4.0} µs, broker {:>4.0} µs",
            m.rate, m.p50, m.p99, m.relay_cpu, m.broker_cpu
        );
    }
    // Little's law: a relay works on CONCURRENCY deliveries at a time (the window keeps it
    // busy), so each spends CONCURRENCY / rate in it, from delivery to ack. The route keeps
    // up with a fraction r of the raw relay only if it adds no more than (1/r − 1) of the
    // raw relay's time.
    let in_relay = |m: &Medians| CONCURRENCY as f64 / m.rate * 1000.0;
    println!(
        "time in the relay (concurrency {CONCURRENCY} / rate): raw {:.2} ms, route {:.2} ms; \
         at 0.9 the route could add {:.2} ms",
        in_relay(&a),
        in_relay(&b),
        in_relay(&a) * (1.0 / 0.9 - 1.0)
    );
    let rss = route_process.peak_rss_mb();
    let raw_rss = raw_process.peak_rss_mb();
    let mb = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1} MB"));
    println!(
        "peak RSS (VmHWM): route process {}, raw relay process {}",
        mb(rss),
        mb(raw_rss)
    );
    let pinned = !matches!(placement, placement::Placement::Shared);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let ratio = b.rate / a.rate;
    let throughput_target = if pinned { 0.9 } else { 0.6 };
    let label = match (pinned, broker_pid.is_some()) {
        (false, _) => "shared",
        (true, true) => "pinned",
        // Another broker (KNUT_BENCH_AMQP_URL) is not placed: only the relays are pinned.
        (true, false) => "pinned relays, the broker not placed: indicative only",
    };
    println!("targets ({label}):");
    println!(
        "  throughput route/raw        {ratio:>6.2}   ≥ {throughput_target:.2}   {}",
        verdict(ratio >= throughput_target)
    );
    let p99 = b.p99 / a.p99;
    let broker = b.broker_cpu / a.broker_cpu;
    if pinned {
        println!(
            "  p99 route/raw               {p99:>6.2}   ≤ 1.50   {}",
            verdict(p99 <= 1.5)
        );
        println!(
            "  broker CPU/msg route/raw    {broker:>6.2}   ≤ 1.10   {}",
            if broker.is_nan() {
                "n/a (not our broker)"
            } else {
                verdict(broker <= 1.1)
            }
        );
    } else {
        println!("  p99 route/raw               {p99:>6.2}   (target pinned only)");
        println!("  broker CPU/msg route/raw    {broker:>6.2}   (target pinned only)");
    }
    println!(
        "  peak RSS of the route       {:>6}   ≤ 64 MB  {}",
        rss.map_or("n/a".into(), |v| format!("{v:.1}")),
        rss.map_or("n/a", |v| verdict(v <= 64.0))
    );
    raw_process.stop();
    route_process.stop();
    if let Some(p) = topology_process {
        p.stop();
    }
    for q in [&qa, &qb, &sink, &qa2, &qb2, &format!("{qa2}.dlq")] {
        let _ = admin
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

fn main() {
    let role = std::env::var(CHILD).ok();
    // A relay process builds its runtime as `knut run` does (a worker per core it may use:
    // one when pinned); the driver takes two workers.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if role.is_none() {
        builder.worker_threads(2);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            std::process::exit(2);
        }
    };
    let result = match &role {
        Some(role) => rt.block_on(child(role)),
        None => rt.block_on(bench()),
    };
    if let Err(e) = result {
        match role {
            Some(role) => eprintln!("{role} relay process failed: {e}"),
            None => eprintln!("benchmark failed: {e}"),
        }
        std::process::exit(1);
    }
}
