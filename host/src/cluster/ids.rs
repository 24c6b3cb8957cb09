//! Cluster-wide line ids: one id per (driver instance, line key) for every node, kept in the
//! `lines` bucket and never changed, so a line that moves to another node keeps its id.
//!
//! Every node holds the table in memory (read at start, then what it binds itself and what
//! mirrors learn from owners), so the front end asks without waiting for lines it knows. A line never seen anywhere gets its id here: the lowest free number
//! is claimed with a create-if-absent of `id.{n}` (two nodes can never claim one number), then
//! bound with a create-if-absent of `line.{instance}.{key}` (if another node bound the line
//! first, its id wins). Ids pinned in `[[lines]]` are never handed out otherwise.

use super::engine::Engine;
use super::wire::{hex, unhex};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tapir_core::{LineId, LineKey};
use tapir_tsp::LineIds;

/// How long the front end may wait for a new line's id before it picks one itself.
const ALLOCATE_WITHIN: Duration = Duration::from_secs(5);

/// The shared line-id table.
pub struct SharedIds {
    engine: Engine,
    handle: tokio::runtime::Handle,
    table: RwLock<Table>,
    /// Ids pinned by `[[lines]]`: (instance, key) → id, the same on every node.
    pinned: HashMap<(String, LineKey), LineId>,
    base: u32,
}

#[derive(Default)]
struct Table {
    by_key: HashMap<(String, LineKey), LineId>,
    by_id: HashMap<LineId, (String, LineKey)>,
}

impl Table {
    fn insert(&mut self, instance: String, key: LineKey, id: LineId) {
        self.by_id.insert(id, (instance.clone(), key.clone()));
        self.by_key.insert((instance, key), id);
    }
}

fn line_key(instance: &str, key: &LineKey) -> String {
    format!("line.{}.{}", hex(instance), hex(key.as_str()))
}

impl SharedIds {
    /// Loads the table and keeps it current (a task on `handle`).
    ///
    /// # Errors
    /// When the bucket cannot be read.
    pub async fn load(
        engine: Engine,
        pinned: Vec<(String, LineKey, LineId)>,
        base: u32,
    ) -> Result<Arc<Self>, async_nats::Error> {
        let mut table = Table::default();
        for (instance, key, id) in &pinned {
            table.insert(instance.clone(), key.clone(), *id);
        }
        let ids = Arc::new(Self {
            engine: engine.clone(),
            handle: tokio::runtime::Handle::current(),
            table: RwLock::new(table),
            pinned: pinned
                .into_iter()
                .map(|(instance, key, id)| ((instance, key), id))
                .collect(),
            base,
        });
        // Every line bound so far; later ones are learnt when they are bound here or when a
        // mirror's owner reports them (snapshot, `line_created`).
        let mut keys = engine.lines.keys().await?;
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            if let Ok(key) = key {
                if key.starts_with("line.") {
                    names.push(key);
                }
            }
        }
        for key in names {
            if let Ok(Some(value)) = engine.lines.get(key.clone()).await {
                ids.learn(&key, &value);
            }
        }
        Ok(ids)
    }

    /// Takes a `line.{instance}.{key}` → id entry into the table.
    fn learn(&self, key: &str, value: &[u8]) {
        let mut parts = key.splitn(3, '.');
        let (Some("line"), Some(instance), Some(line)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let (Some(instance), Some(line)) = (unhex(instance), unhex(line)) else {
            return;
        };
        let Some(id) = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
        else {
            return;
        };
        self.write()
            .insert(instance, LineKey::new(line), LineId(id));
    }

    /// Records an id learnt from another node (a mirror's snapshot) before the table's watch
    /// brings it.
    pub fn remember(&self, instance: &str, key: &LineKey, id: LineId) {
        self.write().insert(instance.to_owned(), key.clone(), id);
    }

    /// The driver instance of line `id`.
    pub fn instance_of(&self, id: LineId) -> Option<String> {
        self.read().by_id.get(&id).map(|(i, _)| i.clone())
    }

    /// The id of a line, if it has one already.
    pub fn known(&self, instance: &str, key: &LineKey) -> Option<LineId> {
        self.read()
            .by_key
            .get(&(instance.to_owned(), key.clone()))
            .copied()
    }

    /// Gives line (`instance`, `key`) an id for good.
    async fn allocate(&self, instance: &str, key: &LineKey) -> Option<LineId> {
        let bound = line_key(instance, key);
        if let Ok(Some(value)) = self.engine.lines.get(bound.clone()).await {
            self.learn(&bound, &value);
            return self.known(instance, key);
        }
        let pinned: HashSet<LineId> = self.pinned.values().copied().collect();
        let mut n = {
            let table = self.read();
            table
                .by_id
                .keys()
                .map(|id| id.0.saturating_add(1))
                .max()
                .unwrap_or(0)
                .max(self.base)
        };
        for _ in 0..10_000 {
            if pinned.contains(&LineId(n)) {
                n += 1;
                continue;
            }
            let claim = format!("{}\n{}", instance, key.as_str());
            match self
                .engine
                .lines
                .create(format!("id.{n}"), claim.into())
                .await
            {
                Ok(_) => break,
                Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                    n += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot claim a line id in the cluster.");
                    return None;
                }
            }
        }
        match self
            .engine
            .lines
            .create(bound.clone(), n.to_string().into())
            .await
        {
            Ok(_) => {
                self.write()
                    .insert(instance.to_owned(), key.clone(), LineId(n));
                Some(LineId(n))
            }
            // Another node bound the line meanwhile: its id is the line's.
            Err(_) => match self.engine.lines.get(bound.clone()).await {
                Ok(Some(value)) => {
                    self.learn(&bound, &value);
                    self.known(instance, key)
                }
                _ => None,
            },
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl LineIds for SharedIds {
    fn line_id(&self, driver: &str, key: &LineKey) -> Option<LineId> {
        if let Some(id) = self.known(driver, key) {
            return Some(id);
        }
        // A line never seen in the cluster: its id is claimed now. The front end asks from its
        // event thread, never from inside the runtime, so waiting here is allowed.
        let allocated = self.handle.block_on(async {
            tokio::time::timeout(ALLOCATE_WITHIN, self.allocate(driver, key))
                .await
                .ok()
                .flatten()
        });
        if allocated.is_none() {
            tracing::error!(instance = driver, key = %key, "No cluster-wide id for a new line (NATS did not answer); the front end picks one, which other nodes may not share.");
        }
        allocated
    }
}
