//! One connection's requests into the router: each request marks its connection busy until its
//! response is sent, carries the peer address (`ConnectInfo`), and has the body timeout: a body
//! that has not arrived in time fails the read, and the answer is 408 with the connection
//! closed.

use super::guard::{Conn, Reason};
use super::Endpoint;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The hyper service of one connection.
#[derive(Clone)]
pub(crate) struct Guarded {
    pub(crate) app: Router,
    pub(crate) peer: SocketAddr,
    pub(crate) conn: Arc<Conn>,
    pub(crate) body_timeout: Duration,
    pub(crate) endpoint: Endpoint,
}

impl hyper::service::Service<Request<Incoming>> for Guarded {
    type Response = Response<GuardedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let (busy, serve) = Busy::start(Arc::clone(&self.conn));
        if !serve {
            // The host closed this connection while it waited, just before the head arrived.
            let response = closing_response(self.endpoint);
            return Box::pin(async move {
                Ok(response.map(|inner| GuardedBody { inner, _busy: busy }))
            });
        }
        let late = Arc::new(AtomicBool::new(false));
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(ConnectInfo(self.peer));
        let body = Body::new(TimedBody {
            inner: body,
            deadline: Instant::now() + self.body_timeout,
            timer: None,
            late: Arc::clone(&late),
        });
        let request = Request::from_parts(parts, body);
        let mut app = self.app.clone();
        let endpoint = self.endpoint;
        let timeout = self.body_timeout;
        let conn = Arc::clone(&self.conn);
        Box::pin(async move {
            let response = match tower_service::Service::call(&mut app, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let response = if late.load(Ordering::Relaxed) {
                conn.note(Reason::BodyTimeout);
                body_timeout_response(endpoint, timeout)
            } else {
                response
            };
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                busy.conn.upgraded();
            }
            Ok(response.map(|inner| GuardedBody { inner, _busy: busy }))
        })
    }
}

/// 503 for a request on a connection the host is closing.
fn closing_response(endpoint: Endpoint) -> Response<Body> {
    let message = "the connection was closed to make room; connect again";
    let mut response = match endpoint {
        Endpoint::Api => crate::api::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection_closed",
            message,
        )
        .into_response(),
        Endpoint::Phones => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n")).into_response()
        }
    };
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 408, and the connection closes after it.
fn body_timeout_response(endpoint: Endpoint, timeout: Duration) -> Response<Body> {
    let message = format!(
        "the request body did not arrive within {} s",
        timeout.as_secs()
    );
    let mut response = match endpoint {
        Endpoint::Api => crate::api::error::ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            message,
        )
        .into_response(),
        Endpoint::Phones => (StatusCode::REQUEST_TIMEOUT, format!("{message}\n")).into_response(),
    };
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Marks a connection busy from a request's start until its response body is dropped (sent
/// in full, or abandoned).
struct Busy {
    conn: Arc<Conn>,
}

impl Busy {
    /// The guard, and whether the request may be served.
    fn start(conn: Arc<Conn>) -> (Self, bool) {
        let serve = conn.request_started();
        (Self { conn }, serve)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn.request_finished();
    }
}

/// A response body that keeps its connection busy while it is being sent.
pub(crate) struct GuardedBody {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub(crate) struct BodyTimeout;

/// A request body that fails once the body timeout has passed.
struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    late: Arc<AtomicBool>,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.late.store(true, Ordering::Relaxed);
                        Poll::Ready(Some(Err(Box::new(BodyTimeout))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
