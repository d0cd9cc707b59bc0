//! What a running node knows about itself: its role, and (through the snapshot holder, the
//! metrics registry and the access-log pipeline) whether it is ready and what it has counted.
//! The admin API reads it through [`NodeStatus`] for `/readyz` and `/metrics`.

use crate::access::AccessStats;
use crate::config::NodeRole;
use crate::holder::SnapshotHolder;
use crate::limits::RateLimits;
use crate::limits::redis::Cluster;
use crate::metrics::Metrics;
use gatehouse_registry::admin::NodeStatus;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use time::format_description::well_known::Rfc3339;

/// The node's self-knowledge, shared by the proxy, the reloader and the admin API.
#[derive(Debug)]
pub struct Node {
    role: NodeRole,
    holder: Arc<SnapshotHolder>,
    limits: Arc<RateLimits>,
    access: OnceLock<Arc<AccessStats>>,
}

impl Node {
    /// A node with local rate limits.
    pub fn new(role: NodeRole) -> Self {
        Self::build(role, Metrics::new(), None)
    }

    /// A node whose rate limits are shared through Redis when `cluster` is given.
    pub fn with_cluster(role: NodeRole, cluster: Option<Arc<Cluster>>) -> Self {
        Self::build(role, Metrics::new(), cluster)
    }

    /// A node with its own metrics settings (e.g. the consumer label limit).
    pub fn with_metrics(role: NodeRole, metrics: Metrics) -> Self {
        Self::build(role, metrics, None)
    }

    /// A node with `metrics`, its rate limits shared through Redis when `cluster` is given.
    pub fn build(role: NodeRole, metrics: Metrics, cluster: Option<Arc<Cluster>>) -> Self {
        let metrics = Arc::new(metrics);
        let limits = match cluster {
            Some(c) => RateLimits::clustered(metrics.clone(), c),
            None => RateLimits::local(metrics.clone()),
        };
        Node {
            role,
            holder: Arc::new(SnapshotHolder::new(metrics)),
            limits: Arc::new(limits),
            access: OnceLock::new(),
        }
    }

    /// The node's rate limiting.
    pub fn limits(&self) -> &Arc<RateLimits> {
        &self.limits
    }

    /// Reports the access-log pipeline in `/readyz` and `/metrics` (set once, at start).
    pub fn set_access(&self, stats: Arc<AccessStats>) {
        let _ = self.access.set(stats);
    }

    pub fn role(&self) -> NodeRole {
        self.role
    }

    /// The snapshot holder the proxy serves from (and its metrics).
    pub fn holder(&self) -> &Arc<SnapshotHolder> {
        &self.holder
    }
}

impl NodeStatus for Node {
    /// A gateway node is ready once it has built a snapshot from the registry; a failed later
    /// build keeps it ready (the previous snapshot serves) but shows in the details. It is not
    /// ready while its access-log spool is full: it is losing access records, and a load
    /// balancer should send the traffic to a node that can still account for it.
    fn readiness(&self) -> (bool, Value) {
        let role = format!("{:?}", self.role).to_lowercase();
        if !self.role.runs_proxy() {
            return (true, json!({"role": role}));
        }
        let st = self.holder.status();
        let fmt = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        let access = self.access.get().map(|a| a.status());
        let dropping = access.as_ref().is_some_and(|a| a.spool_full);
        (
            st.loaded && !dropping,
            json!({
                "role": role,
                "snapshot": {
                    "loaded": st.loaded,
                    "generation": st.generation,
                    "built_at": fmt(st.built_at),
                    "build_failures": st.build_failures,
                    "last_error": st.last_error,
                    "last_error_at": st.last_error_at.map(fmt),
                },
                "rate_limits": self.limits.readiness(),
                "access_log": access,
            }),
        )
    }

    fn metrics(&self) -> String {
        let mut out = self.holder.metrics().render();
        if let Some(access) = self.access.get() {
            access.render(&mut out);
        }
        out
    }
}
