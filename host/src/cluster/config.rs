//! `[cluster]`: several `tapir run` nodes acting as one host through NATS JetStream. Without
//! the section nothing of the cluster runs and no NATS is needed.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// The `[cluster]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS servers (`nats://127.0.0.1:4222`); the client fails over between them.
    pub urls: Vec<String>,
    /// The cluster's name: nodes with the same name and NATS servers form one host. Letters,
    /// digits, `-` and `_`.
    #[serde(default = "default_name")]
    pub name: String,
    /// This node's name, unique in the cluster (letters, digits, `-` and `_`).
    pub node: String,
    /// A NATS token (`authorization { token }` on the server). Never logged.
    #[serde(default)]
    pub token: Option<Secret>,
    /// A NATS user; with `password`.
    #[serde(default)]
    pub user: Option<String>,
    /// The NATS user's password. Never logged.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Seconds a lease on a driver instance lasts without renewal. The owner renews every
    /// third of it and stops the instance's drivers after three quarters of it without a
    /// renewal; another node takes the instance once the lease expired.
    #[serde(default = "default_lease")]
    pub lease_s: f64,
    /// Events kept in the cluster's stream for clients that resume (any node).
    #[serde(default = "default_history")]
    pub history: u64,
    /// The node each instance prefers (`{ office = "node-1" }`): while its lease is free, the
    /// home node takes it at once and the others only after it stayed free for a whole lease.
    /// Instances without a home go to whichever node is first.
    #[serde(default)]
    pub home: std::collections::BTreeMap<String, String>,
    /// Give an instance back to its `home` node when that node is up again (its calls end,
    /// as in a failover). Off: a node that comes back takes nothing back.
    #[serde(default)]
    pub rebalance: bool,
    /// Seconds a forwarded request waits for the owner's answer before it counts as accepted
    /// (its completion then comes from the owner, or as an error when the owner fails).
    #[serde(default = "default_forward_timeout")]
    pub forward_timeout_s: f64,
}

fn default_name() -> String {
    "tapir".to_owned()
}

fn default_lease() -> f64 {
    6.0
}

fn default_history() -> u64 {
    100_000
}

fn default_forward_timeout() -> f64 {
    5.0
}

/// Whether `name` can be a part of NATS subjects and bucket names.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl ClusterConfig {
    /// Every problem of the section, as (key path, message); `instances` are the configured
    /// driver instances (`home` may name only those).
    pub fn problems(&self, instances: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (instance, node) in &self.home {
            if !instances.contains(&instance.as_str()) {
                out.push((
                    format!("cluster.home.{instance}"),
                    "no driver instance of that name".into(),
                ));
            }
            if !is_token(node) {
                out.push((
                    format!("cluster.home.{instance}"),
                    "not a node name (letters, digits, `-` or `_`)".into(),
                ));
            }
        }
        if self.urls.is_empty() {
            out.push((
                "cluster.urls".into(),
                "name at least one NATS server".into(),
            ));
        }
        for (what, value) in [("name", &self.name), ("node", &self.node)] {
            if !is_token(value) {
                out.push((
                    format!("cluster.{what}"),
                    "use 1 to 64 letters, digits, `-` or `_`".into(),
                ));
            }
        }
        if !(1.0..=300.0).contains(&self.lease_s) {
            out.push((
                "cluster.lease_s".into(),
                "a lease lasts 1 to 300 seconds".into(),
            ));
        }
        if !(0.1..=60.0).contains(&self.forward_timeout_s) {
            out.push((
                "cluster.forward_timeout_s".into(),
                "0.1 to 60 seconds".into(),
            ));
        }
        if self.history == 0 {
            out.push(("cluster.history".into(), "keep at least one event".into()));
        }
        if self.user.is_some() != self.password.is_some() {
            out.push((
                "cluster.user".into(),
                "`user` and `password` go together".into(),
            ));
        }
        if self.token.is_some() && self.user.is_some() {
            out.push((
                "cluster.token".into(),
                "a token or a user with a password, not both".into(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(node: &str) -> ClusterConfig {
        ClusterConfig {
            urls: vec!["nats://127.0.0.1:4222".into()],
            name: "tapir".into(),
            node: node.into(),
            token: None,
            user: None,
            password: None,
            lease_s: 6.0,
            history: 10,
            forward_timeout_s: 5.0,
            home: Default::default(),
            rebalance: false,
        }
    }

    #[test]
    fn names_must_fit_into_subjects() {
        assert!(config("node-1").problems(&[]).is_empty());
        let bad = config("node.1").problems(&[]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, "cluster.node");
        let mut c = config("a");
        c.urls.clear();
        c.lease_s = 0.5;
        c.user = Some("u".into());
        assert_eq!(c.problems(&[]).len(), 3);
        let mut h = config("a");
        h.home.insert("office".into(), "a".into());
        h.home.insert("gone".into(), "b".into());
        let problems = h.problems(&["office"]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "cluster.home.gone");
    }
}
