//! The event stream: every line, call and completion event as JSON with its `seq`, over
//! Server-Sent Events (`GET /v1/events`) or WebSocket (`GET /v1/events/ws`).
//!
//! Resume with `?after=SEQ` (or SSE's `Last-Event-ID`): the kept events after that position
//! come first, then live ones, with nothing missed or repeated. When the position is older
//! than the kept history the request is refused with 410 `history_gap` (reload the state with
//! `GET /v1/lines` and `/v1/calls`, whose `X-Tapir-Seq` header says where to resume). A client
//! that falls behind while connected is caught up from the history; if even that is gone, it
//! gets one `gap` message and the stream ends.

use super::error::ApiError;
use super::extract::ApiQuery;
use super::ApiState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt, SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_tsp::{Sequenced, Tsp};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// `?after=SEQ`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Resume after this position.
    pub after: Option<u64>,
}

/// One item of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An event.
    Event(Box<Sequenced>),
    /// Events were lost; the stream ends after this.
    Gap(GapNotice),
}

/// What a client is told when it lost events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GapNotice {
    /// Always `"gap"`.
    pub event: &'static str,
    /// The last position the client got.
    pub after: u64,
    /// The oldest position still kept.
    pub oldest: u64,
}

/// Events that come faster than this go to a client together: when a stream had to wait for
/// its next event and its previous wait ended less than this ago, it holds the event until
/// then, so the ones that follow join it in one write. A stream whose events come further apart
/// is never held. Measured with the `versus_kamailio` bench (one reader, six events a call):
/// writes to the reader fell from about 2.4 to 0.5 per call, CPU per call by about 15 %.
const COALESCE: Duration = Duration::from_millis(5);

struct Cursor {
    tsp: Arc<Tsp>,
    backlog: VecDeque<Sequenced>,
    rx: broadcast::Receiver<Sequenced>,
    last: u64,
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
    /// When the latest wait for an event ended.
    woke: Option<Instant>,
}

/// The items of one client's stream.
pub type Items = Pin<Box<dyn Stream<Item = Item> + Send + 'static>>;

/// Opens a stream at `after` (or at the present): the front end's events, or on a cluster
/// node the cluster's stream (positions are its sequence numbers, the same on every node).
///
/// # Errors
/// 410 `history_gap` when events after `after` are no longer kept; 503 when the cluster's
/// stream cannot be read.
pub async fn open(state: &ApiState, after: Option<u64>) -> Result<Items, ApiError> {
    if let Some(cluster) = &state.cluster {
        let opened =
            crate::cluster::feed::client_stream(Arc::clone(cluster.node()), after, state.stopped())
                .await;
        return match opened {
            Ok(items) => Ok(Box::pin(items)),
            Err(crate::cluster::feed::OpenError::Gap { oldest }) => Err(ApiError::new(
                StatusCode::GONE,
                "history_gap",
                format!("events before position {oldest} are no longer kept"),
            )
            .with("after", after.unwrap_or(0))
            .with("oldest", oldest)),
            Err(crate::cluster::feed::OpenError::Unavailable(why)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                format!("the cluster's event stream cannot be read now: {why}"),
            )),
        };
    }
    Ok(Box::pin(open_local(state, after)?))
}

fn open_local(
    state: &ApiState,
    after: Option<u64>,
) -> Result<impl Stream<Item = Item> + Send + 'static, ApiError> {
    let tsp = Arc::clone(&state.host.tsp);
    let (backlog, rx, last) = match after {
        None => {
            // From the present: the position now, taken atomically with the subscription
            // (when the history is off and an event slips in between, plain live events).
            let now = tsp.last_seq();
            match tsp.resume(now) {
                Ok((missed, rx)) => (missed, rx, now),
                Err(_) => (Vec::new(), tsp.subscribe(), now),
            }
        }
        Some(after) => {
            let (missed, rx) = tsp.resume(after).map_err(|gap| {
                ApiError::new(StatusCode::GONE, "history_gap", gap.to_string())
                    .with("after", after)
                    .with("oldest", gap.oldest)
            })?;
            (missed, rx, after)
        }
    };
    let cursor = Cursor {
        tsp,
        backlog: backlog.into(),
        rx,
        last,
        stopped: Box::pin(state.stopped()),
        done: false,
        woke: None,
    };
    Ok(futures_util::stream::unfold(cursor, next))
}

async fn next(mut c: Cursor) -> Option<(Item, Cursor)> {
    loop {
        if c.done {
            return None;
        }
        if let Some(e) = c.backlog.pop_front() {
            if e.seq > c.last {
                c.last = e.seq;
                return Some((Item::Event(Box::new(e)), c));
            }
            continue;
        }
        let received = match c.rx.try_recv() {
            Ok(e) => Ok(e),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => {
                // Nothing ready: what the client was given so far is written now.
                let r = tokio::select! {
                    _ = &mut c.stopped => return None,
                    r = c.rx.recv() => r,
                };
                let hold = c.woke.map(|w| w + COALESCE).filter(|u| *u > Instant::now());
                if let Some(until) = hold {
                    tokio::select! {
                        _ = &mut c.stopped => return None,
                        () = tokio::time::sleep_until(until.into()) => {}
                    }
                }
                c.woke = Some(Instant::now());
                r
            }
        };
        match received {
            Ok(e) if e.seq > c.last => {
                c.last = e.seq;
                return Some((Item::Event(Box::new(e)), c));
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => match c.tsp.resume(c.last) {
                Ok((missed, rx)) => {
                    c.backlog = missed.into();
                    c.rx = rx;
                }
                Err(gap) => {
                    c.done = true;
                    let notice = GapNotice {
                        event: "gap",
                        after: c.last,
                        oldest: gap.oldest,
                    };
                    return Some((Item::Gap(notice), c));
                }
            },
            Err(RecvError::Closed) => return None,
        }
    }
}

fn to_json(item: &Item) -> String {
    let text = match item {
        Item::Event(e) => serde_json::to_string(e),
        Item::Gap(g) => serde_json::to_string(g),
    };
    // Serializing these plain data types cannot fail; an empty object keeps the stream valid.
    text.unwrap_or_else(|_| "{}".to_owned())
}

/// `GET /v1/events`: Server-Sent Events, `id:` is the event's `seq`.
pub async fn sse(
    State(state): State<Arc<ApiState>>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = match query.after {
        Some(a) => Some(a),
        None => match headers.get("last-event-id") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| ApiError::bad_request("Last-Event-ID is not a number"))?,
            ),
        },
    };
    let stream = open(&state, after).await?.map(|item| {
        let event = match &item {
            Item::Event(e) => Event::default().id(e.seq.to_string()),
            Item::Gap(_) => Event::default().event("gap"),
        };
        Ok::<_, Infallible>(event.data(to_json(&item)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /v1/events/ws`: one JSON text message per event.
pub async fn ws(
    State(state): State<Arc<ApiState>>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // The resume position is checked first: a gap is the more useful answer.
    let stream = open(&state, query.after).await?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            e.body_text(),
        )
    })?;
    Ok(upgrade.on_upgrade(move |socket| pump(socket, stream)))
}

async fn pump(mut socket: WebSocket, stream: impl Stream<Item = Item> + Send + 'static) {
    let mut stream = Box::pin(stream);
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(item) => {
                    // What is ready now goes out in one write.
                    let (mut ready, mut ended) = (vec![item], false);
                    loop {
                        match stream.next().now_or_never() {
                            Some(Some(more)) => ready.push(more),
                            Some(None) => {
                                ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    for item in &ready {
                        if socket.feed(Message::Text(to_json(item).into())).await.is_err() {
                            return;
                        }
                    }
                    if socket.flush().await.is_err() {
                        return;
                    }
                    if ended {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                }
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Pings are answered by the library; anything else from the client is ignored.
                Some(Ok(_)) => {}
            },
        }
    }
}
