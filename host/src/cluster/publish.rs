//! The publisher: every event of the lines this node runs goes from the front end (through a
//! lossless follower) onto the cluster's stream, in order, with the headers mirrors need. The
//! stream's sequence is the cluster-wide position of each event.
//!
//! Besides the lines it runs, a node publishes the completions of requests it numbered (its
//! run's id range) that its front end completed itself: a Drop of a Disconnected call answered
//! in place, and requests whose owner failed. Completions carry a message id (`done.{request}`),
//! so when the owner's completion is in the stream already, the server drops the second one.

use super::node::Node;
use super::wire::{self, hex, run_of};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tapir_core::CallId;
use tapir_tsp::{Follower, Sequenced, TspEvent};

/// Acknowledgements awaited at once before the publisher waits for the oldest.
const IN_FLIGHT: usize = 1024;

/// Runs until the front end stops.
pub async fn run(node: Arc<Node>, mut follower: Follower) {
    let mut acks: FuturesOrdered<<PublishAckFuture as IntoFuture>::IntoFuture> =
        FuturesOrdered::new();
    let mut described: HashSet<CallId> = HashSet::new();
    loop {
        let event = tokio::select! {
            event = follower.next() => match event {
                Some(event) => event,
                None => break,
            },
            Some(ack) = acks.next(), if !acks.is_empty() => {
                if let Err(error) = ack {
                    tracing::warn!(%error, "An event did not reach the cluster's stream.");
                }
                continue;
            }
        };
        let seq = event.seq;
        if let Some(message) = message(&node, &mut described, &event) {
            let (subject, publish) = message;
            match node.engine.js.send_publish(subject, publish).await {
                Ok(ack) => acks.push_back(ack.into_future()),
                Err(error) => {
                    tracing::warn!(%error, seq, "An event could not be sent to the cluster's stream.")
                }
            }
            while acks.len() >= IN_FLIGHT {
                if let Some(Err(error)) = acks.next().await {
                    tracing::warn!(%error, "An event did not reach the cluster's stream.");
                }
            }
        }
        node.published.store(seq, Ordering::Release);
    }
}

/// The stream message for a front-end event, if this node publishes it.
fn message(
    node: &Node,
    described: &mut HashSet<CallId>,
    event: &Sequenced,
) -> Option<(String, PublishMessage)> {
    let line = event.event.line();
    let instance = node.ids.instance_of(line)?;
    let owned = node.owns(&instance);
    let completion = match &event.event {
        TspEvent::Completed { request, .. } => Some(*request),
        _ => None,
    };
    let numbered_here = completion.is_some_and(|r| run_of(r.0) == node.engine.run);
    if let (Some(request), true) = (completion, owned) {
        let noted = node
            .noted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request);
        if noted {
            let pending = node.engine.pending.clone();
            let key = wire::pending_key(&instance, request);
            tokio::spawn(async move {
                let _ = pending.purge(key).await;
            });
        }
    }
    if !owned && !numbered_here {
        return None;
    }
    let payload = serde_json::to_vec(&event.event).ok()?;
    let mut publish = PublishMessage::build()
        .payload(payload.into())
        .header(wire::NODE, node.node_name())
        .header(wire::RUN, node.engine.run.to_string().as_str())
        .header(wire::SEQ, event.seq.to_string().as_str())
        .header(wire::INSTANCE, hex(&instance).as_str());
    match &event.event {
        TspEvent::LineCreated { line, .. } => {
            if let Some(snapshot) = node.host.tsp.line(*line) {
                if let Ok(json) = serde_json::to_string(&snapshot) {
                    publish = publish.header(wire::LINE, json.as_str());
                }
            }
        }
        TspEvent::NewCall { call, .. } => {
            described.insert(*call);
        }
        TspEvent::CallState { call, state, .. } => {
            if described.insert(*call) {
                if let Some(snapshot) = node.host.tsp.call(*call) {
                    if let Ok(json) = serde_json::to_string(&snapshot.info) {
                        publish = publish.header(wire::CALL, json.as_str());
                    }
                }
            }
            if state.is_idle() {
                described.remove(call);
            }
        }
        _ => {}
    }
    if let Some(request) = completion {
        publish = publish.message_id(format!("done.{}", request.0));
    }
    Some((node.engine.names.event(line), publish))
}
