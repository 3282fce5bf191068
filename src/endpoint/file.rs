//! file endpoint
