//! # Clustering: several `tapir run` nodes acting as one host through NATS JetStream
//!
//! Configured by `[cluster]`; without it nothing here runs and no NATS is needed. Every node
//! reads the same configuration and serves the whole API and page. Each driver instance runs
//! on one node at a time (its lease holder); every other node mirrors it with a proxy driver
//! in its own front end, so its lines and calls are in every node's lists and requests on
//! them are forwarded to the holder. Events of every line go through one JetStream stream,
//! whose sequence is the cluster-wide `seq` of the API.
//!
//! - [`config`]: the `[cluster]` section;
//! - [`engine`]: the NATS connection, buckets, stream and this run's number;
//! - [`ids`]: cluster-wide line ids (a KV bucket, create-if-absent);
//! - [`lease`]: who runs each instance (leases, renewal, fencing by time, takeover);
//! - [`proxy`]: the mirror of an instance another node runs;
//! - [`publish`]: this node's events onto the stream;
//! - [`feed`]: the stream into the mirrors, and the API's event streams;
//! - [`serve`]: what a node answers other nodes;
//! - [`node`]: what they share;
//! - [`wire`]: subjects, headers and messages between nodes.

pub mod config;
pub mod engine;
pub mod feed;
pub mod ids;
pub mod lease;
pub mod node;
pub mod proxy;
pub mod publish;
pub mod serve;
pub mod wire;

pub use config::ClusterConfig;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::host::Host;
use engine::Engine;
use node::Node;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tapir_core::LineKey;

/// A running cluster node.
pub struct Cluster {
    node: Arc<Node>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS or JetStream.
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    /// The line-id table could not be read.
    #[error("cannot read the cluster's line ids: {0}")]
    Ids(String),
}

/// Connects to NATS and builds the host of a cluster node (no instance started yet).
///
/// # Errors
/// When NATS cannot be reached or JetStream refuses.
pub async fn connect(config: &Config) -> Result<(Engine, Host), ClusterError> {
    let Some(cluster) = &config.cluster else {
        return Err(ClusterError::Ids("no [cluster] section".into()));
    };
    let engine = Engine::start(cluster).await?;
    let host = Host::start_clustered(config, engine.run << wire::RUN_SHIFT);
    Ok((engine, host))
}

impl Cluster {
    /// Starts the node's tasks: feed, publisher, answers to other nodes, leases.
    ///
    /// # Errors
    /// When the line-id table cannot be read.
    pub async fn start(
        config: &Config,
        engine: Engine,
        host: Arc<Host>,
        catalog: Arc<Catalog>,
    ) -> Result<Self, ClusterError> {
        let Some(cluster) = config.cluster.clone() else {
            return Err(ClusterError::Ids("no [cluster] section".into()));
        };
        let pinned: Vec<_> = config
            .lines
            .iter()
            .filter_map(|l| {
                Some((
                    l.driver.clone(),
                    LineKey::new(l.key.clone()),
                    tapir_core::LineId(l.id?),
                ))
            })
            .collect();
        let ids = ids::SharedIds::load(engine.clone(), pinned, config.tsp.line_base)
            .await
            .map_err(|e| ClusterError::Ids(e.to_string()))?;
        host.tsp.set_line_ids(ids.clone());
        let (_, last) = engine.stream_bounds().await?;
        let node = Arc::new(Node {
            config: cluster,
            engine,
            handle: tokio::runtime::Handle::current(),
            host: Arc::clone(&host),
            ids,
            owned: RwLock::new(HashSet::new()),
            proxies: RwLock::new(HashMap::new()),
            position: AtomicU64::new(last),
            moved: tokio::sync::Notify::new(),
            published: AtomicU64::new(0),
            noted: std::sync::Mutex::new(HashSet::new()),
        });
        let follower = host.tsp.follow();
        let sections: BTreeMap<_, _> = config
            .drivers
            .iter()
            .filter(|(_, s)| s.enabled)
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        let mut tasks = vec![
            tokio::spawn(feed::run(Arc::clone(&node))),
            tokio::spawn(publish::run(Arc::clone(&node), follower)),
        ];
        let answering = Arc::clone(&node);
        tasks.push(tokio::spawn(async move {
            if let Err(error) = serve::run(answering).await {
                tracing::error!(%error, "Cannot answer other nodes.");
            }
        }));
        tasks.push(tokio::spawn(lease::run(
            Arc::clone(&node),
            sections,
            catalog,
        )));
        tracing::info!(
            cluster = %node.config.name,
            node = node.node_name(),
            run = node.engine.run,
            "Joined the cluster."
        );
        Ok(Self { node, tasks })
    }

    /// The cluster-wide position of the newest event this node's lists reflect: read it,
    /// then the lists, and resume the event stream after it to miss nothing.
    pub fn position(&self) -> u64 {
        let position = self.node.position.load(Ordering::Acquire);
        // Events handed to mirrors up to there are applied once the front end has taken
        // every report sent before now.
        self.node.host.tsp.sync();
        position
    }

    /// Records a request an application submitted here on a line this node runs, until it
    /// completes: if this node fails first, the node taking the line over completes it with
    /// an error. Call after the front end accepted it; `watch` tells whether it completed
    /// meanwhile, and that completion is returned (the watch has given it up).
    pub async fn note_pending(
        &self,
        request: tapir_core::RequestId,
        line: tapir_core::LineId,
        watch: &mut tapir_tsp::RequestWatch,
    ) -> Option<tapir_tsp::RequestResult> {
        let node = &self.node;
        let instance = node.ids.instance_of(line)?;
        if !node.owns(&instance) {
            // On a mirrored line the requester's mirror answers for it.
            return None;
        }
        node.noted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request);
        let key = wire::pending_key(&instance, request);
        let value = line.0.to_string().into();
        let written =
            tokio::time::timeout(Duration::from_secs(1), node.engine.pending.put(&key, value))
                .await;
        if !matches!(written, Ok(Ok(_))) {
            tracing::warn!(%request, "Could not record a pending request in the cluster.");
        }
        let done = watch.try_result();
        if done.is_some() {
            // Completed before the key was written: the publisher may have missed it.
            node.noted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&request);
            let _ =
                tokio::time::timeout(Duration::from_secs(1), node.engine.pending.purge(&key)).await;
        }
        done
    }

    /// Whether this node runs line `line` (its instance's lease is this node's).
    pub fn runs_line(&self, line: tapir_core::LineId) -> bool {
        self.node
            .ids
            .instance_of(line)
            .is_some_and(|instance| self.node.owns(&instance))
    }

    /// The node's shared state (the API's event streams read through it).
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Stops the node's cluster tasks (the drivers stop with the host) and gives up its
    /// leases, so other nodes take its instances at once.
    pub async fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
        let owned: Vec<String> = self
            .node
            .owned
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let host = Arc::clone(&self.node.host);
        let _ = tokio::task::spawn_blocking(move || host.shutdown()).await;
        for name in owned {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                self.node.engine.leases.delete(wire::hex(&name)),
            )
            .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.node.engine.client.flush()).await;
    }
}
