//! Routes: the schema of route files (`model`), loading them with positioned errors (`load`),
//! checking cross-references (`check`) and drawing them (`graph`). Route tests run in
//! [`crate::runtime::testing`].

pub mod check;
pub mod diagnostic;
pub mod fragment;
pub mod graph;
pub mod load;
pub mod model;
pub mod reference;
pub mod settings;
