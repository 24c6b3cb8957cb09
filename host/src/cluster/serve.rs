//! What a node answers other nodes (`tapir.{cluster}.node.{node}.*`): forwarded requests for
//! lines it runs, snapshots of its instances for new mirrors, its phone tables, phone-table
//! operations and phone callbacks that reached another node.

use super::node::Node;
use super::wire::{DeviceReply, DeviceRequest, DevicesReply, Forward, ForwardReply, SnapshotReply};
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use tapir_core::{DriverError, ErrorKind, HttpCallback, HttpReply};

/// Answers until the connection closes for good.
///
/// # Errors
/// When the subscription cannot be made.
pub async fn run(node: Arc<Node>) -> Result<(), async_nats::SubscribeError> {
    let subject = node.engine.names.node(node.node_name(), "*");
    let mut questions = node.engine.client.subscribe(subject).await?;
    while let Some(question) = questions.next().await {
        let Some(reply) = question.reply.clone() else {
            continue;
        };
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            let what = question
                .subject
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            let payload = question.payload.to_vec();
            let worker = Arc::clone(&node);
            let answer = tokio::task::spawn_blocking(move || answer(&worker, &what, &payload))
                .await
                .unwrap_or_default();
            if let Err(error) = node.engine.client.publish(reply, answer.into()).await {
                tracing::debug!(%error, "Could not answer another node.");
            }
        });
    }
    Ok(())
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn not_owner(node: &Node, instance: &str) -> DriverError {
    DriverError::new(
        ErrorKind::Disconnected,
        format!("{} does not run {instance:?} (any more)", node.node_name()),
    )
}

fn bad(what: &str) -> DriverError {
    DriverError::new(ErrorKind::InvalidParameter, format!("a garbled {what}"))
}

/// The answer to one question, as JSON.
fn answer(node: &Node, what: &str, payload: &[u8]) -> Vec<u8> {
    let tsp = &node.host.tsp;
    match what {
        "submit" => {
            let reply: ForwardReply = match serde_json::from_slice::<Forward>(payload) {
                Err(_) => Err(bad("forwarded request")),
                Ok(f) if !node.owns(&f.instance) => Err(not_owner(node, &f.instance)),
                Ok(f) => tsp.submit_forwarded(f.line, f.id, f.request).map(|_| ()),
            };
            json(&reply)
        }
        "snapshot" => match serde_json::from_slice::<String>(payload) {
            Ok(instance) if node.owns(&instance) => json(&SnapshotReply {
                run: node.engine.run,
                snapshot: tsp.snapshot(Some(&instance)),
            }),
            // No answer a mirror could take: it asks again.
            _ => json(&()),
        },
        "devices" => {
            let reply: DevicesReply = match serde_json::from_slice::<String>(payload) {
                Ok(instance) if node.owns(&instance) => tsp
                    .driver(&instance)
                    .map(|d| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.devices()))
                            .unwrap_or_default()
                    })
                    .ok_or_else(|| not_owner(node, &instance)),
                Ok(instance) => Err(not_owner(node, &instance)),
                Err(_) => Err(bad("phone table request")),
            };
            json(&reply)
        }
        "action" => {
            let reply: DeviceReply = match serde_json::from_slice::<DeviceRequest>(payload) {
                Ok(r) if node.owns(&r.instance) => match tsp.driver(&r.instance) {
                    Some(d) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        d.device_action(&r.device, r.action)
                    }))
                    .unwrap_or_else(|_| Err(DriverError::failed("the driver panicked"))),
                    None => Err(not_owner(node, &r.instance)),
                },
                Ok(r) => Err(not_owner(node, &r.instance)),
                Err(_) => Err(bad("phone action")),
            };
            json(&reply)
        }
        "callback" => {
            let reply = match serde_json::from_slice::<(String, HttpCallback)>(payload) {
                Ok((instance, request)) if node.owns(&instance) => match tsp.driver(&instance) {
                    Some(d) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        d.http_callback(request)
                    }))
                    .unwrap_or_else(|_| HttpReply::text(500, "driver failed\n")),
                    None => HttpReply::text(503, "instance not running here\n"),
                },
                _ => HttpReply::text(503, "instance not running here\n"),
            };
            json(&reply)
        }
        _ => json(&()),
    }
}
