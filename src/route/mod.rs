//! Routes: the schema of route files (`model`), loading them with positioned errors (`load`),
//! checking cross-references (`check`), drawing them (`graph`) and route tests (`testing`).

pub mod check;
pub mod diagnostic;
pub mod graph;
pub mod load;
pub mod model;
pub mod testing;
