//! openapi endpoint
