//! Deliveries that cannot be lost: a request's own completion ([`RequestWatch`]), and a
//! follower of the event stream that never skips an event ([`Follower`]).
//!
//! The broadcast of [`Tsp::subscribe`](crate::Tsp::subscribe) is bounded: a subscriber that
//! falls behind is told it lagged and misses events (clients resume from the history or get a
//! gap). That is right for streams to clients, and wrong for the two consumers that must see
//! one particular fact: a caller waiting for its own request's completion, and the host's
//! bookkeeping (forgetting ended calls, counting completions). They get these instead:
//!
//! - a [`RequestWatch`] is a one-shot registered together with the request, under the same lock,
//!   before the driver sees it; it costs nothing for requests nobody watches;
//! - a [`Follower`] gets every event published after it was created, in order, through an
//!   unbounded queue. The event loop never waits for a consumer (it must not: it is the single
//!   publisher), so a follower's consumer must do little per event and keep up; its queue then
//!   stays short.

use crate::{RequestResult, Sequenced};
use tapir_core::{DriverError, ErrorKind};
use tokio::sync::{mpsc, oneshot};

/// The completion of one request, delivered to whoever submitted it with
/// [`Tsp::submit_watched`](crate::Tsp::submit_watched). The `completed` event is published to
/// subscribers as well; this is a private copy that cannot be missed.
#[derive(Debug)]
pub struct RequestWatch {
    rx: oneshot::Receiver<RequestResult>,
}

impl RequestWatch {
    /// Waits for the completion. When the front end stops first, the result is the
    /// `Uninitialized` error every request still pending at shutdown completes with.
    pub async fn result(self) -> RequestResult {
        self.rx.await.unwrap_or_else(|_| stopped())
    }

    /// The completion if it arrived already.
    pub fn try_result(&mut self) -> Option<RequestResult> {
        match self.rx.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(stopped()),
        }
    }
}

fn stopped() -> RequestResult {
    RequestResult::Err(DriverError::new(
        ErrorKind::Uninitialized,
        "the front end stopped before the request completed",
    ))
}

/// The sending half kept with the pending request.
pub(crate) type Waiter = oneshot::Sender<RequestResult>;

/// A new watch and the sender that completes it.
pub(crate) fn watch() -> (Waiter, RequestWatch) {
    let (tx, rx) = oneshot::channel();
    (tx, RequestWatch { rx })
}

/// Every event published after [`Tsp::follow`](crate::Tsp::follow), none skipped.
#[derive(Debug)]
pub struct Follower {
    rx: mpsc::UnboundedReceiver<Sequenced>,
}

impl Follower {
    /// The next event; `None` once the front end has stopped and everything was read.
    pub async fn next(&mut self) -> Option<Sequenced> {
        self.rx.recv().await
    }

    /// The next event if one is queued.
    pub fn try_next(&mut self) -> Option<Sequenced> {
        self.rx.try_recv().ok()
    }
}

/// The front end's side of both: kept in its state, used by the event loop only.
#[derive(Default)]
pub(crate) struct Outlets {
    followers: Vec<mpsc::UnboundedSender<Sequenced>>,
    due: Vec<(Waiter, RequestResult)>,
}

impl Outlets {
    /// Registers a follower; it gets every event passed to [`Outlets::publish`] from now on.
    pub(crate) fn follow(&mut self) -> Follower {
        let (tx, rx) = mpsc::unbounded_channel();
        self.followers.push(tx);
        Follower { rx }
    }

    /// Hands an event to every follower; followers that were dropped are forgotten.
    pub(crate) fn publish(&mut self, event: &Sequenced) {
        self.followers.retain(|f| f.send(event.clone()).is_ok());
    }

    /// Ends every follower (after it has read what was published): the front end stopped.
    pub(crate) fn close(&mut self) {
        self.followers.clear();
    }

    /// Queues a watched request's completion, to be delivered by [`Outlets::deliver`] once the
    /// events of the same report are published.
    pub(crate) fn complete(&mut self, waiter: Waiter, result: RequestResult) {
        self.due.push((waiter, result));
    }

    /// Delivers the queued completions. A watcher that gave up is no error.
    pub(crate) fn deliver(&mut self) {
        for (waiter, result) in self.due.drain(..) {
            let _ = waiter.send(result);
        }
    }
}
