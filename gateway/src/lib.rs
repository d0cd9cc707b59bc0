//! The Gatehouse gateway library: the Pingora proxy service, the snapshot holder and its
//! reloader, and the metrics. The `gatehouse` binary (`src/main.rs`) wires them together.
//!
//! - [`proxy`]: the one `ProxyHttp` implementation and [`proxy::proxy_service`].
//! - [`holder`]: the live snapshot (`arc-swap`) and [`holder::run_reloader`].
//! - [`metrics`]: Prometheus text exposition of the data plane.

pub mod holder;
pub mod metrics;
pub mod proxy;
