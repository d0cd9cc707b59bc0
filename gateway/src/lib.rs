//! The Gatehouse gateway: the Pingora proxy that enforces what the registry says, the
//! snapshot it reads, the node's status and metrics. The `gatehouse` binary (`main.rs`)
//! wires these to the registry and the admin API.

pub mod config;
pub mod node;

use config::ServeConfig;
use gatehouse_registry::store::Store;
use node::Node;
use std::sync::Arc;

/// Runs the gateway on Pingora until a signal stops it (SIGTERM drains in-flight requests).
/// Background work that needs tokio (snapshot reloading) runs on `control`.
pub fn run_proxy(
    _config: &ServeConfig,
    control: &tokio::runtime::Runtime,
    _store: Arc<dyn Store>,
    _node: Arc<Node>,
    _stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), std::io::Error> {
    // The data plane lands in its own change; until then a gateway node waits for a signal.
    control.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    Ok(())
}
