//! The sandbox: working simulations of the municipality's systems, for development, tests
//! and demos. It runs inside `knut run` when `sandbox.enabled` (the development default;
//! off in the production example) on `sandbox.bind` (127.0.0.1:8090), each system under
//! `/sandbox/<system>/…`, and the shipped adapters point at it by default.
//!
//! Every system is one module here with its own routes; they share one [`World`], seeded
//! with a fictional municipality ([`seed`]), so the systems agree with each other and what
//! a route writes can be read back. Every system is inspectable and breakable the same way
//! ([`control`]): `GET|DELETE /sandbox/<system>/_inbox`, `POST|DELETE
//! /sandbox/<system>/_fault`. `GET /sandbox` lists the systems and the scenario sets
//! ([`scenarios`]: `POST /sandbox/_scenarios/skolresekollen` loads Skolresekollen's cases on
//! top of the seed).
//!
//! The sandbox is a development tool: its state lives in memory and starts from the seed
//! on every start.
//!
//! This crate depends on nothing of knutpunkt (knutpunkt depends on it, through its
//! `sandbox` feature, and leaves it out of the production build). What both need it has in
//! a small version of its own — [`xml`], [`personnummer`], [`idp::ISSUER`] — and tests in
//! knutpunkt hold the two in agreement.

pub mod arkiv;
pub mod casedata;
pub mod citizen;
pub mod contract;
pub mod control;
pub mod csn;
pub mod datawarehouse;
pub mod diarium;
pub mod elevregister;
pub mod hemkommun;
pub mod idp;
pub mod ist_export;
pub mod larplattform;
pub mod messaging;
pub mod minaombud;
pub mod oep;
pub mod oep_callback;
pub mod oep_integrator;
pub mod personnummer;
pub mod scenarios;
pub mod seed;
pub mod skolval;
pub mod verksamhetsplanering;
pub mod xml;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use control::Controls;
use seed::Population;

/// The state every simulated system reads and writes.
#[derive(Debug, Default)]
pub struct World {
    /// People, school units, placements (elevregister, Metakatalogen).
    pub population: RwLock<Population>,
    /// The register's absences, grades, grade catalogues and teachers' signing keys.
    pub elevregister: Mutex<elevregister::Register>,
    /// Errands of the case management system.
    pub errands: Mutex<casedata::Errands>,
    /// FlowInstances of the e-service platform.
    pub oep: Mutex<oep::Instances>,
    /// Messages sent through the messaging service.
    pub messages: Mutex<messaging::Messages>,
    /// The learning platform's attendance, grades and what it was sent.
    pub larplattform: Mutex<larplattform::Platform>,
    /// The school-choice module's applications.
    pub skolval: Mutex<skolval::Module>,
    /// CSN's delivery files.
    pub csn: Mutex<csn::Deliveries>,
    /// The packages archived.
    pub archive: Mutex<arkiv::Archive>,
    /// The diarium's registrations.
    pub diarium: Mutex<diarium::Registry>,
    /// IKE notices the home municipality received.
    pub ike_notices: Mutex<hemkommun::Notices>,
    /// Attendance statistics verksamhetsplanering received.
    pub statistics: Mutex<verksamhetsplanering::Statistics>,
    /// The test issuer, for the simulations that call Knutpunkt with a bearer token
    /// (case management's decision events).
    pub idp: Option<Arc<idp::Idp>>,
}

/// Read a lock, whatever a panicking writer left behind.
pub fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

/// Write a lock, whatever a panicking writer left behind.
pub fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Lock a mutex, whatever a panicking holder left behind.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running sandbox: the shared world and each system's controls.
#[derive(Clone)]
pub struct Sandbox {
    /// The shared state.
    pub world: Arc<World>,
    /// The test OpenID Connect issuer (absent only if no key could be made).
    pub idp: Option<Arc<idp::Idp>>,
    controls: BTreeMap<&'static str, Arc<Controls>>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// One simulated system: its name and its routes (relative to `/sandbox/<name>`).
struct System {
    name: &'static str,
    what: &'static str,
    routes: fn(Arc<World>) -> Router,
    /// Knutpunkt's own contract for a system that publishes none (`contracts/` in the
    /// repository): the simulation refuses what does not follow it. Systems with a
    /// published contract check what they receive themselves, and `tests/contracts.rs`
    /// holds them to the published files.
    contract: Option<(&'static str, &'static str)>,
}

/// Knutpunkt's own contract for `system`: its file name and text.
macro_rules! own_contract {
    ($system:literal) => {
        Some((
            concat!("contracts/", $system, ".openapi.yaml"),
            include_str!(concat!("../../../contracts/", $system, ".openapi.yaml")),
        ))
    };
}

const IDP_WHAT: &str =
    "Test OpenID Connect issuer (development only): POST /token with claims, GET /jwks";

const SYSTEMS: &[System] = &[
    System {
        name: "arkiv",
        what: "Archive (FGS-ERMS Leveransobjekt + files): POST /{municipalityId}/archive/skola",
        routes: arkiv::routes,
        contract: None,
    },
    System {
        name: "casedata",
        what: "Ärendehantering (case data): /{municipalityId}/{namespace}/errands",
        routes: casedata::routes,
        contract: None,
    },
    System {
        name: "citizen",
        what: "Metakatalogen (Citizen API v3): /api/v3/citizen/{municipalityId}/…",
        routes: citizen::routes,
        contract: None,
    },
    System {
        name: "csn",
        what: "CSN boarding-allowance deliveries (CSV, Windows-1252): GET /deliveries, /deliveries/{name}",
        routes: csn::routes,
        contract: own_contract!("csn"),
    },
    System {
        name: "datawarehouse",
        what: "DataWarehouse: resource allocation per school unit and month, GET /resource-allocations",
        routes: datawarehouse::routes,
        contract: own_contract!("datawarehouse"),
    },
    System {
        name: "diarium",
        what: "Diarium: POST /registrations → diarienummer, GET /registrations/{year}/{number}",
        routes: diarium::routes,
        contract: own_contract!("diarium"),
    },
    System {
        name: "elevregister",
        what: "Elevregister (IST Admin) in SS 12000 terms: /persons, /organisations, /placements, /groups, /grades, /gradeCatalogues (signed), /signing-keys",
        routes: elevregister::routes,
        contract: own_contract!("elevregister"),
    },
    System {
        name: "hemkommun",
        what: "Another municipality (IKE): POST /ike-notices, GET /ike-notices/{id}",
        routes: hemkommun::routes,
        contract: own_contract!("hemkommun"),
    },
    System {
        name: "larplattform",
        what: "Lärplattform (SS 12000): /attendances, /calendarEvents/{id}, /grades, /leaveDecisions, /signedGrades",
        routes: larplattform::routes,
        contract: own_contract!("larplattform"),
    },
    System {
        name: "messaging",
        what: "Messaging: /{municipalityId}/email, /sms, /webmessage, /letter, /status/messages/{id}",
        routes: messaging::routes,
        contract: None,
    },
    System {
        name: "minaombud",
        what: "Mina ombud (digitala fullmakter v2): POST /sok/fullmakter, GET /tredjeman/{orgnr}/fullmakter/{id}",
        routes: minaombud::routes,
        contract: None,
    },
    System {
        name: "oep",
        what: "Open ePlatform: /api/instanceapi/…, SOAP /api/callback, /_submit",
        routes: oep::routes,
        contract: None,
    },
    System {
        name: "oep-integrator",
        what: "oep-integrator (Sundsvall's REST facade over OeP): GET /{municipalityId}/{instanceType}/cases/parties/{partyId}, from the OeP simulation's instances",
        routes: oep_integrator::routes,
        contract: None,
    },
    System {
        name: "skolval",
        what: "Skolvalsmodul: POST /applications, POST /applications/{id}/decision, GET /decisions",
        routes: skolval::routes,
        contract: own_contract!("skolval"),
    },
    System {
        name: "verksamhetsplanering",
        what: "Verksamhetsplanering: attendance statistics per unit, group and day (no personal data)",
        routes: verksamhetsplanering::routes,
        contract: own_contract!("verksamhetsplanering"),
    },
];

impl Sandbox {
    /// A sandbox with the seeded world.
    pub fn new() -> Sandbox {
        let idp = match idp::Idp::generate() {
            Ok(i) => Some(Arc::new(i)),
            Err(e) => {
                tracing::error!(error = %e, "the sandbox runs without its idp");
                None
            }
        };
        Sandbox {
            world: Arc::new(World {
                idp: idp.clone(),
                ..World::default()
            }),
            idp,
            controls: SYSTEMS
                .iter()
                .map(|s| s.name)
                .chain(["idp"])
                .map(|name| (name, Arc::new(Controls::default())))
                .collect(),
        }
    }

    /// The controls (inbox, fault) of a system.
    pub fn controls(&self, system: &str) -> Option<Arc<Controls>> {
        self.controls.get(system).cloned()
    }

    /// All systems under `/sandbox/<name>`, and the index at `/sandbox`.
    pub fn router(&self) -> Router {
        let mut index: Vec<_> = SYSTEMS
            .iter()
            .map(|s| json!({ "system": s.name, "path": format!("/sandbox/{}", s.name), "what": s.what }))
            .collect();
        if self.idp.is_some() {
            index.push(json!({ "system": "idp", "path": "/sandbox/idp", "what": IDP_WHAT }));
        }
        let scenarios: Vec<_> = scenarios::INDEX
            .iter()
            .map(|(path, what)| json!({ "path": path, "method": "POST", "what": what }))
            .collect();
        let mut router = Router::new()
            .route(
                "/sandbox",
                get(move || {
                    let index = index.clone();
                    let scenarios = scenarios.clone();
                    async move { Json(json!({ "systems": index, "scenarios": scenarios })) }
                }),
            )
            .nest("/sandbox/_scenarios", scenarios::routes(self.world.clone()));
        for s in SYSTEMS {
            let controls = self.controls.get(s.name).cloned().unwrap_or_default();
            let mut api = (s.routes)(self.world.clone());
            if let Some((file, text)) = s.contract {
                match contract::Contract::from_yaml(file, text) {
                    Ok(c) => api = contract::enforce(api, Arc::new(c)),
                    // A test reads every contract; this cannot happen in a build that passed.
                    Err(e) => {
                        tracing::error!(error = %e, "the sandbox's {} runs without its contract", s.name)
                    }
                }
            }
            router = router.nest(
                &format!("/sandbox/{}", s.name),
                control::with_controls(api, controls),
            );
        }
        if let Some(idp) = &self.idp {
            let controls = self.controls.get("idp").cloned().unwrap_or_default();
            router = router.nest(
                "/sandbox/idp",
                control::with_controls(idp::routes(idp.clone()), controls),
            );
        }
        router.fallback(|| async {
            control::problem(
                StatusCode::NOT_FOUND,
                "No such sandbox resource",
                "GET /sandbox lists the simulated systems and their paths",
            )
        })
    }

    /// Knutpunkt's own contract of each system that publishes none: (system, file, text).
    pub fn own_contracts() -> Vec<(&'static str, &'static str, &'static str)> {
        SYSTEMS
            .iter()
            .filter_map(|s| s.contract.map(|(file, text)| (s.name, file, text)))
            .collect()
    }

    /// Serve the sandbox on `listener` until `shutdown`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every own contract reads, and every schema in it compiles: a simulation never runs
    /// without the contract it keeps to.
    #[test]
    fn every_own_contract_reads_and_compiles() {
        let own = Sandbox::own_contracts();
        assert_eq!(own.len(), 8, "{own:?}");
        for (system, file, text) in own {
            let c = contract::Contract::from_yaml(file, text)
                .unwrap_or_else(|e| panic!("{system}: {e}"));
            assert!(!c.operations().is_empty(), "{file} has no operations");
            for op in c.operations() {
                // A request with nothing in it compiles every schema the request meets.
                let _ = c.request_violations(&op, op.template, &[], None, None);
                for v in c.request_violations(
                    &op,
                    op.template,
                    &[],
                    Some("application/json"),
                    Some(&json!({})),
                ) {
                    assert!(!v.contains("does not compile"), "{file}: {v}");
                }
            }
        }
    }
}
