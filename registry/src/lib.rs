//! The Gatehouse registry: what is registered (APIs, versions, owners, consumers, plans),
//! where it is stored (SQLite or PostgreSQL), who may change it (the admin API and its
//! roles), and what the gateway is compiled from (the snapshot).
//!
//! - [`model`]: the domain records.
//! - [`access`]: access records (one per gateway request), their filters and exports.
//! - [`audit`]: change-log verification and the deprecation-readiness report.
//! - [`store`]: the `Store` trait and its SQLite and PostgreSQL implementations.
//! - [`service`]: the operations with their role checks and validation ([`Registry`]).
//! - [`catalog`]: declarative catalogs (`gatehouse apply`, seeding).
//! - [`admin`]: the admin HTTP API.
//! - [`secret`]: API keys and admin tokens.
//! - [`credentials`]: the snapshot's identity index (keys, issuers, subscriptions).
//! - [`snapshot`]: the immutable, compiled view the gateway serves from.

pub mod access;
pub mod admin;
pub mod audit;
pub mod catalog;
pub mod credentials;
pub mod error;
pub mod model;
pub mod secret;
pub mod service;
pub mod snapshot;
pub mod store;

pub use error::RegistryError;
pub use service::Registry;
