//! Pure decisions of the Gatehouse gateway and registry.
//!
//! Nothing here touches sockets, databases, Pingora or the clock: time is a parameter.
//! That keeps every rule fast to test, easy to fuzz, and shared by the registry (which
//! checks and compiles) and the gateway (which enforces).
//!
//! - [`diff`]: the breaking-change engine: two versions of a spec in, findings out.
//! - [`document`]: safe loading of untrusted JSON and YAML.
//! - [`identity`]: credentials, JWT and JWKS verification, scopes and subscriptions.
//! - [`lint`]: the governance ruleset a spec must pass before it is published.
//! - [`openapi`]: the one OpenAPI model (3.0 and 3.1) and spec ingest.
//! - [`problem`]: RFC 9457 problem details, the shape of every refusal.
//! - [`redact`]: what of a request may be written down (sensitive query values removed).
//! - [`routing`]: request-path normalisation and the choice of API and major.
//! - [`lifecycle`]: `Deprecation`/`Sunset`/`Link` headers and the 410 decision.
//! - [`validate`]: request and response validation against an operation, compiled once.
//! - [`ratelimit`]: GCRA rates, calendar quotas, the RateLimit headers, the local limiter.

pub mod diff;
pub mod document;
pub mod identity;
pub mod lifecycle;
pub mod lint;
pub mod openapi;
pub mod problem;
pub mod ratelimit;
pub mod redact;
pub mod routing;
pub mod validate;
