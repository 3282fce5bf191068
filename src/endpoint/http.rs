//! STUB (replaced by the endpoint branch).
#![allow(missing_docs, unused_variables)]
use super::Ingress;
use crate::broker::{BrokerError, SharedBroker};
use crate::route::model::HttpFrom;
use crate::schema::SchemaRegistry;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
pub struct HttpRoute {
    pub route: String,
    pub spec: HttpFrom,
    pub replies: bool,
}
pub struct HttpSettings {
    pub max_body: usize,
    pub auth: BTreeMap<String, AuthCheck>,
    pub reply_timeout: Duration,
}
pub enum AuthCheck {
    ApiKey { header: String, key: String },
}
pub struct Replies;
impl Replies {
    pub async fn start(
        broker: SharedBroker,
        shutdown: CancellationToken,
    ) -> Result<Replies, BrokerError> {
        Ok(Replies)
    }
    pub fn queue(&self) -> &str {
        ""
    }
}
pub fn router(
    routes: Vec<HttpRoute>,
    settings: HttpSettings,
    schemas: Arc<SchemaRegistry>,
    ingress: Ingress,
    replies: Option<Replies>,
    openapi: serde_json::Value,
) -> axum::Router {
    axum::Router::new()
}
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
