//! The host's phone-facing endpoint, for tests that run a driver without the host: an HTTP
//! listener on 127.0.0.1 that hands `/phones/{instance}/...` to the driver's
//! [`PhoneDriver::http_callback`] (snom Action URLs), with the caller's address as its peer.
//!
//! The listener starts first (its URL goes into the driver's configuration), the driver is
//! attached once built; until then callbacks get 503. It runs on a runtime of its own and
//! stops when dropped. [`Shared`] lets a test hand the front end a driver it keeps too.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tapir_core::{
    DeviceAction, DeviceActionOutcome, DeviceStatus, DriverError, HttpCallback, HttpReply, LineKey,
    PhoneDriver, RequestEnvelope,
};

/// Connections the kernel queues before they are accepted: deep, as a production listener
/// for thousands of phones has it (tokio's default of 1,024 drops SYNs when many phones
/// report at once, and a dropped SYN costs a second).
const BACKLOG: u32 = 4096;

type Slot = Arc<OnceLock<Arc<dyn PhoneDriver>>>;

#[derive(Clone)]
struct Route {
    slot: Slot,
    prefix: String,
}

/// A running phone-callback listener for one driver instance.
pub struct PhoneCallbacks {
    /// Serves the listener; dropping it stops the listener.
    _runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    route: Route,
}

impl PhoneCallbacks {
    /// Starts the listener for the driver instance `instance` on `127.0.0.1:0`.
    ///
    /// # Panics
    /// When the runtime or the listener cannot be set up (a broken test machine).
    pub fn start(instance: &str) -> PhoneCallbacks {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("phone-callbacks")
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => panic!("phone callbacks: no runtime: {e}"),
        };
        let listener = {
            let _entered = runtime.enter();
            let bound = tokio::net::TcpSocket::new_v4().and_then(|s| {
                s.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
                s.listen(BACKLOG)
            });
            match bound {
                Ok(l) => l,
                Err(e) => panic!("phone callbacks: cannot listen on 127.0.0.1: {e}"),
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("phone callbacks: no local address: {e}"),
        };
        let route = Route {
            slot: Arc::new(OnceLock::new()),
            prefix: format!("/phones/{instance}"),
        };
        let app = axum::Router::new()
            .fallback(deliver)
            .with_state(route.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PhoneCallbacks {
            _runtime: runtime,
            addr,
            route,
        }
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/phones`: what the host hands drivers as the callback base
    /// (`TspConfig::callback_base`); the front end adds the instance.
    pub fn callback_base(&self) -> String {
        format!("http://{}/phones", self.addr)
    }

    /// `http://127.0.0.1:PORT/phones/{instance}`: the instance's own base (a driver's
    /// `public_url`).
    pub fn base(&self) -> String {
        format!("http://{}{}", self.addr, self.route.prefix)
    }

    /// Hands callbacks to `driver` from now on (the first driver attached stays).
    pub fn attach(&self, driver: Arc<dyn PhoneDriver>) {
        let _ = self.route.slot.set(driver);
    }
}

async fn deliver(
    State(route): State<Route>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(driver) = route.slot.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    };
    let Some(path) = uri.path().strip_prefix(route.prefix.as_str()) else {
        return (StatusCode::NOT_FOUND, String::new());
    };
    let request = HttpCallback {
        method: method.as_str().to_owned(),
        path: if path.is_empty() { "/" } else { path }.to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        peer: peer.to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    // The driver's callback is synchronous (and may lock): off the async workers, as the host
    // runs it.
    match tokio::task::spawn_blocking(move || driver.http_callback(request)).await {
        Ok(reply) => (
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            reply.body,
        ),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    }
}

/// A driver the test keeps while the front end holds it as a boxed trait object: every call
/// is passed on to the shared driver.
pub struct Shared<D: ?Sized>(pub Arc<D>);

impl<D: PhoneDriver + ?Sized> PhoneDriver for Shared<D> {
    fn submit(&self, request: RequestEnvelope) -> Result<(), DriverError> {
        self.0.submit(request)
    }

    fn http_callback(&self, request: HttpCallback) -> HttpReply {
        self.0.http_callback(request)
    }

    fn devices(&self) -> Vec<DeviceStatus> {
        self.0.devices()
    }

    fn device_action(
        &self,
        device: &str,
        action: DeviceAction,
    ) -> Result<DeviceActionOutcome, DriverError> {
        self.0.device_action(device, action)
    }

    fn line_opened(&self, line: &LineKey) {
        self.0.line_opened(line)
    }

    fn shutdown(&self) {
        self.0.shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Mutex;

    /// Remembers the callbacks it gets; answers 200 with the path.
    #[derive(Default)]
    struct Echo(Mutex<Vec<HttpCallback>>);

    impl PhoneDriver for Echo {
        fn submit(&self, _: RequestEnvelope) -> Result<(), DriverError> {
            Err(DriverError::unavailable("no requests"))
        }
        fn http_callback(&self, request: HttpCallback) -> HttpReply {
            let path = request.path.clone();
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(request);
            HttpReply::text(200, &path)
        }
        fn shutdown(&self) {}
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Phone: snom\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        answer
    }

    #[test]
    fn callbacks_reach_the_attached_driver_with_path_query_and_peer() {
        let listener = PhoneCallbacks::start("office");
        assert!(listener.base().ends_with("/phones/office"));
        assert!(get(listener.addr(), "/phones/office/a/x?y=1").starts_with("HTTP/1.1 503"));
        let echo = Arc::new(Echo::default());
        listener.attach(echo.clone());
        let answer = get(listener.addr(), "/phones/office/a/1/s/incoming?mac=00&n=1");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("/a/1/s/incoming"), "{answer}");
        assert!(get(listener.addr(), "/phones/other/a").starts_with("HTTP/1.1 404"));
        let seen = echo.0.lock().expect("lock").clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].query, "mac=00&n=1");
        assert!(seen[0].peer.starts_with("127.0.0.1:"), "{}", seen[0].peer);
        assert!(seen[0]
            .headers
            .iter()
            .any(|(k, v)| k == "x-phone" && v == "snom"));
    }
}
