//! Knutpunkt: the integration middleware of Sundsvalls kommun's school platform.
//!
//! Messages enter through endpoints (`endpoint`), are durably published to the broker
//! (`broker`), and each route's worker passes them through its steps (`step`), which call
//! the municipality's systems through adapters (`adapter`). See docs/architecture.md for the picture.

#![warn(missing_docs)]

pub mod adapter;
pub mod admin;
pub mod broker;
pub mod cli;
pub mod codec;
pub mod config;
pub mod core;
pub mod endpoint;
pub mod expr;
pub mod jwks;
#[cfg(test)]
mod layers;
pub mod outlet;
pub mod resources;
pub mod route;
pub mod runtime;
pub mod schema;
pub mod step;
pub mod store;
pub mod telemetry;
pub mod template;
