//! The feed: this node reads the cluster's event stream from where it started, in order, and
//! hands each event of an instance it mirrors to that mirror. Its position (the last stream
//! sequence handed on) is what the API reports as `X-Tapir-Seq` in cluster mode.
//!
//! Also the API's own event streams: each client reads the stream from its resume position
//! through an ordered consumer of its own.

use super::node::Node;
use super::proxy::Extra;
use super::wire::{self, unhex};
use crate::api::events::{GapNotice, Item};
use async_nats::jetstream::consumer::{push, DeliverPolicy};
use async_nats::jetstream::Message;
use futures_util::{Stream, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tapir_tsp::{Sequenced, TspEvent};

/// Why a client's stream could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Events after this position are no longer kept; the oldest kept is `oldest`.
    Gap {
        /// The oldest position kept.
        oldest: u64,
    },
    /// NATS did not answer.
    Unavailable(String),
}

async fn consumer(node: &Node, from: u64) -> Result<push::Ordered, async_nats::Error> {
    let stream = node
        .engine
        .js
        .get_stream(node.engine.names.stream())
        .await?;
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: node.engine.client.new_inbox(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            ..Default::default()
        })
        .await?;
    Ok(consumer.messages().await?)
}

/// Reads the stream for ever (re-opening it after NATS comes back).
pub async fn run(node: Arc<Node>) {
    loop {
        let from = node.position.load(Ordering::Acquire) + 1;
        match consumer(&node, from).await {
            Ok(mut messages) => {
                while let Some(message) = messages.next().await {
                    match message {
                        Ok(message) => hand_on(&node, &message),
                        Err(error) => {
                            tracing::warn!(%error, "Reading the cluster's stream failed; reading again.");
                            break;
                        }
                    }
                }
            }
            Err(error) => {
                tracing::debug!(%error, "Cannot read the cluster's stream yet.");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.headers.as_ref()?.get(name).map(|v| v.as_str())
}

fn hand_on(node: &Node, message: &Message) {
    let Ok(info) = message.info() else { return };
    let position = info.stream_sequence;
    let instance = header(message, wire::INSTANCE).and_then(unhex);
    let run = header(message, wire::RUN).and_then(|v| v.parse::<u64>().ok());
    let seq = header(message, wire::SEQ).and_then(|v| v.parse::<u64>().ok());
    if let (Some(instance), Some(run), Some(seq)) = (instance, run, seq) {
        if let Some(proxy) = node.proxy(&instance) {
            if let Ok(event) = serde_json::from_slice::<TspEvent>(&message.payload) {
                let extra = Extra {
                    line: header(message, wire::LINE).and_then(|j| serde_json::from_str(j).ok()),
                    call: header(message, wire::CALL).and_then(|j| serde_json::from_str(j).ok()),
                };
                proxy.on_event(run, seq, event, extra);
            }
        }
    }
    node.position.fetch_max(position, Ordering::AcqRel);
    node.moved.notify_waiters();
}

/// A client's stream of events after position `after` (from this node's position when
/// `None`), with the stream's sequence as each event's `seq`.
///
/// # Errors
/// [`OpenError::Gap`] when events after `after` are no longer kept.
pub async fn client_stream(
    node: Arc<Node>,
    after: Option<u64>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<impl Stream<Item = Item> + Send + 'static, OpenError> {
    let (first, last) = node
        .engine
        .stream_bounds()
        .await
        .map_err(|e| OpenError::Unavailable(e.to_string()))?;
    let after = after.unwrap_or_else(|| node.position.load(Ordering::Acquire));
    // An empty stream says first = last + 1; anything between is kept.
    if after + 1 < first && after < last {
        return Err(OpenError::Gap { oldest: first });
    }
    let messages = consumer(&node, after + 1)
        .await
        .map_err(|e| OpenError::Unavailable(e.to_string()))?;
    let items = messages
        .scan(after, |last, message| {
            let item = match message {
                Ok(message) => {
                    let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                    match serde_json::from_slice::<TspEvent>(&message.payload) {
                        Ok(event) if seq > *last => {
                            *last = seq;
                            Some(Item::Event(Box::new(Sequenced { seq, event })))
                        }
                        _ => None,
                    }
                }
                // The stream went away under the consumer: the client resumes from its last
                // position (or learns of a gap then).
                Err(_) => Some(Item::Gap(GapNotice {
                    event: "gap",
                    after: *last,
                    oldest: *last + 1,
                })),
            };
            std::future::ready(Some(item))
        })
        .filter_map(std::future::ready);
    let mut ended = false;
    let items = items.take_until(Box::pin(stopped)).take_while(move |item| {
        // A gap notice is the last item.
        let go = !ended;
        ended = matches!(item, Item::Gap(_));
        std::future::ready(go)
    });
    Ok(items)
}
