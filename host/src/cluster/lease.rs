//! Who runs each driver instance: a lease per instance in a JetStream key-value bucket whose
//! entries expire `lease_s` after their last write.
//!
//! - A node takes an instance with a create-if-absent of its key, so at most one node holds
//!   it; it renews with an update that names the revision it wrote last (a compare-and-set),
//!   every third of the lease.
//! - **Fencing by time:** a node that has not renewed for three quarters of the lease stops
//!   the instance's drivers itself, before the lease can expire and another node can take
//!   it; a renewal refused for a wrong revision (another node holds it) stops them at once.
//! - Every other node mirrors the instance from its holder (a proxy driver) and tries to take
//!   it whenever the key is gone: within one tick of the lease expiring. A node that comes
//!   back takes nothing back: it only takes keys that are gone.

use super::node::Node;
use super::proxy::Proxy;
use super::wire::{self, hex, Holder};
use crate::catalog::Catalog;
use crate::config::DriverSection;
use async_nats::jetstream::kv;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_tsp::Removal;

/// The cause calls show when the node running them failed.
pub const OWNER_FAILED: &str = "the cluster node running this line failed";

/// The cause calls show when their instance moves back to its home node (`rebalance`).
pub const MOVED_HOME: &str = "the line moved back to its home cluster node";

/// The cause calls show on a node that stopped its drivers because it lost its lease.
pub const LEASE_LOST: &str = "this cluster node lost its lease on the line (cut off from NATS)";

struct Held {
    revision: u64,
    /// When the last renewal that succeeded was sent.
    sent: Instant,
}

/// The lease manager's timing, from `lease_s`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// Renew this often.
    pub renew: Duration,
    /// Stop the drivers after this long without a renewal.
    pub fence: Duration,
    /// Look at every lease this often.
    pub tick: Duration,
}

impl Timing {
    /// The timing of a lease of `lease`.
    pub fn of(lease: Duration) -> Self {
        Self {
            lease,
            renew: lease / 3,
            fence: lease * 3 / 4,
            tick: (lease / 8).min(Duration::from_millis(500)),
        }
    }
}

/// Runs the leases of `sections` (the enabled instances) for ever.
pub async fn run(
    node: Arc<Node>,
    sections: BTreeMap<String, DriverSection>,
    catalog: Arc<Catalog>,
) {
    let timing = Timing::of(Duration::from_secs_f64(node.config.lease_s));
    let me = Holder {
        node: node.node_name().to_owned(),
        run: node.engine.run,
    };
    let value: bytes::Bytes = serde_json::to_vec(&me).unwrap_or_default().into();
    let mut held: HashMap<String, Held> = HashMap::new();
    // Since when each lease was seen free (for instances whose home is another node).
    let mut free_since: HashMap<String, Instant> = HashMap::new();
    let mut alive_sent: Option<Instant> = None;
    let mut ticker = tokio::time::interval(timing.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if alive_sent.is_none_or(|t| t.elapsed() >= timing.renew) {
            let put = tokio::time::timeout(
                timing.renew,
                node.engine.nodes.put(node.node_name(), value.clone()),
            )
            .await;
            if matches!(put, Ok(Ok(_))) {
                alive_sent = Some(Instant::now());
            }
        }
        for (name, section) in &sections {
            let key = hex(name);
            if let Some(h) = held.get_mut(name) {
                if h.sent.elapsed() >= timing.fence {
                    held.remove(name);
                    fence(
                        &node,
                        name,
                        section,
                        timing,
                        "no renewal for three quarters of the lease",
                    )
                    .await;
                    continue;
                }
                if node.config.rebalance && home_is_up(&node, name, timing).await {
                    held.remove(name);
                    give_back(&node, name, section, timing).await;
                    continue;
                }
                if h.sent.elapsed() >= timing.renew {
                    let sent = Instant::now();
                    let renewed = tokio::time::timeout(
                        timing.renew,
                        node.engine.leases.update(&key, value.clone(), h.revision),
                    )
                    .await;
                    match renewed {
                        Ok(Ok(revision)) => {
                            h.revision = revision;
                            h.sent = sent;
                        }
                        Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                            held.remove(name);
                            fence(&node, name, section, timing, "another node holds the lease")
                                .await;
                        }
                        Ok(Err(error)) => {
                            tracing::warn!(instance = %name, %error, "Lease not renewed; trying again.")
                        }
                        Err(_) => {
                            tracing::warn!(instance = %name, "Lease renewal timed out; trying again.")
                        }
                    }
                }
                continue;
            }
            let entry = tokio::time::timeout(timing.renew, node.engine.leases.entry(&key)).await;
            let holder = match entry {
                Ok(Ok(Some(e))) if e.operation == kv::Operation::Put => {
                    serde_json::from_slice::<Holder>(&e.value).ok()
                }
                Ok(Ok(_)) => None,
                // NATS does not answer: nothing can be decided.
                _ => continue,
            };
            if holder.is_some() {
                free_since.remove(name);
            }
            match holder {
                None => {
                    let away = node
                        .config
                        .home
                        .get(name)
                        .is_some_and(|home| home != node.node_name());
                    let since = *free_since.entry(name.clone()).or_insert_with(Instant::now);
                    if away && since.elapsed() < timing.lease {
                        continue;
                    }
                    let sent = Instant::now();
                    let taken = tokio::time::timeout(
                        timing.renew,
                        node.engine.leases.create(&key, value.clone()),
                    )
                    .await;
                    if let Ok(Ok(revision)) = taken {
                        free_since.remove(name);
                        held.insert(name.clone(), Held { revision, sent });
                        take(&node, name, section, &catalog).await;
                    }
                }
                Some(h) if h == me => {
                    // Ours from before this tick's view (a lost answer): renew from here.
                    if let Ok(Some(e)) = node.engine.leases.entry(&key).await {
                        held.insert(
                            name.clone(),
                            Held {
                                revision: e.revision,
                                sent: Instant::now() - timing.renew,
                            },
                        );
                        take(&node, name, section, &catalog).await;
                    }
                }
                Some(h) => {
                    let current = node.proxy(name).map(|p| p.holder().clone());
                    if current.as_ref() != Some(&h) {
                        mirror(&node, name, section, h, current.is_some()).await;
                    }
                }
            }
        }
    }
}

/// Whether instance `name` has a home node other than this one, and that node is up.
async fn home_is_up(node: &Arc<Node>, name: &str, timing: Timing) -> bool {
    let Some(home) = node.config.home.get(name) else {
        return false;
    };
    if home == node.node_name() {
        return false;
    }
    matches!(
        tokio::time::timeout(timing.renew, node.engine.nodes.entry(home.as_str())).await,
        Ok(Ok(Some(e))) if e.operation == kv::Operation::Put
    )
}

/// `rebalance`: this node stops `name` and frees its lease for its home node, which is up.
async fn give_back(node: &Arc<Node>, name: &str, section: &DriverSection, timing: Timing) {
    node.drained(Duration::from_secs(1)).await;
    let worker = Arc::clone(node);
    let name_owned = name.to_owned();
    let grace = timing.lease / 8;
    let _ = tokio::task::spawn_blocking(move || {
        let how = Removal {
            cause: Some(MOVED_HOME.to_owned()),
            ..Removal::stop(grace)
        };
        let _ = worker.host.tsp.remove_driver_with(&name_owned, how);
        worker.host.tsp.sync();
    })
    .await;
    // What the stop published is out before the instance is given up.
    node.drained(Duration::from_secs(1)).await;
    node.owned
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
    let _ = node.engine.leases.delete(hex(name)).await;
    node.host.set_stopped(name, section, MOVED_HOME);
    tracing::warn!(
        instance = name,
        "Gave a driver instance back to its home node (rebalance)."
    );
}

/// This node took the lease of `name`: its mirror goes (calls end, the owner failed) and the
/// real driver starts here.
async fn take(node: &Arc<Node>, name: &str, section: &DriverSection, catalog: &Arc<Catalog>) {
    // Everything published so far was about the mirror: not this node's to publish.
    node.drained(Duration::from_secs(1)).await;
    node.owned
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_owned());
    let mirrored = node.proxy(name);
    if let Some(proxy) = &mirrored {
        proxy.owner_failed();
    }
    let worker = Arc::clone(node);
    let (name_owned, section, catalog) = (name.to_owned(), section.clone(), Arc::clone(catalog));
    let started = Instant::now();
    let _ = tokio::task::spawn_blocking(move || {
        if mirrored.is_some() {
            let _ = worker
                .host
                .tsp
                .remove_driver_with(&name_owned, Removal::failed(OWNER_FAILED));
        }
        worker.host.start_instance(&name_owned, &section, &catalog);
        worker.host.tsp.sync();
    })
    .await;
    tracing::warn!(
        instance = name,
        node = node.node_name(),
        took_ms = started.elapsed().as_millis() as u64,
        "Took over a driver instance (its lease was free)."
    );
    fail_pending(node, name).await;
}

/// Requests applications submitted on the node that ran `name` before this one and that did
/// not complete there: each completes now with an error, once (a completion the earlier node
/// published has the same message id, so the stream keeps only the first).
async fn fail_pending(node: &Arc<Node>, name: &str) {
    let prefix = format!("{}.", hex(name));
    let Ok(Ok(mut keys)) =
        tokio::time::timeout(Duration::from_secs(2), node.engine.pending.keys()).await
    else {
        tracing::warn!(
            instance = name,
            "Cannot read the requests left pending by the earlier owner."
        );
        return;
    };
    let mut left = Vec::new();
    while let Some(Ok(key)) = futures_util::StreamExt::next(&mut keys).await {
        if key.starts_with(&prefix) {
            left.push(key);
        }
    }
    for key in left {
        let request = key
            .rsplit('.')
            .next()
            .and_then(|r| r.parse::<u64>().ok())
            .map(tapir_core::RequestId);
        let line = match node.engine.pending.get(&key).await {
            Ok(Some(v)) => std::str::from_utf8(&v)
                .ok()
                .and_then(|v| v.parse::<u32>().ok()),
            _ => None,
        };
        if let (Some(request), Some(line)) = (request, line) {
            let event = tapir_tsp::TspEvent::Completed {
                request,
                line: tapir_core::LineId(line),
                result: tapir_tsp::RequestResult::Err(tapir_core::DriverError::new(
                    tapir_core::ErrorKind::Disconnected,
                    format!("the node running line {line} failed before the request completed; its outcome is unknown"),
                )),
            };
            if let Ok(payload) = serde_json::to_vec(&event) {
                let publish = async_nats::jetstream::message::PublishMessage::build()
                    .payload(payload.into())
                    .header(wire::NODE, node.node_name())
                    .header(wire::RUN, node.engine.run.to_string().as_str())
                    .header(wire::SEQ, "0")
                    .header(wire::INSTANCE, hex(name).as_str())
                    .message_id(format!("done.{}", request.0));
                let subject = node.engine.names.event(tapir_core::LineId(line));
                if let Ok(ack) = node.engine.js.send_publish(subject, publish).await {
                    let _ = ack.await;
                }
                tracing::warn!(instance = name, %request, "A request left pending by the failed node completed with an error.");
            }
        }
        let _ = node.engine.pending.purge(&key).await;
    }
}

/// This node lost the lease of `name`: its drivers stop now, before another node can start
/// them. What they publish while stopping is not this node's to publish any more.
async fn fence(node: &Arc<Node>, name: &str, section: &DriverSection, timing: Timing, why: &str) {
    node.owned
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
    let worker = Arc::clone(node);
    let (name_owned, section) = (name.to_owned(), section.clone());
    let grace = timing.lease / 8;
    let _ = tokio::task::spawn_blocking(move || {
        let how = Removal {
            cause: Some(LEASE_LOST.to_owned()),
            ..Removal::stop(grace)
        };
        let _ = worker.host.tsp.remove_driver_with(&name_owned, how);
        worker.host.set_stopped(&name_owned, &section, LEASE_LOST);
    })
    .await;
    tracing::error!(
        instance = name,
        reason = why,
        "Lost the lease of a driver instance: its drivers stopped here."
    );
}

/// Mirrors `name` from `holder` (replacing a mirror of an earlier holder, whose calls end).
async fn mirror(
    node: &Arc<Node>,
    name: &str,
    section: &DriverSection,
    holder: Holder,
    replacing: bool,
) {
    if replacing {
        if let Some(proxy) = node.proxy(name) {
            proxy.owner_failed();
        }
    }
    let worker = Arc::clone(node);
    let (name_owned, section) = (name.to_owned(), section.clone());
    let _ = tokio::task::spawn_blocking(move || {
        if replacing || worker.host.tsp.driver(&name_owned).is_some() {
            let _ = worker
                .host
                .tsp
                .remove_driver_with(&name_owned, Removal::failed(OWNER_FAILED));
        }
        let built = worker.host.tsp.add_driver(&name_owned, |sink| {
            Proxy::build(&worker, &name_owned, holder.clone(), sink)
        });
        match built {
            Ok(_) => worker.host.set_remote(&name_owned, &section, &holder.node),
            Err(error) => {
                tracing::debug!(instance = %name_owned, %error, "Cannot mirror the instance yet.")
            }
        }
        worker.host.tsp.sync();
    })
    .await;
}
