//! Endpoints: where messages enter Knutpunkt, one module per kind.
//!
//! Every endpoint hands a message to the broker through [`Ingress::accept`]: the message is
//! accepted only once the broker has confirmed it (published to `knut.ingress` with the
//! route id as routing key). `poll` calls an adapter operation on a schedule and hands on
//! each new item once. `queue` routes need no endpoint of their own: their work queue
//! is bound to their exchange by the topology.

pub mod file;
pub mod http;
pub mod jwt;
pub mod openapi;
pub mod poll;
pub mod timer;

use crate::broker::{BrokerError, INGRESS_EXCHANGE, SharedBroker};
use crate::core::envelope::Envelope;

/// The door into the broker.
#[derive(Clone)]
pub struct Ingress {
    broker: SharedBroker,
}

impl Ingress {
    /// An ingress publishing to `broker`.
    pub fn new(broker: SharedBroker) -> Self {
        Ingress { broker }
    }

    /// Accept a message for `route`: returns once the broker has confirmed it.
    pub async fn accept(&self, route: &str, envelope: &Envelope) -> Result<(), BrokerError> {
        self.broker
            .publish(INGRESS_EXCHANGE, route, envelope)
            .await?;
        tracing::debug!(route, message_id = %envelope.id, correlation_id = %envelope.correlation_id, "accepted");
        Ok(())
    }

    /// The broker behind this ingress.
    pub fn broker(&self) -> &SharedBroker {
        &self.broker
    }
}
