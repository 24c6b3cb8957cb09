//! A headless Chromium started on loopback and driven over the DevTools protocol, for the
//! status page's test and benchmark. The browser runs in its own process group (its zygote and
//! renderers with it), killed when dropped.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Chromium with its process group, killed when dropped.
pub struct Browser {
    _guard: tapir_test_support::Guard,
    _profile: tempfile::TempDir,
}

/// The Chromium binary, when installed.
pub fn chromium() -> Option<std::path::PathBuf> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(tapir_test_support::programs::find)
}

/// Starts headless Chromium and returns it with its DevTools HTTP address.
pub fn launch(binary: &std::path::Path) -> (Browser, String) {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = Command::new(binary);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--window-size=1440,1000",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg("about:blank")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut guard = tapir_test_support::Guard::start("chromium", &mut cmd);
    let stderr = guard.child_mut().stderr.take().expect("stderr");
    let browser = Browser {
        _guard: guard,
        _profile: profile,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split("DevTools listening on ").nth(1) {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let ws = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("chromium printed its DevTools address");
    // ws://127.0.0.1:PORT/devtools/browser/ID -> 127.0.0.1:PORT
    let host = ws
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host")
        .to_owned();
    (browser, host)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A tiny DevTools client: numbered commands, answers matched by id, events skipped.
pub struct Cdp {
    ws: Ws,
    next: u64,
}

impl Cdp {
    pub async fn send(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let message = json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("CDP send");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("CDP open")
                .expect("CDP message");
            if let Message::Text(text) = msg {
                let v: Value = serde_json::from_str(text.as_str()).expect("CDP JSON");
                if v["id"] == id {
                    assert!(v["error"].is_null(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .send(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            r["exceptionDetails"].is_null(),
            "{expression}: {:#}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    pub async fn wait_for(&mut self, what: &str, expression: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(expression).await;
            if !v.is_null() && v != json!(false) {
                return v;
            }
            if Instant::now() > deadline {
                let page = self.eval("document.body.innerText").await;
                panic!(
                    "the page did not show {what} within {within:?}; it shows:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

impl Cdp {
    /// Connects to the first page target of a browser started with [`launch`].
    pub async fn connect(devtools: &str) -> Self {
        let http = super::web::client();
        let targets = super::web::call(
            &http,
            "GET",
            &format!("http://{devtools}/json/list"),
            None,
            None,
        )
        .await
        .body;
        let page = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(page.as_str())
            .await
            .expect("CDP connects");
        let mut cdp = Cdp { ws, next: 0 };
        cdp.send("Page.enable", json!({})).await;
        cdp
    }

    /// Saves a PNG screenshot of the page to `target/tapir-artifacts/{name}`; returns the path.
    pub async fn screenshot(&mut self, name: &str) -> std::path::PathBuf {
        let shot = self
            .send("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = super::target_dir().join("tapir-artifacts");
        std::fs::create_dir_all(&dir).expect("artefact dir");
        let path = dir.join(name);
        std::fs::write(&path, &png).expect("write screenshot");
        path
    }
}
