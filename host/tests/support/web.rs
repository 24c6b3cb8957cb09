//! A running `tapir run` daemon with the example driver, and a small HTTP client for its API.

use super::*;
use std::time::{Duration, Instant};

pub const CONTROL: &str = "control-token-for-tests-0001";
pub const READ: &str = "read-token-for-tests-00000001";

/// A daemon with its folders; stopped by PID when dropped.
pub struct Running {
    pub daemon: Option<Daemon>,
    pub base: String,
    pub addr: String,
    pub phones: String,
    pub config: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _plugins: tempfile::TempDir,
}

/// Starts a daemon: the virtual phone as `office` with `driver` settings (TOML lines), more
/// `[http]` keys, the two test tokens unless `open`, and `extra` appended to the file.
pub fn start(driver: &str, http_extra: &str, extra: &str, open: bool) -> Running {
    let plugins = plugin_dir();
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let phones_port = free_port();
    let tokens = if open {
        String::new()
    } else {
        format!(
            "[[api.tokens]]\nname = \"crm\"\ntoken = \"{CONTROL}\"\naccess = \"control\"\n\n[[api.tokens]]\nname = \"wallboard\"\ntoken = \"{READ}\"\naccess = \"read\"\n"
        )
    };
    let config = write_config(
        dir.path(),
        &format!(
            "plugin_dir = {:?}\n\n[log]\nlevel = \"info\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n{http_extra}\n\n[phones]\nlisten = \"127.0.0.1:{phones_port}\"\n\n{tokens}\n[drivers.office]\ndriver = \"virtual-phone\"\n{driver}\n\n{extra}\n",
            plugins.path()
        ),
    );
    let daemon = Daemon::spawn(tapir().arg("run").arg("--config").arg(&config));
    let addr = format!("127.0.0.1:{port}");
    Running {
        daemon: Some(daemon),
        base: format!("http://{addr}"),
        addr: addr.clone(),
        phones: format!("http://127.0.0.1:{phones_port}"),
        config,
        _dir: dir,
        _plugins: plugins,
    }
}

impl Running {
    /// Waits until `/healthz` answers (plain HTTP only).
    pub fn wait_ready(self) -> Self {
        let health = http_get(&self.addr, "/healthz", Duration::from_secs(30));
        assert!(
            health.is_some(),
            "the daemon did not come up: {}",
            self.stop()
        );
        self
    }

    /// Stops the daemon (SIGTERM) and returns its stderr.
    pub fn stop(mut self) -> String {
        self.stop_mut()
    }

    fn stop_mut(&mut self) -> String {
        match self.daemon.take() {
            Some(d) => {
                let (status, stderr) = d.stop("TERM");
                format!("exit {status:?}\n{stderr}")
            }
            None => String::new(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Daemon's own Drop kills by PID when the test failed before stop().
        self.daemon.take();
    }
}

/// An answer: status, JSON body (Null when not JSON), headers.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

pub fn client() -> reqwest::Client {
    tapir_host::http::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// One request. `body` is sent as is with `content_type` when given.
pub async fn call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some((content_type, body)) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_owned());
    }
    let response = req.send().await.expect("the host answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        body,
        text,
        headers,
    }
}

/// Polls `GET url` until `pred` holds for the body, within `within`.
pub async fn poll(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    within: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        let a = call(client, "GET", url, token, None).await;
        if a.status == 200 && pred(&a.body) {
            return a.body;
        }
        last = a.body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within {within:?}; last answer {last:#}");
}

/// A daemon with `phones` simulated phones numbered from 10000 (10007 out of service, 10006
/// and 10500 misconfigured) and the two test tokens; returns it with its API and phone URLs.
pub fn simulated_office(phones: u32) -> (Daemon, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let (port, phones_port) = (free_port(), free_port());
    let config = write_config(
        dir.path(),
        &format!(
            // 10,000 "Line created" lines would fill the captured stderr pipe and block the
            // daemon: warnings only.
            "[log]\nlevel = \"warn\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:{phones_port}\"\n\n\
             [[api.tokens]]\nname = \"crm\"\ntoken = \"{CONTROL}\"\naccess = \"control\"\n\n\
             [[api.tokens]]\nname = \"wallboard\"\ntoken = \"{READ}\"\naccess = \"read\"\n\n\
             [drivers.office]\ndriver = \"simulated\"\nphones = {phones}\nfirst_number = 10000\n\
             out_of_service = [\"10007\"]\nmisconfigured = [\"10006\", \"10500\"]\ndial_ms = 100\nring_ms = 300\n"
        ),
    );
    let daemon = Daemon::spawn(tapir().arg("run").arg("--config").arg(&config));
    let addr = format!("127.0.0.1:{port}");
    if http_get(&addr, "/healthz", Duration::from_secs(60)).is_none() {
        panic!("the daemon did not come up: {:?}", daemon.stop("KILL"));
    }
    (
        daemon,
        format!("http://{addr}"),
        format!("http://127.0.0.1:{phones_port}"),
        dir,
    )
}

/// Every event of the stream at `url` (`{base}/v1/events`, with `?after=` to resume), read
/// in the background (SSE) for as long as the test runs.
pub fn collect_events(url: String) -> std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        tapir_host::http::install_crypto_provider();
        let Ok(client) = reqwest::Client::builder().build() else {
            return;
        };
        let Ok(mut response) = client.get(&url).send().await else {
            return;
        };
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if let Ok(v) = serde_json::from_str(&data) {
                    out.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                }
            }
        }
    });
    seen
}
