//! http endpoint
