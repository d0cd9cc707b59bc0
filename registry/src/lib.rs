//! The Gatehouse registry: what is registered (APIs, versions, owners, consumers, plans),
//! where it is stored (SQLite or PostgreSQL), who may change it (the admin API and its
//! roles), and what the gateway is compiled from (the snapshot).

pub mod model;
pub mod snapshot;
pub mod store;
