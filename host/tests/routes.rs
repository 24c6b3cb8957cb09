//! The API in process, with a tiny driver of its own that has a phone: the OpenAPI document
//! against the real routes, the phone table, and the phone-callback metrics.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::web::{call, client};
use tapir_core::{
    Configuration, Connection, DeviceStatus, DriverError, DriverEvent, HttpCallback, HttpReply,
    LineCaps, LineInfo, LineKey, PhoneDriver, RequestEnvelope, SharedSink,
};
use tapir_host::api::{self, ApiState};
use tapir_host::config::Config;
use tapir_host::host::Host;
use tapir_tsp::{Tsp, TspConfig};

/// A driver with one line and one phone; refuses every request.
struct Desk;

impl PhoneDriver for Desk {
    fn submit(&self, _request: RequestEnvelope) -> Result<(), DriverError> {
        Err(DriverError::unavailable(
            "the desk driver takes no requests",
        ))
    }

    fn http_callback(&self, request: HttpCallback) -> HttpReply {
        if request.path == "/ok" {
            HttpReply::text(200, "thanks\n")
        } else {
            HttpReply::text(400, "what?\n")
        }
    }

    fn devices(&self) -> Vec<DeviceStatus> {
        vec![DeviceStatus {
            key: "000413A1B2C3".into(),
            model: Some("snom D785".into()),
            ip: Some("192.0.2.7".into()),
            connection: Connection::Connected,
            configuration: Configuration::Correct,
            lines: vec![LineKey::new("desk-1")],
            ..DeviceStatus::default()
        }]
    }

    fn shutdown(&self) {}
}

fn desk(sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
    sink.event(DriverEvent::LineCreated {
        info: LineInfo {
            key: LineKey::new("desk-1"),
            name: "Desk 1".into(),
            caps: LineCaps::default(),
            in_service: true,
        },
    });
    Ok(Box::new(Desk))
}

struct Served {
    /// The desk driver's sink, to report on its line.
    sink: SharedSink,
    base: String,
    phones: String,
    state: Arc<ApiState>,
}

async fn serve() -> Served {
    serve_with(TspConfig::default()).await
}

async fn serve_with(config: TspConfig) -> Served {
    let tsp = Arc::new(Tsp::new(config));
    let mut kept = None;
    tsp.add_driver("desk", |sink| {
        kept = Some(Arc::clone(&sink));
        desk(sink)
    })
    .expect("driver builds");
    let sink = kept.expect("the desk was built");
    tsp.sync();
    let host = Arc::new(Host::around(
        Arc::clone(&tsp),
        vec![("broken".into(), "no such plugin".into())],
    ));
    let state = Arc::new(ApiState::new(host, &Config::empty()));
    api::pump::spawn(Arc::clone(&tsp), Duration::from_secs(1));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = api::router(Arc::clone(&state));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let phones_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let phones = format!("http://{}", phones_listener.local_addr().expect("addr"));
    let app = tapir_host::phones::router(tsp);
    tokio::spawn(async move {
        let _ = axum::serve(
            phones_listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    Served {
        sink,
        base,
        phones,
        state,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_names_exactly_the_routes() {
    let served = serve().await;
    let table = api::table(Arc::clone(&served.state));
    let mut routes: Vec<(String, String)> = table
        .routes
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    routes.sort();
    let documented = api::openapi::documented_routes().expect("document parses");
    let missing: Vec<_> = routes.iter().filter(|r| !documented.contains(r)).collect();
    let extra: Vec<_> = documented.iter().filter(|r| !routes.contains(r)).collect();
    assert!(
        missing.is_empty(),
        "routes not in openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "openapi.json names routes that do not exist: {extra:?}"
    );

    // And the table is what the server routes: every documented route is reached.
    let http = client();
    for (method, path) in &documented {
        let path = path
            .replace("{line}", "0")
            .replace("{address}", "0")
            .replace("{call}", "424242");
        let url = format!("{}{path}", served.base);
        let a = if path == "/v1/events" {
            // A stream: only the head is read.
            let response = http.get(&url).send().await.expect("answers");
            assert_eq!(response.status(), 200);
            continue;
        } else {
            call(&http, method, &url, None, None).await
        };
        assert_ne!(a.body["error"]["code"], "no_route", "{method} {path}");
        assert_ne!(a.status, 405, "{method} {path}");
    }
    let doc = call(
        &http,
        "GET",
        &format!("{}/v1/openapi.json", served.base),
        None,
        None,
    )
    .await;
    assert_eq!(doc.body["openapi"], "3.0.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_table_lists_every_driver_device_and_failed_instances() {
    let served = serve().await;
    let http = client();
    let a = call(
        &http,
        "GET",
        &format!("{}/v1/phones", served.base),
        None,
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let phone = &a.body["phones"][0];
    assert_eq!(phone["driver"], "desk");
    assert_eq!(phone["key"], "000413A1B2C3");
    assert_eq!(phone["model"], "snom D785");
    assert_eq!(phone["connection"], "connected");
    assert_eq!(phone["lines"][0], "desk-1");
    assert_eq!(a.body["failed_drivers"][0]["driver"], "broken");
    // An operation the line does not offer is refused with a JSON error.
    let refused = call(
        &http,
        "PUT",
        &format!("{}/v1/lines/0/addresses/0/dnd", served.base),
        None,
        Some(("application/json", r#"{"enabled": true}"#)),
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "operation_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_callbacks_are_counted_by_reply() {
    let served = serve().await;
    let http = client();
    for path in [
        "/phones/desk/ok",
        "/phones/desk/nonsense",
        "/phones/nobody/x",
    ] {
        call(
            &http,
            "GET",
            &format!("{}{path}", served.phones),
            None,
            None,
        )
        .await;
    }
    let metrics = call(
        &http,
        "GET",
        &format!("{}/metrics", served.base),
        None,
        None,
    )
    .await;
    let value = |name: &str| -> f64 {
        metrics
            .text
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        value("tapir_phone_callbacks_total{result=\"accepted\"}") >= 1.0,
        "{}",
        metrics.text
    );
    assert!(
        value("tapir_phone_callbacks_total{result=\"rejected\"}") >= 2.0,
        "{}",
        metrics.text
    );
    assert!(value("tapir_driver_instances{state=\"failed\"}") >= 1.0);
    // The phone endpoint never serves the API.
    let api_there = call(
        &http,
        "GET",
        &format!("{}/v1/lines", served.phones),
        None,
        None,
    )
    .await;
    assert_eq!(api_there.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_falls_behind_the_history_gets_a_gap_and_ends() {
    use futures_util::StreamExt;
    let served = serve_with(TspConfig {
        history: 8,
        ..TspConfig::default()
    })
    .await;
    let tsp = Arc::clone(&served.state.host.tsp);
    // The pump opens the line; service changes are published only for open lines.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tsp.lines().first().is_none_or(|l| l.opens == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the line was never opened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sink = Arc::clone(&served.sink);
    let mut stream = Box::pin(api::events::open(&served.state, None).await.expect("opens"));
    let start = tsp.last_seq();
    // More events than the channel and the history hold, while the client reads nothing.
    for i in 0..40 {
        let line = LineKey::new("desk-1");
        sink.event(if i % 2 == 0 {
            DriverEvent::LineOutOfService {
                line,
                reason: "unplugged".into(),
            }
        } else {
            DriverEvent::LineInService { line }
        });
    }
    tsp.sync();
    assert!(tsp.last_seq() >= start + 40);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an item in time")
        .expect("an item");
    match first {
        api::events::Item::Gap(gap) => {
            assert_eq!(gap.after, start);
            assert!(gap.oldest > start + 1, "{gap:?}");
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the end in time");
    assert!(end.is_none(), "the stream ends after a gap");

    // A client that keeps up gets every event in order, from the present.
    let mut stream = Box::pin(api::events::open(&served.state, None).await.expect("opens"));
    let now = tsp.last_seq();
    sink.event(DriverEvent::LineOutOfService {
        line: LineKey::new("desk-1"),
        reason: "unplugged".into(),
    });
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("in time")
        .expect("an event");
    match next {
        api::events::Item::Event(e) => assert_eq!(e.seq, now + 1),
        other => panic!("{other:?}"),
    }
}
