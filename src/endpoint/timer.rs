//! STUB (replaced by the endpoint branch).
#![allow(missing_docs, unused_variables)]
pub async fn run(
    route: String,
    spec: crate::route::model::TimerFrom,
    ingress: super::Ingress,
    shutdown: tokio_util::sync::CancellationToken,
) {
}
