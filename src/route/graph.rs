//! Mermaid graph of routes.
