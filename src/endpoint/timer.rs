//! timer endpoint
