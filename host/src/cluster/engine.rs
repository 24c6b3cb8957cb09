//! The NATS side of a node: the connection, the JetStream buckets (leases, line ids, cluster
//! facts) and the event stream, created if absent, and this run's number.

use super::config::ClusterConfig;
use super::wire::Names;
use async_nats::jetstream::{self, kv, stream};
use std::time::Duration;

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No NATS server answered.
    #[error("cannot connect to NATS ({urls}): {source}")]
    Connect {
        /// The URLs tried.
        urls: String,
        /// What the client said.
        source: async_nats::ConnectError,
    },
    /// JetStream refused a bucket or the stream (JetStream off, limits, a 2.9 feature).
    #[error("JetStream {what}: {message}")]
    JetStream {
        /// What was being set up.
        what: String,
        /// What the server or client said.
        message: String,
    },
}

fn js_err(what: impl Into<String>, e: impl std::fmt::Display) -> EngineError {
    EngineError::JetStream {
        what: what.into(),
        message: e.to_string(),
    }
}

/// A node's handles on NATS.
#[derive(Clone)]
pub struct Engine {
    /// The core client (request-reply between nodes).
    pub client: async_nats::Client,
    /// JetStream.
    pub js: jetstream::Context,
    /// Leases: one key per driver instance, expiring `lease` after its last write.
    pub leases: kv::Store,
    /// Line ids: `line.{instance}.{key}` → id and `id.{n}` → who took it.
    pub lines: kv::Store,
    /// Live nodes: each node writes its key every third of a lease; a key that expired is a
    /// node that is gone (for `rebalance`).
    pub nodes: kv::Store,
    /// Requests applications submitted on the node running their line, until they complete:
    /// `{instance}.{request}` → line. The node that takes the instance over completes what
    /// is left with an error.
    pub pending: kv::Store,
    /// Names of this cluster's subjects and buckets.
    pub names: Names,
    /// This run's number, unique in the cluster for ever.
    pub run: u64,
}

impl Engine {
    /// Connects, creates what is missing, and takes a run number.
    ///
    /// # Errors
    /// When NATS cannot be reached or JetStream refuses.
    pub async fn start(config: &ClusterConfig) -> Result<Self, EngineError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("tapir {}", config.node))
            .connection_timeout(Duration::from_secs(3))
            .ping_interval(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(5)))
            // Reconnecting for ever, quickly: a node cut off must come back by itself.
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(1000))
            });
        if let Some(token) = &config.token {
            options = options.token(token.expose().to_owned());
        }
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            options = options.user_and_password(user.clone(), password.expose().to_owned());
        }
        let urls = config.urls.join(",");
        let client = options
            .connect(config.urls.as_slice())
            .await
            .map_err(|source| EngineError::Connect {
                urls: urls.clone(),
                source,
            })?;
        let js = jetstream::new(client.clone());
        let names = Names {
            cluster: config.name.clone(),
        };
        let lease = Duration::from_secs_f64(config.lease_s);
        let leases = bucket(
            &js,
            &names.leases(),
            "tapir: which node runs each driver instance",
            lease,
        )
        .await?;
        let lines = bucket(
            &js,
            &names.lines(),
            "tapir: cluster-wide line ids",
            Duration::ZERO,
        )
        .await?;
        let meta = bucket(&js, &names.meta(), "tapir: cluster facts", Duration::ZERO).await?;
        let nodes = bucket(&js, &names.nodes(), "tapir: live nodes", lease).await?;
        let pending = bucket(
            &js,
            &names.pending(),
            "tapir: requests pending on the node running their line",
            Duration::from_secs(24 * 3600),
        )
        .await?;
        js.get_or_create_stream(stream::Config {
            name: names.stream(),
            subjects: vec![names.events()],
            max_messages: i64::try_from(config.history).unwrap_or(i64::MAX),
            // Completions carry a message id; a second one for the same request (the owner's
            // and the requester's after a failover) is dropped within this window.
            duplicate_window: Duration::from_secs(300),
            ..Default::default()
        })
        .await
        .map_err(|e| js_err("event stream", e))?;
        let run = next_run(&meta).await?;
        Ok(Self {
            client,
            js,
            leases,
            lines,
            nodes,
            pending,
            names,
            run,
        })
    }

    /// The stream's first and last positions now.
    ///
    /// # Errors
    /// When NATS does not answer.
    pub async fn stream_bounds(&self) -> Result<(u64, u64), EngineError> {
        let stream = self
            .js
            .get_stream(self.names.stream())
            .await
            .map_err(|e| js_err("event stream", e))?;
        let info = stream
            .get_info()
            .await
            .map_err(|e| js_err("event stream", e))?;
        Ok((info.state.first_sequence, info.state.last_sequence))
    }
}

/// A key-value bucket, created if absent. Made from its stream here rather than with the
/// client's `create_key_value`, which reads account fields NATS 2.9 does not send
/// (`reserved_memory`); the stream is what a bucket is (ADR-8): `KV_{bucket}` over
/// `$KV.{bucket}.>`, one message per key, roll-ups allowed, deletes as markers.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    max_age: Duration,
) -> Result<kv::Store, EngineError> {
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        // At most the lease, as the server wants the window within the age limit.
        duplicate_window: if max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            max_age.min(Duration::from_secs(120))
        },
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| js_err(format!("bucket {name}"), e))?;
    js.get_key_value(name)
        .await
        .map_err(|e| js_err(format!("bucket {name}"), e))
}

/// Takes the next run number (compare-and-set on `runs`); runs start at 1.
async fn next_run(meta: &kv::Store) -> Result<u64, EngineError> {
    for _ in 0..100 {
        let entry = meta
            .entry("runs")
            .await
            .map_err(|e| js_err("run number", e))?;
        let (last, revision) = match entry {
            Some(e) if e.operation == kv::Operation::Put => (
                std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0),
                Some(e.revision),
            ),
            _ => (0, None),
        };
        let next = last + 1;
        let value = next.to_string().into();
        let written = match revision {
            Some(r) => meta.update("runs", value, r).await.is_ok(),
            None => meta.create("runs", value).await.is_ok(),
        };
        if written {
            return Ok(next);
        }
    }
    Err(js_err("run number", "too many nodes starting at once"))
}
