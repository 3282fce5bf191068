//! The sandbox served on a free port, with a client for the repository's own adapters
//! pointing at it (`tests/adapters.rs`, `tests/contracts.rs`).

use std::collections::BTreeMap;

use knut_sandbox::Sandbox;
use knutpunkt::adapter::client::AdapterClient;
use knutpunkt::adapter::{Adapter, load_adapters};
use knutpunkt::core::effects::AdapterResponse;
use knutpunkt::core::envelope::Envelope;
use serde_json::Value;

use super::root::repo;

/// The sandbox on a free port and a client for the repository's adapters pointing at it.
pub struct World {
    pub sandbox: Sandbox,
    pub base: String,
    pub client: AdapterClient,
    _stop: tokio_util::sync::CancellationToken,
}

pub async fn world() -> World {
    let sandbox = Sandbox::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/sandbox", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(sandbox.clone().serve(listener, stop.clone()));
    let templates = knutpunkt::template::Templates::load(&repo().join("transforms"))
        .expect("the shipped templates load");
    let client = AdapterClient::with_templates(&adapters(&base), std::sync::Arc::new(templates))
        .expect("the shipped adapters compile");
    World {
        sandbox,
        base,
        client,
        _stop: stop,
    }
}

/// The repository's adapters, their sandbox base URLs moved to `base`.
pub fn adapters(base: &str) -> BTreeMap<String, Adapter> {
    let mut all = load_adapters(&repo(), None).expect("the shipped adapters load");
    for a in all.values_mut() {
        let default = format!("http://127.0.0.1:8090/sandbox/{}", a.spec.adapter);
        assert_eq!(
            a.spec.base_url, default,
            "{}: a shipped adapter points at its simulation",
            a.spec.adapter
        );
        a.base_url = format!("{base}/{}", a.spec.adapter);
    }
    all
}

impl World {
    pub async fn call(&self, adapter: &str, op: &str, body: Value) -> AdapterResponse {
        self.client
            .call(adapter, op, &Envelope::json(body))
            .await
            .unwrap_or_else(|e| panic!("{adapter}.{op}: {}", e.message))
    }

    /// The last call `system` received.
    pub fn last(&self, system: &str) -> knut_sandbox::control::Call {
        self.sandbox
            .controls(system)
            .expect("a system")
            .calls()
            .pop()
            .expect("a call was received")
    }
}
