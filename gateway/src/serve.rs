//! `gatehouse serve`: one process running the gateway (Pingora) and the admin API (axum).
//!
//! Start-up: open the store (migrations run), take `GATEHOUSE_BOOTSTRAP_TOKEN`, seed an
//! empty registry from the bundled catalog, then start the control plane (admin API,
//! snapshot reloader, access-log writer) on its own small tokio runtime and the proxy on
//! Pingora's. Shutdown: SIGTERM lets Pingora drain in-flight requests (each one's access
//! record is handed over as it ends); then the access-log writer flushes everything queued
//! into the store (or, if the store is down, the spool on disk); then the control plane
//! stops.

use anyhow::Context;
use gatehouse_gateway::access::AccessLog;
use gatehouse_gateway::config::ServeConfig;
use gatehouse_gateway::limits::redis::Cluster;
use gatehouse_gateway::metrics::Metrics;
use gatehouse_gateway::node::Node;
use gatehouse_registry::admin::{self, AdminState};
use gatehouse_registry::model::Actor;
use gatehouse_registry::store::{self, PageRequest, Store};
use gatehouse_registry::{Registry, catalog};
use std::sync::Arc;
use tokio::sync::watch;

/// Runs a node until it is told to stop.
pub fn run(config: ServeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gatehouse-control")
        .enable_all()
        .build()
        .context("cannot start the control-plane runtime")?;

    let store = rt
        .block_on(store::open(&config.database_url))
        .context("cannot open the registry store")?;
    let registry = Registry::new(store.clone()).with_ruleset(config.lint_ruleset.clone());
    rt.block_on(prepare(&registry, &config))?;

    let cluster = match &config.redis_url {
        Some(url) => Some(Arc::new(
            Cluster::new(url, node_id(&config)).context("invalid --redis-url")?,
        )),
        None => None,
    };
    let node = Arc::new(Node::build(
        config.role,
        Metrics::with_consumer_limit(config.metrics_consumers),
        cluster,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let limits_task = if config.role.runs_proxy() {
        rt.block_on(node.limits().start(store.as_ref()));
        Some(rt.spawn(node.limits().clone().run(store.clone(), stop_rx.clone())))
    } else {
        None
    };

    // The access log runs where the proxy runs. Its writer has its own stop signal: it must
    // outlive the proxy's drain to flush the last records.
    let (writer_stop_tx, writer_stop_rx) = watch::channel(false);
    let (access, writer_task) = match (&config.access_log, config.role.runs_proxy()) {
        (Some(access_config), true) => {
            let (log, writer) = AccessLog::start(access_config.clone(), store.clone())
                .context("cannot open the access-log spool")?;
            (log, Some(rt.spawn(writer.run(writer_stop_rx))))
        }
        _ => (AccessLog::disabled(), None),
    };
    node.set_access(access.stats().clone());

    let admin_task = if config.role.runs_admin() {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(config.admin_listen))
            .with_context(|| format!("cannot listen on {}", config.admin_listen))?;
        tracing::info!(address = %config.admin_listen, "admin API listening");
        let app = admin::router(AdminState {
            registry: registry.clone(),
            node: node.clone(),
        });
        let mut stop = stop_rx.clone();
        Some(rt.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "admin API stopped");
            }
        }))
    } else {
        None
    };

    if config.role.runs_proxy() {
        tracing::info!(address = %config.proxy_listen, "gateway listening");
        gatehouse_gateway::run_proxy(
            &config,
            &rt,
            store.clone(),
            node.clone(),
            stop_rx.clone(),
            access,
        )
        .context("the gateway stopped with an error")?;
    } else {
        rt.block_on(wait_for_signal());
    }

    tracing::info!("shutting down");
    let _ = writer_stop_tx.send(true);
    if let Some(task) = writer_task {
        // Flushing waits for the store for at most its timeout per batch plus a few seconds
        // of replay; whatever is left is already safe in the spool.
        let flushed = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(60), task).await
        });
        if flushed.is_err() {
            tracing::error!("the access-log writer did not finish flushing in time");
        }
    }
    let _ = stop_tx.send(true);
    if let Some(task) = admin_task {
        let _ = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), task).await
        });
    }
    // The last quota checkpoint (local mode), or leaving the live-node set (cluster mode).
    if let Some(task) = limits_task {
        let _ = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), task).await
        });
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(())
}

/// This node's id in the Redis live-node set: unique per process, readable in `ZRANGE`.
fn node_id(config: &ServeConfig) -> String {
    format!(
        "{}-{}-{}",
        config.proxy_listen,
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Bootstrap token and seeding, before anything listens.
async fn prepare(registry: &Registry, config: &ServeConfig) -> anyhow::Result<()> {
    let bootstrap = std::env::var("GATEHOUSE_BOOTSTRAP_TOKEN").ok();
    if let Some(token) = bootstrap.as_deref()
        && registry.bootstrap_token(token).await?
    {
        tracing::info!("GATEHOUSE_BOOTSTRAP_TOKEN is now an admin token");
    }
    if config.seed && is_empty(registry.store().as_ref()).await? {
        if config.seed_catalog.exists() {
            let bundle = catalog::load_bundle(&config.seed_catalog).with_context(|| {
                format!(
                    "cannot read the seed catalog {}",
                    config.seed_catalog.display()
                )
            })?;
            let report = catalog::apply(registry, &Actor::system(), &bundle, false)
                .await
                .context("cannot apply the seed catalog")?;
            tracing::info!(
                steps = report.steps.len(),
                catalog = %config.seed_catalog.display(),
                "seeded the empty registry"
            );
        } else {
            tracing::warn!(
                catalog = %config.seed_catalog.display(),
                "the registry is empty and the seed catalog does not exist; starting empty"
            );
        }
    }
    Ok(())
}

async fn is_empty(store: &dyn Store) -> anyhow::Result<bool> {
    let page = PageRequest {
        after: None,
        limit: 1,
    };
    Ok(store.list_apis(&page).await?.is_empty() && store.list_teams(&page).await?.is_empty())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
