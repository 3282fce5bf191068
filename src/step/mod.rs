//! Steps: the Enterprise Integration Patterns a route is made of, one module per kind.
//!
//! A step takes one message and gives zero (filtered, aggregated), one or many (split)
//! messages. Steps with side effects reach the outside world only through [`Effects`], so
//! the same route runs in `knut run` (real broker, real adapters) and in `knut test`
//! (recorded publishes, mocked adapter responses).
