//! Pure decisions of the Gatehouse gateway and registry.
//!
//! Nothing here touches sockets, databases, Pingora or the clock: time is a parameter.
//! That keeps every rule fast to test, easy to fuzz, and shared by the registry (which
//! checks and compiles) and the gateway (which enforces).
//!
//! - [`document`]: safe loading of untrusted JSON and YAML.
//! - [`openapi`]: the one OpenAPI model (3.0 and 3.1) and spec ingest.
//! - [`problem`]: RFC 9457 problem details, the shape of every refusal.
//! - [`validate`]: request and response validation against an operation, compiled once.

pub mod document;
pub mod openapi;
pub mod problem;
pub mod validate;
