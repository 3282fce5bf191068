//! Per-key ordering (`ordered_by`) in a running system on the embedded broker; the same
//! scenario runs on RabbitMQ in `amqp_conformance.rs`.

#[path = "support/ordered.rs"]
mod ordered;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_students_thirty_events_each_arrive_in_order_on_the_embedded_broker() {
    ordered::one_instance("", "embedded").await;
}
