//! STUB (replaced by the ops branch).
#![allow(missing_docs, unused_variables)]
use std::time::Duration;
pub fn message_in(route: &str) {}
pub fn message_out(route: &str) {}
pub fn message_failed(route: &str) {}
pub fn message_retried(route: &str) {}
pub fn message_dead_lettered(route: &str) {}
pub fn step_duration(route: &str, step: &str, d: Duration) {}
pub fn queue_depth(queue: &str, n: u64) {}
pub use metrics_exporter_prometheus::PrometheusHandle;
pub fn install() -> PrometheusHandle {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle()
}
