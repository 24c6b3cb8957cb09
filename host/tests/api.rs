//! The network API end to end: a `tapir run` daemon with the example driver, driven over HTTP,
//! the SSE and WebSocket streams, with tokens; and every refusal as a JSON error that changes
//! nothing on the line.

mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::web::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const DRIVER: &str = "dial_ms = 50\nring_ms = 100\nbusy_numbers = [\"486\"]\n";

/// Reads WebSocket events until `done` says so; returns them all.
async fn ws_until<S>(
    ws: &mut S,
    within: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Vec<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("event JSON");
                let stop = done(&v);
                seen.push(v);
                if stop {
                    return seen;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("stream ended: {other:?}; seen {seen:#?}"),
        }
    }
    panic!("not seen in time; seen {seen:#?}");
}

/// Reads SSE `data:` events from a streaming response until `done`.
async fn sse_until(
    response: &mut reqwest::Response,
    within: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Vec<(Option<String>, Value)> {
    let deadline = Instant::now() + within;
    let mut buffer = String::new();
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .expect("an SSE chunk in time")
            .expect("stream readable")
            .expect("stream open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut id = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&data).expect("SSE data is JSON");
            let stop = done(&v);
            seen.push((id, v));
            if stop {
                return seen;
            }
        }
    }
    panic!("not seen in time: {seen:#?}");
}

trait JsonOrNull {
    async fn json_or_null(self) -> Value;
}

impl JsonOrNull for reqwest::Response {
    async fn json_or_null(self) -> Value {
        serde_json::from_str(&self.text().await.unwrap_or_default()).unwrap_or(Value::Null)
    }
}

fn is_state(e: &Value, call: &Value, state: &str) -> bool {
    e["event"] == "call_state" && &e["call"] == call && e["state"]["state"] == state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_drives_a_call_through_rest_and_both_event_streams() {
    let host = start(DRIVER, "", "", false).wait_ready();
    let http = client();
    let base = host.base.clone();

    let lines = call(&http, "GET", &format!("{base}/v1/lines"), Some(READ), None).await;
    assert_eq!(lines.status, 200, "{}", lines.text);
    assert!(lines.headers.contains_key("x-tapir-seq"));
    let line = lines.body[0]["id"].clone();
    assert_eq!(
        lines.body[0]["opens"], 1,
        "the API opened the line: {:#}",
        lines.body
    );
    let detail = call(
        &http,
        "GET",
        &format!("{base}/v1/lines/{line}"),
        Some(READ),
        None,
    )
    .await;
    assert_eq!(detail.status, 200);
    let ops = detail.body["caps"]["operations"].as_array().expect("caps");
    assert!(ops.contains(&json!("make_call")) && ops.contains(&json!("blind_transfer")));

    // The WebSocket stream, with the token in the header.
    let mut request = format!("ws://{}/v1/events/ws", host.addr)
        .into_client_request()
        .expect("ws request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {READ}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket connects");

    let made = call(
        &http,
        "POST",
        &format!("{base}/v1/lines/{line}/calls"),
        Some(CONTROL),
        Some(("application/json", r#"{"destination": "200"}"#)),
    )
    .await;
    assert_eq!(made.status, 202, "{}", made.text);
    let call_id = made.body["call"].clone();
    let request_id = made.body["request"].clone();
    assert!(call_id.is_u64() && request_id.is_u64(), "{}", made.text);

    let (mut completed, mut connected) = (false, false);
    let events = ws_until(&mut ws, Duration::from_secs(10), |e| {
        if e["event"] == "completed" && e["request"] == request_id {
            assert!(e["result"]["ok"].is_object(), "{e}");
            completed = true;
        }
        connected |= is_state(e, &call_id, "connected");
        completed && connected
    })
    .await;
    let states: Vec<&str> = events
        .iter()
        .filter(|e| e["call"] == call_id && e["event"] == "call_state")
        .filter_map(|e| e["state"]["state"].as_str())
        .collect();
    assert_eq!(states, ["dialing", "ringback", "connected"], "{events:#?}");
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    let detail = call(
        &http,
        "GET",
        &format!("{base}/v1/calls/{call_id}"),
        Some(READ),
        None,
    )
    .await;
    assert_eq!(
        detail.body["state"]["state"], "connected",
        "{}",
        detail.text
    );
    let features = detail.body["features"].as_array().expect("features");
    assert!(features.contains(&json!("hold")) && !features.contains(&json!("answer")));

    // ?wait returns the completion inline.
    for op in ["hold", "unhold"] {
        let a = call(
            &http,
            "POST",
            &format!("{base}/v1/calls/{call_id}/{op}?wait=5"),
            Some(CONTROL),
            None,
        )
        .await;
        assert_eq!(a.status, 200, "{op}: {}", a.text);
        assert_eq!(a.body["completed"], true);
        assert_eq!(a.body["result"]["ok"]["kind"], "done", "{}", a.text);
    }
    let a = call(
        &http,
        "POST",
        &format!("{base}/v1/calls/{call_id}/dial?wait=5"),
        Some(CONTROL),
        Some(("application/json", r#"{"digits": "12#"}"#)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);

    // Forwarding and DND on the address, and the query.
    let fwd = call(
        &http,
        "PUT",
        &format!("{base}/v1/lines/{line}/addresses/0/forwarding?wait=5"),
        Some(CONTROL),
        Some((
            "application/json",
            r#"{"mode": "unconditional", "destination": "300"}"#,
        )),
    )
    .await;
    assert_eq!(fwd.status, 200, "{}", fwd.text);
    let dnd = call(
        &http,
        "PUT",
        &format!("{base}/v1/lines/{line}/addresses/0/dnd?wait=5"),
        Some(CONTROL),
        Some(("application/json", r#"{"enabled": true}"#)),
    )
    .await;
    assert_eq!(dnd.status, 200, "{}", dnd.text);
    let query = call(
        &http,
        "POST",
        &format!("{base}/v1/lines/{line}/addresses/0/query?wait=5"),
        Some(READ),
        None,
    )
    .await;
    assert_eq!(query.status, 200, "read tokens may query: {}", query.text);
    let status = &query.body["result"]["ok"];
    assert_eq!(status["kind"], "address_status", "{}", query.text);
    assert_eq!(status["do_not_disturb"], true, "{}", query.text);
    assert_eq!(
        status["forwarding"][0]["destination"], "300",
        "{}",
        query.text
    );
    let address = poll(
        &http,
        &format!("{base}/v1/lines/{line}/addresses/0"),
        Some(READ),
        Duration::from_secs(5),
        |b| b["status"]["do_not_disturb"] == true,
    )
    .await;
    assert_eq!(address["status"]["forwarding"][0]["mode"], "unconditional");
    let cancel = call(
        &http,
        "DELETE",
        &format!("{base}/v1/lines/{line}/addresses/0/forwarding?wait=5"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);

    let dropped = call(
        &http,
        "POST",
        &format!("{base}/v1/calls/{call_id}/drop?wait=5"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(dropped.status, 200, "{}", dropped.text);
    ws_until(&mut ws, Duration::from_secs(10), |e| {
        is_state(e, &call_id, "idle")
    })
    .await;

    // SSE from the start of the history replays the whole call, ids are the seqs.
    let mut sse = http
        .get(format!("{base}/v1/events?after=0"))
        .bearer_auth(READ)
        .send()
        .await
        .expect("SSE");
    assert_eq!(sse.status(), 200);
    let replay = sse_until(&mut sse, Duration::from_secs(10), |e| {
        is_state(e, &call_id, "idle")
    })
    .await;
    for (id, e) in &replay {
        assert_eq!(id.as_deref(), Some(e["seq"].to_string().as_str()));
    }
    assert!(replay
        .iter()
        .any(|(_, e)| is_state(e, &call_id, "connected")));
    let first_seq: u64 = replay
        .iter()
        .filter_map(|(_, e)| e["seq"].as_u64())
        .find(|_| true)
        .expect("a seq");
    // Last-Event-ID resumes after the first event: the next one comes first.
    let mut resumed = http
        .get(format!("{base}/v1/events"))
        .bearer_auth(READ)
        .header("Last-Event-ID", first_seq.to_string())
        .send()
        .await
        .expect("SSE");
    let next = sse_until(&mut resumed, Duration::from_secs(5), |_| true).await;
    assert_eq!(next[0].1["seq"], first_seq + 1);

    // After the linger the call is forgotten.
    let metrics = call(&http, "GET", &format!("{base}/metrics"), Some(READ), None).await;
    assert_eq!(metrics.status, 200);
    for needle in [
        "tapir_api_requests_total{operation=\"make_call\",result=\"accepted\"} 1",
        "tapir_api_requests_total{operation=\"hold\",result=\"accepted\"} 1",
        "tapir_lines{state=\"in_service\"} 1",
        "tapir_active_calls 0",
        "tapir_request_completions_total{result=\"ok\"}",
    ] {
        assert!(
            metrics.text.contains(needle),
            "{needle} missing:\n{}",
            metrics.text
        );
    }
    let stderr = host.stop();
    assert!(
        !stderr.contains(CONTROL) && !stderr.contains(READ),
        "a token was logged:\n{stderr}"
    );
    assert!(stderr.contains("API access needs a token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let host = start(DRIVER, "", "", false).wait_ready();
    let http = client();
    let base = host.base.clone();
    let line = call(&http, "GET", &format!("{base}/v1/lines"), Some(READ), None)
        .await
        .body[0]["id"]
        .clone();
    let made = call(
        &http,
        "POST",
        &format!("{base}/v1/lines/{line}/calls?wait=5"),
        Some(CONTROL),
        Some(("application/json", r#"{"destination": "200"}"#)),
    )
    .await;
    assert!(made.status == 200 || made.status == 202, "{}", made.text);
    let call_id = made.body["call"].clone();
    poll(
        &http,
        &format!("{base}/v1/calls/{call_id}"),
        Some(READ),
        Duration::from_secs(10),
        |b| b["state"]["state"] == "connected",
    )
    .await;

    let snapshot = |http: reqwest::Client, base: String| async move {
        let lines = call(&http, "GET", &format!("{base}/v1/lines"), Some(READ), None).await;
        let calls = call(&http, "GET", &format!("{base}/v1/calls"), Some(READ), None).await;
        (
            lines.headers["x-tapir-seq"]
                .to_str()
                .expect("seq")
                .to_owned(),
            lines.body,
            calls.body,
        )
    };
    let before = snapshot(http.clone(), base.clone()).await;

    let json_body = Some(("application/json", r#"{"destination": "201"}"#));
    /// Method, path, token, (content type, body), status, error code.
    type Case<'a> = (
        &'a str,
        String,
        Option<&'a str>,
        Option<(&'a str, &'a str)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            format!("/v1/lines/{line}/calls"),
            None,
            json_body,
            401,
            "missing_token",
        ),
        (
            "POST",
            format!("/v1/lines/{line}/calls"),
            Some("not-a-token"),
            json_body,
            401,
            "invalid_token",
        ),
        (
            "GET",
            "/v1/lines".into(),
            Some("nearly-control-token-for-tests-0001"),
            None,
            401,
            "invalid_token",
        ),
        ("GET", "/v1/events".into(), None, None, 401, "missing_token"),
        ("GET", "/metrics".into(), None, None, 401, "missing_token"),
        (
            "POST",
            format!("/v1/lines/{line}/calls"),
            Some(READ),
            json_body,
            403,
            "forbidden",
        ),
        (
            "POST",
            format!("/v1/calls/{call_id}/drop"),
            Some(READ),
            None,
            403,
            "forbidden",
        ),
        (
            "PUT",
            format!("/v1/lines/{line}/addresses/0/dnd"),
            Some(READ),
            Some(("application/json", r#"{"enabled": true}"#)),
            403,
            "forbidden",
        ),
        (
            "GET",
            "/v1/lines/77".into(),
            Some(READ),
            None,
            404,
            "bad_device_id",
        ),
        (
            "POST",
            "/v1/lines/77/calls".into(),
            Some(CONTROL),
            json_body,
            404,
            "bad_device_id",
        ),
        (
            "GET",
            "/v1/calls/999".into(),
            Some(READ),
            None,
            404,
            "invalid_call_handle",
        ),
        (
            "POST",
            "/v1/calls/999/drop".into(),
            Some(CONTROL),
            None,
            404,
            "invalid_call_handle",
        ),
        (
            "GET",
            format!("/v1/lines/{line}/addresses/5"),
            Some(READ),
            None,
            404,
            "invalid_address_id",
        ),
        (
            "POST",
            format!("/v1/calls/{call_id}/answer"),
            Some(CONTROL),
            None,
            409,
            "invalid_call_state",
        ),
        (
            "POST",
            format!("/v1/calls/{call_id}/unhold"),
            Some(CONTROL),
            None,
            409,
            "invalid_call_state",
        ),
        (
            "POST",
            format!("/v1/calls/{call_id}/redirect"),
            Some(CONTROL),
            Some(("application/json", r#"{"destination": "300"}"#)),
            409,
            "invalid_call_state",
        ),
        (
            "POST",
            format!("/v1/lines/{line}/calls"),
            Some(CONTROL),
            Some(("application/json", "{\"destination\": ")),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/v1/lines/{line}/calls"),
            Some(CONTROL),
            Some(("application/json", r#"{"destination": 5}"#)),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/v1/lines/{line}/calls"),
            Some(CONTROL),
            Some(("application/json", r#"{"destinaton": "5"}"#)),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/v1/lines/{line}/calls"),
            Some(CONTROL),
            Some(("text/plain", "200")),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            format!("/v1/calls/{call_id}/dial"),
            Some(CONTROL),
            Some(("application/json", "[]")),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/calls/abc/drop".into(),
            Some(CONTROL),
            None,
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/v1/calls/{call_id}/drop?wait=soon"),
            Some(CONTROL),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/events?after=x".into(),
            Some(READ),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/nothing".into(),
            Some(READ),
            None,
            404,
            "no_route",
        ),
        (
            "DELETE",
            "/v1/lines".into(),
            Some(CONTROL),
            None,
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            "/v1/events/ws".into(),
            Some(READ),
            None,
            426,
            "websocket_required",
        ),
    ];
    for (method, path, token, body, status, code) in &cases {
        let a = call(&http, method, &format!("{base}{path}"), *token, *body).await;
        assert_eq!(a.status, *status, "{method} {path}: {}", a.text);
        assert_eq!(
            a.body["error"]["code"], *code,
            "{method} {path}: {}",
            a.text
        );
        assert_eq!(
            a.body["error"]["status"], *status,
            "{method} {path}: {}",
            a.text
        );
        assert!(a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if *status == 401 {
            assert!(a.headers.contains_key("www-authenticate"));
        }
    }
    // Another web site's page cannot make a browser change anything, even with a token.
    let cross = http
        .post(format!("{base}/v1/calls/{call_id}/drop"))
        .bearer_auth(CONTROL)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .expect("answers");
    assert_eq!(cross.status(), 403);
    let body: Value = cross.json_or_null().await;
    assert_eq!(body["error"]["code"], "cross_origin", "{body}");
    let mut hijack = format!("ws://{}/v1/events/ws", host.addr)
        .into_client_request()
        .expect("ws request");
    hijack.headers_mut().insert(
        "authorization",
        format!("Bearer {READ}").parse().expect("header"),
    );
    hijack
        .headers_mut()
        .insert("origin", "http://evil.example".parse().expect("header"));
    match tokio_tungstenite::connect_async(hijack).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("a cross-origin WebSocket was accepted: {other:?}"),
    }
    let after = snapshot(http.clone(), base.clone()).await;
    assert_eq!(before, after, "a refused request changed something");
    let stderr = host.stop();
    assert!(
        !stderr.contains(CONTROL) && !stderr.contains(READ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_resume_is_a_clear_gap_and_ended_calls_are_forgotten() {
    // A tiny history, a short linger, and no tokens: the loopback API is open.
    let host = start(
        DRIVER,
        "",
        "[tsp]\nhistory = 4\n\n[api]\nidle_call_linger_s = 1\n",
        true,
    )
    .wait_ready();
    let base = host.base.clone();
    let http = client();
    // No tokens configured: the loopback API is open.
    let made = call(
        &http,
        "POST",
        &format!("{base}/v1/lines/0/calls?wait=5"),
        None,
        Some(("application/json", r#"{"destination": "200"}"#)),
    )
    .await;
    assert!(made.status == 200 || made.status == 202, "{}", made.text);
    poll(
        &http,
        &format!("{base}/v1/calls"),
        None,
        Duration::from_secs(10),
        |b| b[0]["state"]["state"] == "connected",
    )
    .await;
    let gap = call(
        &http,
        "GET",
        &format!("{base}/v1/events?after=0"),
        None,
        None,
    )
    .await;
    assert_eq!(gap.status, 410, "{}", gap.text);
    assert_eq!(gap.body["error"]["code"], "history_gap");
    assert!(
        gap.body["error"]["oldest"].as_u64().is_some_and(|o| o > 1),
        "{}",
        gap.text
    );
    let ws = call(
        &http,
        "GET",
        &format!("{base}/v1/events/ws?after=0"),
        None,
        None,
    )
    .await;
    assert_eq!(ws.status, 410, "{}", ws.text);
    // Open without tokens, the API answers only requests addressed to a loopback name: a
    // rebound DNS name gets nothing.
    let rebound = raw_get(&host.addr, "/v1/lines", "tapir.evil.example");
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    assert!(rebound.contains("host_not_allowed"), "{rebound}");
    let page = raw_get(&host.addr, "/", "tapir.evil.example");
    assert!(
        page.starts_with("HTTP/1.1 200"),
        "the page itself holds no data: {page}"
    );
    // An ended call is forgotten after the configured linger.
    let call_id = made.body["call"].clone();
    let dropped = call(
        &http,
        "POST",
        &format!("{base}/v1/calls/{call_id}/drop?wait=5"),
        None,
        None,
    )
    .await;
    assert_eq!(dropped.status, 200, "{}", dropped.text);
    poll(
        &http,
        &format!("{base}/v1/calls"),
        None,
        Duration::from_secs(5),
        |b| b.as_array().is_some_and(Vec::is_empty),
    )
    .await;
    let stderr = host.stop();
    assert!(stderr.starts_with("exit Some(0)"), "{stderr}");
    assert!(
        stderr.contains("No API tokens configured"),
        "the open API is announced: {stderr}"
    );
}

/// A GET with a chosen Host header, over a plain socket.
fn raw_get(addr: &str, path: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
