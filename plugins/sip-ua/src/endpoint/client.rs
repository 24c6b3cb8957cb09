//! Where the endpoint task delivers a client transaction's events: a channel of the
//! transaction's own ([`super::Endpoint::request`]), or the route of the call it belongs to
//! ([`super::Endpoint::request_routed`]), so that a call leg gets its responses, its peer's
//! requests and the end of each transaction from one channel instead of one per transaction.

use super::{ClientEvent, Incoming};
use tokio::sync::mpsc;

/// A client transaction's receiver, as the endpoint task holds it.
pub(super) enum ClientSink {
    /// The transaction's own channel: the end is the channel closing.
    Own(mpsc::Sender<ClientEvent>),
    /// A call's route: events arrive as [`Incoming::Client`] with the caller's `id`, and the
    /// end as an event of `None`.
    Routed {
        sink: mpsc::Sender<Incoming>,
        id: u64,
    },
}

impl ClientSink {
    /// Hands over an event; dropped when the receiver is full or gone (as a datagram would be:
    /// the transaction's own timers still end it).
    pub(super) fn send(&self, event: ClientEvent) {
        match self {
            ClientSink::Own(tx) => {
                let _ = tx.try_send(event);
            }
            ClientSink::Routed { sink, id } => {
                let _ = sink.try_send(Incoming::Client {
                    id: *id,
                    event: Some(event),
                });
            }
        }
    }

    /// True once nobody receives any more.
    pub(super) fn is_closed(&self) -> bool {
        match self {
            ClientSink::Own(tx) => tx.is_closed(),
            ClientSink::Routed { sink, .. } => sink.is_closed(),
        }
    }

    /// Says the transaction ended. A route that is full right now gets the end later: it is
    /// returned, to be offered again with [`Ended::retry`] (a leg must learn of every end, as
    /// it learned of a closed channel before).
    pub(super) fn end(self) -> Option<Ended> {
        match self {
            ClientSink::Own(_) => None,
            ClientSink::Routed { sink, id } => Ended { sink, id }.retry(),
        }
    }
}

/// The end of a routed transaction not delivered yet (its route was full).
pub(super) struct Ended {
    sink: mpsc::Sender<Incoming>,
    id: u64,
}

impl Ended {
    /// Offers the end again; `Some` while the route is still full.
    pub(super) fn retry(self) -> Option<Ended> {
        match self.sink.try_send(Incoming::Client {
            id: self.id,
            event: None,
        }) {
            Err(mpsc::error::TrySendError::Full(_)) => Some(self),
            // Delivered, or the leg is gone.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_routed_end_waits_for_room_and_is_delivered_once() {
        let (sink, mut rx) = mpsc::channel(1);
        let routed = ClientSink::Routed {
            sink: sink.clone(),
            id: 7,
        };
        routed.send(ClientEvent::Timeout);
        // The route is full: the end is kept, not lost.
        let pending = routed.end().expect("kept while full");
        let pending = pending.retry().expect("still full");
        match rx.recv().await {
            Some(Incoming::Client {
                id: 7,
                event: Some(ClientEvent::Timeout),
            }) => {}
            other => panic!("expected the timeout, got {other:?}"),
        }
        assert!(pending.retry().is_none(), "delivered once there is room");
        match rx.recv().await {
            Some(Incoming::Client { id: 7, event: None }) => {}
            other => panic!("expected the end, got {other:?}"),
        }
        assert!(rx.try_recv().is_err(), "nothing more");
    }

    #[tokio::test]
    async fn an_own_channel_ends_by_closing() {
        let (tx, mut rx) = mpsc::channel(4);
        let own = ClientSink::Own(tx);
        own.send(ClientEvent::Timeout);
        assert!(own.end().is_none());
        assert_eq!(rx.recv().await, Some(ClientEvent::Timeout));
        assert_eq!(rx.recv().await, None);
    }
}
