//! What nodes say to each other over NATS: subject names, the headers of the event stream,
//! and the JSON of node-to-node requests (forwarded requests, snapshots, phone tables).

use serde::{Deserialize, Serialize};
use tapir_core::{
    DeviceAction, DeviceActionOutcome, DeviceStatus, DriverError, LineId, Request, RequestId,
};
use tapir_tsp::Snapshot;

/// The node that wrote a stream message.
pub const NODE: &str = "Tapir-Node";
/// The run (the node's start) that wrote it: its ids are `run << 32` and up.
pub const RUN: &str = "Tapir-Run";
/// The writer's own position of the event (its front end's `seq`).
pub const SEQ: &str = "Tapir-Seq";
/// The driver instance of the event's line (hex of its name).
pub const INSTANCE: &str = "Tapir-Instance";
/// With `line_created`: the line (JSON of `LineSnapshot`), so mirrors learn its capabilities.
pub const LINE: &str = "Tapir-Line";
/// With the first event of a call that had no `new_call` (a requested call): its info.
pub const CALL: &str = "Tapir-Call";

/// How many low bits of a call or request id count within one run.
pub const RUN_SHIFT: u32 = 32;

/// The run whose range id `id` is in.
pub fn run_of(id: u64) -> u64 {
    id >> RUN_SHIFT
}

/// Subjects, bucket and stream names of one cluster.
#[derive(Debug, Clone)]
pub struct Names {
    /// The cluster's name.
    pub cluster: String,
}

impl Names {
    /// The event stream.
    pub fn stream(&self) -> String {
        format!("TAPIR_{}_EVENTS", self.cluster)
    }

    /// Every event subject (`tapir.{cluster}.ev.{line}`).
    pub fn events(&self) -> String {
        format!("tapir.{}.ev.>", self.cluster)
    }

    /// The subject of a line's events.
    pub fn event(&self, line: LineId) -> String {
        format!("tapir.{}.ev.{}", self.cluster, line.0)
    }

    /// The lease bucket (one key per driver instance, expiring).
    pub fn leases(&self) -> String {
        format!("tapir_{}_leases", self.cluster)
    }

    /// The line-id bucket.
    pub fn lines(&self) -> String {
        format!("tapir_{}_lines", self.cluster)
    }

    /// The bucket of live nodes (one key per node, expiring like a lease).
    pub fn nodes(&self) -> String {
        format!("tapir_{}_nodes", self.cluster)
    }

    /// The bucket of requests pending on the node running their line.
    pub fn pending(&self) -> String {
        format!("tapir_{}_pending", self.cluster)
    }

    /// The bucket of cluster facts (the run counter).
    pub fn meta(&self) -> String {
        format!("tapir_{}_meta", self.cluster)
    }

    /// What node `node` answers (`.submit`, `.snapshot`, `.devices`, `.action`).
    pub fn node(&self, node: &str, what: &str) -> String {
        format!("tapir.{}.node.{node}.{what}", self.cluster)
    }
}

/// The key of a pending request of instance `instance`.
pub fn pending_key(instance: &str, request: tapir_core::RequestId) -> String {
    format!("{}.{}", hex(instance), request.0)
}

/// Hex of a name, for keys and headers (instance names and line keys may hold anything).
pub fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The text back from [`hex`].
pub fn unhex(text: &str) -> Option<String> {
    if text.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Who holds a driver instance: the lease's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The node.
    pub node: String,
    /// Its run.
    pub run: u64,
}

/// A request forwarded to the node that owns its line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forward {
    /// The driver instance.
    pub instance: String,
    /// The line (cluster-wide id).
    pub line: LineId,
    /// The request id the forwarding node gave it.
    pub id: RequestId,
    /// The request, ids allocated and numbers formatted.
    pub request: Request,
}

/// The owner's answer to a forwarded request: accepted (the completion follows on the event
/// stream) or refused.
pub type ForwardReply = Result<(), DriverError>;

/// A node's answer to a snapshot request for one of its instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotReply {
    /// The run that answers.
    pub run: u64,
    /// Lines, calls and the answering front end's position.
    pub snapshot: Snapshot,
}

/// A phone-table operation forwarded to the owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRequest {
    /// The driver instance.
    pub instance: String,
    /// The device.
    pub device: String,
    /// What to do.
    pub action: DeviceAction,
}

/// The owner's answer to [`DeviceRequest`].
pub type DeviceReply = Result<DeviceActionOutcome, DriverError>;

/// The owner's phone table of an instance.
pub type DevicesReply = Result<Vec<DeviceStatus>, DriverError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_any_name() {
        for name in ["office", "sip lines/1", "Büro", ""] {
            assert_eq!(unhex(&hex(name)).as_deref(), Some(name));
        }
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn ids_say_their_run() {
        assert_eq!(run_of((7 << RUN_SHIFT) + 12), 7);
        assert_eq!(run_of(12), 0);
    }
}
