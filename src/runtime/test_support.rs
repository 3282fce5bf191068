//! Test support for the route workers (plain and ordered): a scripted downstream system,
//! and a worker wired to it on an embedded broker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::journal::Journal;
use super::worker::RouteWorker;
use crate::broker::embedded::EmbeddedBroker;
use crate::broker::{Broker, Consumer, Delivery, INGRESS_EXCHANGE, RouteQueue, Topology};
use crate::core::effects::{AdapterResponse, Effects};
use crate::core::envelope::{Body, Envelope};
use crate::core::error::StepError;
use crate::resources::Resources;
use crate::route::model::{ConsumerSpec, RetryPolicy, StepSpec};
use crate::step::to::ToSpec;
use crate::step::{Context, Pipeline};
use crate::store::Store;

/// How the downstream answers a call: given the message and the call's number (from 1),
/// success or the failure to return.
type Script = Box<dyn Fn(&Envelope, usize) -> Result<(), StepError> + Send + Sync>;

/// A downstream system that records every call and answers as its script says, after a
/// pause; publishes, files and replies succeed.
pub(crate) struct Downstream {
    script: Script,
    pause: Duration,
    calls: Mutex<Vec<(Instant, Envelope)>>,
    delivered: Mutex<Vec<Envelope>>,
}

impl Downstream {
    /// Answers as `script` says, each call after `pause`.
    pub(crate) fn scripted(
        pause: Duration,
        script: impl Fn(&Envelope, usize) -> Result<(), StepError> + Send + Sync + 'static,
    ) -> Arc<Downstream> {
        Arc::new(Downstream {
            script: Box::new(script),
            pause,
            calls: Mutex::new(Vec::new()),
            delivered: Mutex::new(Vec::new()),
        })
    }

    /// Fails the first `failures` calls with `fail`, then succeeds.
    pub(crate) fn flaky(failures: usize, fail: StepError) -> Arc<Downstream> {
        Downstream::scripted(Duration::ZERO, move |_, n| {
            if n <= failures {
                Err(fail.clone())
            } else {
                Ok(())
            }
        })
    }

    /// The number of calls so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls.lock().expect("lock").len()
    }

    /// When each call came.
    pub(crate) fn call_times(&self) -> Vec<Instant> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .map(|c| c.0)
            .collect()
    }

    /// The messages of every call, in order.
    pub(crate) fn called_with(&self) -> Vec<Envelope> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .map(|c| c.1.clone())
            .collect()
    }

    /// The messages of the calls that succeeded, in order.
    pub(crate) fn delivered(&self) -> Vec<Envelope> {
        self.delivered.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Effects for Downstream {
    async fn publish(&self, _: &str, _: &str, _: &Envelope) -> Result<(), StepError> {
        Ok(())
    }

    async fn call(&self, _: &str, _: &str, e: &Envelope) -> Result<AdapterResponse, StepError> {
        let n = {
            let mut calls = self.calls.lock().expect("lock");
            calls.push((Instant::now(), e.clone()));
            calls.len()
        };
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        (self.script)(e, n)?;
        self.delivered.lock().expect("lock").push(e.clone());
        Ok(AdapterResponse {
            status: 200,
            content_type: "application/json".into(),
            body: Body::default(),
        })
    }

    async fn write_file(&self, _: &str, _: &str, _: Bytes) -> Result<(), StepError> {
        Ok(())
    }

    async fn reply(&self, _: &str, _: &Envelope) -> Result<(), StepError> {
        Ok(())
    }
}

/// The step `to: {adapter: downstream, operation: deliver}`.
pub(crate) fn to_downstream() -> StepSpec {
    StepSpec::To(ToSpec {
        adapter: Some("downstream".into()),
        operation: Some("deliver".into()),
        with_input: None,
        file: None,
    })
}

/// An embedded broker with `route` declared (`partitions` for an ordered route), and a
/// worker of the route running `steps`, whose adapter calls go to `downstream`.
pub(crate) async fn worker_on_embedded(
    route: &str,
    partitions: Option<u16>,
    steps: Vec<StepSpec>,
    downstream: Arc<Downstream>,
    retry: RetryPolicy,
) -> (Arc<EmbeddedBroker>, RouteWorker) {
    let dir = tempfile::tempdir().expect("temp dir");
    let res = Resources::load(dir.path()).expect("resources");
    let pipeline = Arc::new(Pipeline::build(&steps, "steps", &res).expect("pipeline"));
    let broker = Arc::new(EmbeddedBroker::new());
    broker
        .declare(&Topology {
            exchanges: vec![],
            outlets: Vec::new(),
            routes: vec![RouteQueue {
                route: route.into(),
                bindings: vec![],
                partitions,
            }],
        })
        .await
        .expect("declare");
    let worker = RouteWorker {
        pipeline,
        context: Context {
            route: Arc::from(route),
            effects: downstream,
            store: Store::memory().await.expect("store"),
        },
        retry,
        consumer: ConsumerSpec::default(),
        broker: broker.clone(),
        journal: Journal::disabled(),
        bridge: false,
    };
    (broker, worker)
}

/// Hand a message to `route` through the ingress exchange.
pub(crate) async fn send(broker: &EmbeddedBroker, route: &str, m: &Envelope) {
    broker
        .publish(INGRESS_EXCHANGE, route, m)
        .await
        .expect("published");
}

/// The next delivery of `consumer`, within 10 s.
pub(crate) async fn next_within(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the consumer is open")
}
