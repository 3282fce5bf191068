//! STUB (replaced by the ops branch).
#![allow(missing_docs, unused_variables)]
pub mod metrics;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
pub struct AdminState {
    pub ready: Arc<AtomicBool>,
    pub broker_connected: Arc<dyn Fn() -> bool + Send + Sync>,
    pub routes: Arc<RwLock<Vec<RouteInfo>>>,
    pub metrics: metrics::PrometheusHandle,
}
pub struct RouteInfo {
    pub id: String,
    pub from: String,
    pub steps: Vec<String>,
    pub queue: String,
    pub dead_letter_queue: String,
}
pub fn router(state: AdminState) -> axum::Router {
    axum::Router::new()
}
