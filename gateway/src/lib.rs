//! The Gatehouse gateway: the Pingora proxy that enforces what the registry says, the
//! snapshot it reads, the node's status and metrics. The `gatehouse` binary (`main.rs`)
//! wires these to the registry and the admin API.
//!
//! - [`proxy`]: the one `ProxyHttp` implementation and [`proxy::proxy_service`].
//! - [`access`]: the access-log pipeline (queue, batching writer, spool, replay).
//! - [`holder`]: the live snapshot (`arc-swap`) and [`holder::run_reloader`].
//! - [`identity`]: the proxy's `authenticate`/`authorize` steps, verified-token cache,
//!   batched last-used times of API keys.
//! - [`jwks`]: the background-refreshed JWKS cache of trusted issuers.
//! - [`metrics`]: Prometheus text exposition of the data plane.
//! - [`limits`]: rate limits and quotas (local, or Redis with a local fallback).
//! - [`config`], [`node`]: `gatehouse serve` settings and what a node knows about itself.

pub mod access;
pub mod config;
pub mod holder;
pub mod identity;
pub mod jwks;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod proxy;

/// With `--features mimalloc`, the whole binary allocates with mimalloc (see bench/README.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use config::ServeConfig;
use gatehouse_registry::store::Store;
use node::Node;
use std::sync::Arc;

/// How often the last-used times of API keys are written (one batch per interval).
pub const KEY_USAGE_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the gateway on Pingora until a signal stops it: SIGTERM drains in-flight requests
/// (1 s grace, then up to 10 s for them to finish), SIGINT stops at once. The snapshot
/// reloader runs on `control` until `stop` turns true.
///
/// The first snapshot is built before the proxy listens, so a node never answers 404 for a
/// registry it has simply not read yet. Every request is handed to `access` at its end; when
/// this returns, Pingora has drained and no record is handed over any more.
pub fn run_proxy(
    config: &ServeConfig,
    control: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    node: Arc<Node>,
    stop: tokio::sync::watch::Receiver<bool>,
    access: access::AccessLog,
) -> Result<(), std::io::Error> {
    let holder = node.holder().clone();
    if let Err(e) = control.block_on(holder::rebuild(store.as_ref(), &holder)) {
        holder.record_failure(&e);
    }
    control.spawn(holder::run_reloader(store.clone(), holder.clone(), stop));
    let jwks = jwks::JwksCache::new(jwks::JwksConfig {
        min_refresh_interval: config.jwks_min_refresh,
        ..jwks::JwksConfig::default()
    });
    let identity = Arc::new(identity::Identity::new(jwks.clone()));
    {
        // Key sets for the issuers of the first snapshot are being fetched before the proxy
        // listens (not awaited: a slow provider must not hold the node).
        let _guard = control.enter();
        let holder = holder.clone();
        control.spawn(jwks::run_sync(
            jwks,
            holder,
            std::time::Duration::from_millis(200),
        ));
    }
    control.spawn(identity::run_usage_flusher(
        identity.usage.clone(),
        store,
        KEY_USAGE_FLUSH,
    ));
    let limits = node.limits().clone();
    let conf = pingora::server::configuration::ServerConf {
        threads: config.proxy_threads,
        // Measured in bench/: without work stealing each thread keeps its connections and
        // skips cross-thread wake-ups.
        work_stealing: false,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(10),
        ..Default::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    let service = proxy::gateway_service(
        &server.configuration,
        proxy::Gateway::with_limits(holder, identity, limits).with_access_log(access),
        &config.proxy_listen.to_string(),
    );
    server.add_service(service);
    server.bootstrap();
    server.run(pingora::server::RunArgs::default());
    Ok(())
}
