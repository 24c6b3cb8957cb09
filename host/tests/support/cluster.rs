//! A cluster on loopback for tests and the cluster bench: a real nats-server with JetStream and
//! several `tapir run` nodes as processes, all reading one configuration file (each node's
//! name, listener and log come from `TAPIR_` variables), each in its own process group and
//! killed when dropped. A node can be killed with SIGKILL and started again, or reach NATS
//! through a relay the test cuts.

use super::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};
pub use tapir_test_support::{Nats, Relay};

/// One `tapir run` node.
pub struct Node {
    pub name: String,
    pub port: u16,
    pub base: String,
    pub log: std::path::PathBuf,
    /// The NATS URL it uses (a relay's for an isolated node).
    pub url: String,
    guard: Option<Guard>,
}

impl Node {
    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(Guard::pid)
    }

    /// Running?
    pub fn alive(&mut self) -> bool {
        self.guard
            .as_mut()
            .is_some_and(|g| g.try_status().is_none())
    }
}

/// NATS plus nodes.
pub struct Bed {
    pub nats: Nats,
    pub nodes: Vec<Node>,
    pub config: std::path::PathBuf,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// The `[cluster]` section and drivers every node shares (`lease_s` seconds of lease).
pub fn config_text(nats_url: &str, lease_s: f64, homes: &[(&str, &str)], drivers: &str) -> String {
    let homes: Vec<String> = homes
        .iter()
        .map(|(instance, node)| format!("{instance} = \"{node}\""))
        .collect();
    format!(
        "[log]\nlevel = \"info,tapir_host::cluster=debug\"\n\n[phones]\nlisten = \"127.0.0.1:0\"\n\n[api]\nidle_call_linger_s = 2\n\n[cluster]\nurls = [\"{nats_url}\"]\nnode = \"unnamed\"\nlease_s = {lease_s}\nforward_timeout_s = 2.0\nhome = {{ {} }}\n\n{drivers}\n",
        homes.join(", ")
    )
}

impl Bed {
    /// NATS and `names` nodes on `config` (see [`config_text`]), started one after the other.
    pub fn start(
        nats_bin: &std::path::Path,
        names: &[&str],
        config: impl Fn(&str) -> String,
    ) -> Bed {
        let nats = Nats::start(nats_bin);
        let dir = tempfile::tempdir().expect("dir");
        let path = write_config(dir.path(), &config(&nats.url()));
        let mut bed = Bed {
            nats,
            nodes: Vec::new(),
            config: path,
            dir,
            http: http(),
        };
        for name in names {
            let url = bed.nats.url();
            bed.add(name, &url);
        }
        bed
    }

    /// Starts one more node `name` reaching NATS at `url`.
    pub fn add(&mut self, name: &str, url: &str) -> usize {
        let port = free_port();
        let log = self.dir.path().join(format!("{name}.log"));
        let mut node = Node {
            name: name.to_owned(),
            port,
            base: format!("http://127.0.0.1:{port}"),
            log,
            url: url.to_owned(),
            guard: None,
        };
        self.launch(&mut node);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn launch(&self, node: &mut Node) {
        let mut cmd = tapir();
        cmd.arg("run").arg("--config").arg(&self.config);
        if !node.url.is_empty() {
            // A cluster node; with no URL, a host of its own on the same file.
            cmd.env("TAPIR_CLUSTER__NODE", &node.name)
                .env("TAPIR_CLUSTER__URLS", format!("[\"{}\"]", node.url));
        }
        cmd.env("TAPIR_HTTP__LISTEN", format!("127.0.0.1:{}", node.port))
            .env("TAPIR_LOG__FILE", &node.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // A panic's message goes to standard error, not the log.
        match std::fs::File::create(node.log.with_extension("err")) {
            Ok(f) => cmd.stderr(Stdio::from(f)),
            Err(_) => cmd.stderr(Stdio::null()),
        };
        node.guard = Some(Guard::start(format!("tapir {}", node.name), &mut cmd));
        let addr = format!("127.0.0.1:{}", node.port);
        assert!(
            http_get(&addr, "/healthz", Duration::from_secs(30)).is_some(),
            "node {} did not come up:\n{}",
            node.name,
            node.log_text()
        );
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .expect("a node of that name")
    }

    /// SIGKILL to node `name` (no chance to give anything up), and waits for it to be gone.
    pub fn kill(&mut self, name: &str) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("a node of that name");
        if let Some(mut guard) = node.guard.take() {
            guard.signal("KILL");
            let _ = guard.wait_exit(Duration::from_secs(10));
        }
    }

    /// Starts node `name` again (after [`Bed::kill`]).
    pub fn restart(&mut self, name: &str) {
        let index = self
            .nodes
            .iter()
            .position(|n| n.name == name)
            .expect("a node of that name");
        let mut node = self.nodes.remove(index);
        self.launch(&mut node);
        self.nodes.insert(index, node);
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let text = n.log_text();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            let err = std::fs::read_to_string(n.log.with_extension("err")).unwrap_or_default();
            if !err.trim().is_empty() {
                out.push_str(&format!("--- {} standard error ---\n{err}\n", n.name));
            }
            out.push_str(&format!("--- {} (last lines) ---\n", n.name));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// An HTTP client with a short timeout.
pub fn http() -> reqwest::Client {
    tapir_host::http::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// `GET`: status and JSON body, or `None` when the node does not answer.
pub async fn get(http: &reqwest::Client, url: &str) -> Option<(u16, Value)> {
    let response = http.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// `POST` with a JSON body: status and JSON body, or `None` when the node does not answer.
pub async fn post(http: &reqwest::Client, url: &str, body: &str) -> Option<(u16, Value)> {
    let started = Instant::now();
    let response = match http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("POST {url}: no answer after {:?}: {e}", started.elapsed());
            return None;
        }
    };
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// The lines a node lists: id → (driver, key, in_service).
pub async fn lines(http: &reqwest::Client, base: &str) -> BTreeMap<u64, (String, String, bool)> {
    let Some((200, body)) = get(http, &format!("{base}/v1/lines")).await else {
        return BTreeMap::new();
    };
    body.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| {
                    Some((
                        l["id"].as_u64()?,
                        (
                            l["driver"].as_str()?.to_owned(),
                            l["key"].as_str()?.to_owned(),
                            l["in_service"].as_bool()?,
                        ),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Which node runs each instance, as node `base` sees it (`""` for itself).
pub async fn owners(http: &reqwest::Client, base: &str) -> BTreeMap<String, String> {
    let Some((200, body)) = get(http, &format!("{base}/v1/drivers")).await else {
        return BTreeMap::new();
    };
    body.as_array()
        .map(|a| {
            a.iter()
                .filter(|d| d["state"] == "running")
                .filter_map(|d| {
                    Some((
                        d["name"].as_str()?.to_owned(),
                        d["node"].as_str().unwrap_or("").to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `check` holds, polling every 50 ms; how long it took, or `None`.
pub async fn until<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Every event of a node's stream after `after`, read in the background (SSE).
pub fn follow(base: &str, after: u64) -> std::sync::Arc<std::sync::Mutex<Vec<Value>>> {
    super::web::collect_events(format!("{base}/v1/events?after={after}"))
}

/// A copy of what [`follow`] has collected.
pub fn seen(events: &std::sync::Mutex<Vec<Value>>) -> Vec<Value> {
    events.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
