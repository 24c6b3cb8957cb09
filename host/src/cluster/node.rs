//! What every part of a cluster node shares: the engine, the front end, the line-id table,
//! which instances this node runs and which it mirrors, how far it has read the event stream,
//! and blocking request-reply for the parts that run on driver threads.

use super::config::ClusterConfig;
use super::engine::Engine;
use super::ids::SharedIds;
use super::proxy::ProxyShared;
use crate::host::Host;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tapir_core::{DriverError, ErrorKind};

/// A cluster node's shared state.
pub struct Node {
    /// `[cluster]`.
    pub config: ClusterConfig,
    /// NATS.
    pub engine: Engine,
    /// The runtime the cluster's tasks run on.
    pub handle: tokio::runtime::Handle,
    /// The host: front end and configured instances.
    pub host: Arc<Host>,
    /// Cluster-wide line ids.
    pub ids: Arc<SharedIds>,
    /// Instances whose drivers run here (this node holds their lease).
    pub owned: RwLock<HashSet<String>>,
    /// Instances mirrored here from their owner.
    pub proxies: RwLock<HashMap<String, Arc<ProxyShared>>>,
    /// The last stream position the feed handed to the mirrors.
    pub position: AtomicU64,
    /// Woken whenever `position` moves.
    pub moved: tokio::sync::Notify,
    /// The front end's position of the last event the publisher looked at.
    pub published: AtomicU64,
    /// Requests written to the `pending` bucket and not completed yet (their key is removed
    /// when they complete).
    pub noted: std::sync::Mutex<HashSet<tapir_core::RequestId>>,
}

/// Why a request to another node got no answer.
#[derive(Debug)]
pub enum Unanswered {
    /// Nobody listens: the node is not connected (its requests never arrived).
    NoResponders,
    /// No answer in time: the node may or may not have acted.
    TimedOut,
    /// Anything else (NATS down, a garbled answer).
    Failed(String),
}

impl Node {
    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.config.node
    }

    /// Whether this node runs instance `name`.
    pub fn owns(&self, name: &str) -> bool {
        self.owned
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }

    /// The mirror of instance `name`, if there is one.
    pub fn proxy(&self, name: &str) -> Option<Arc<ProxyShared>> {
        self.proxies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Asks node `node` (`what`: its handler) and waits for the JSON answer. Runs on a thread
    /// outside the runtime (driver calls come from blocking threads).
    pub fn ask_blocking<Q: Serialize, A: DeserializeOwned>(
        &self,
        node: &str,
        what: &str,
        question: &Q,
        within: Duration,
    ) -> Result<A, Unanswered> {
        let subject = self.engine.names.node(node, what);
        let payload =
            serde_json::to_vec(question).map_err(|e| Unanswered::Failed(e.to_string()))?;
        let client = self.engine.client.clone();
        let answer = self.handle.block_on(async move {
            tokio::time::timeout(within, client.request(subject, payload.into())).await
        });
        let message = match answer {
            Err(_) => return Err(Unanswered::TimedOut),
            Ok(Err(e)) => {
                return Err(match e.kind() {
                    async_nats::client::RequestErrorKind::NoResponders => Unanswered::NoResponders,
                    async_nats::client::RequestErrorKind::TimedOut => Unanswered::TimedOut,
                    _ => Unanswered::Failed(e.to_string()),
                })
            }
            Ok(Ok(message)) => message,
        };
        serde_json::from_slice(&message.payload).map_err(|e| Unanswered::Failed(e.to_string()))
    }

    /// Waits until the feed has handed on every event the stream holds now (at most `limit`).
    /// Returns whether it got there.
    pub async fn catch_up(&self, limit: Duration) -> bool {
        let Ok(Ok((_, last))) = tokio::time::timeout(limit, self.engine.stream_bounds()).await
        else {
            return false;
        };
        tokio::time::timeout(limit, async {
            loop {
                let waiting = self.moved.notified();
                if self.position.load(Ordering::Acquire) >= last {
                    return;
                }
                waiting.await;
            }
        })
        .await
        .is_ok()
    }

    /// Waits until the publisher has looked at every event the front end published so far.
    pub async fn drained(&self, limit: Duration) {
        let tsp = Arc::clone(&self.host.tsp);
        let target = tokio::task::spawn_blocking(move || {
            tsp.sync();
            tsp.last_seq()
        })
        .await
        .unwrap_or(0);
        let deadline = tokio::time::Instant::now() + limit;
        while self.published.load(Ordering::Acquire) < target
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The error a request gets when the node owning its line cannot be asked.
pub fn unreachable(node: &str, why: &str) -> DriverError {
    DriverError::new(
        ErrorKind::Disconnected,
        format!("the node owning the line ({node}) {why}"),
    )
}
