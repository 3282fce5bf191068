//! The school-platform flows (use cases 1–7 of the RFI) end to end: for each flow, `knut
//! run` with the shipped routes and its own sandbox, on the embedded broker and on
//! RabbitMQ; the test acts as the people in the flow and asserts what every system
//! received. People are the sandbox's fictional ones (`crates/knut-sandbox/src/seed.rs`).

#[path = "support/flows.rs"]
mod flows;
#[path = "support/knut.rs"]
mod knut;
#[path = "support/rabbit.rs"]
mod rabbit;
#[path = "support/root.rs"]
mod root;

#[path = "flows/attendance.rs"]
mod attendance;
#[path = "flows/followup.rs"]
mod followup;
#[path = "flows/grades.rs"]
mod grades;
#[path = "flows/ike.rs"]
mod ike;
#[path = "flows/leave.rs"]
mod leave;
#[path = "flows/placement.rs"]
mod placement;
#[path = "flows/school_choice.rs"]
mod school_choice;
#[path = "flows/skolresekollen.rs"]
mod skolresekollen;
#[path = "flows/skolresekollen_scenarios.rs"]
mod skolresekollen_scenarios;

/// `mod $flow { embedded, rabbitmq }`: the scenario `$flow::run(On)` on both brokers.
macro_rules! on_both_brokers {
    ($($flow:ident),* $(,)?) => {
        $(
            mod $flow {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    crate::$flow::run(crate::flows::On::Embedded).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rabbitmq() {
                    crate::$flow::run(crate::flows::On::RabbitMq).await;
                }
            }
        )*
    };
}

mod e2e {
    on_both_brokers!(
        placement,
        followup,
        leave,
        attendance,
        grades,
        school_choice,
        ike,
        skolresekollen,
        skolresekollen_scenarios
    );
}
