//! The simulated office: the built-in driver `simulated`, which the embedded default runs so
//! that a first `tapir run` shows phones that can be dialled. It is the virtual phone of
//! `examples/virtual-phone` (the one simulation of a phone in tapir: calls, timers, incoming
//! calls, hold, transfer, forwarding), dressed as an office of desk phones: generated lines
//! with names and numbers, and a phone table with MAC, IP, model, firmware and registration,
//! some of them deliberately out of service or misconfigured so filters have something to find.
//!
//! Everything it shows is labelled simulated: the host logs a warning when an instance starts,
//! the API marks its lines, phones and instance `simulated: true`, the page shows a banner. MAC
//! addresses are locally administered (`02:74:61:…`), IP addresses come from the benchmarking
//! range 198.18.0.0/15 (RFC 2544), identities end in `.invalid`: none can be mistaken for, or
//! reach, a real device. A configuration file only gets it by naming `driver = "simulated"`.

use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use tapir_core::{
    Configuration, Connection, DeviceAction, DeviceActionOutcome, DeviceStatus, DriverDescriptor,
    DriverError, ErrorKind, HttpCallback, HttpReply, LineKey, PhoneDriver, RequestEnvelope,
    SharedSink,
};

/// The most phones one instance simulates.
pub const MAX_PHONES: u64 = 100_000;

/// The names of the first phones of an office; later ones are "Phone NUMBER".
const NAMES: [&str; 8] = [
    "Reception",
    "Sales",
    "Support",
    "Accounts",
    "Warehouse",
    "Workshop",
    "Meeting room",
    "Managing director",
];

/// The keys this driver reads itself; every other key goes to the virtual phone (timings,
/// busy and unreachable numbers, scripted incoming calls), which checks it.
const OWN_KEYS: [&str; 4] = ["phones", "first_number", "out_of_service", "misconfigured"];

/// Virtual-phone keys the office sets itself.
const GENERATED_KEYS: [&str; 2] = ["lines", "panic_on_number"];

/// A configuration that works, shown by `tapir plugins` users and tested to validate.
pub const EXAMPLE_CONFIG: &str = r#"{
  "phones": 8,
  "first_number": 100,
  "out_of_service": ["107"],
  "misconfigured": ["106"],
  "dial_ms": 300,
  "ring_ms": 2000,
  "hangup_after_ms": 120000,
  "incoming": [ { "line": "100", "after_ms": 15000, "from": "+4989123456", "name": "Simulated caller", "repeat_ms": 300000 } ]
}"#;

/// The office's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Office {
    phones: u64,
    first_number: u64,
    out_of_service: Vec<String>,
    misconfigured: Vec<String>,
}

/// Splits a section into the office's settings and the virtual phone's configuration (with
/// the generated lines).
fn parse(config: &str) -> Result<(Office, String), String> {
    let mut map: Map<String, Value> = match serde_json::from_str(config) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("the section must be a table".to_owned()),
        Err(e) => return Err(format!("not valid JSON: {e}")),
    };
    for key in GENERATED_KEYS {
        if map.contains_key(key) {
            return Err(format!(
                "`{key}` is set by the simulated office itself; use `phones` and `first_number`"
            ));
        }
    }
    let number = |map: &mut Map<String, Value>, key: &str, default: u64| match map.remove(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("`{key}` must be a whole number, not {v}")),
    };
    let phones = number(&mut map, OWN_KEYS[0], 8)?;
    if !(1..=MAX_PHONES).contains(&phones) {
        return Err(format!("`phones` must be 1 to {MAX_PHONES}, not {phones}"));
    }
    let first_number = number(&mut map, OWN_KEYS[1], 100)?;
    let list = |map: &mut Map<String, Value>, key: &str| -> Result<Vec<String>, String> {
        match map.remove(key) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v)
                .map_err(|_| format!("`{key}` must be a list of line numbers")),
        }
    };
    let office = Office {
        phones,
        first_number,
        out_of_service: list(&mut map, OWN_KEYS[2])?,
        misconfigured: list(&mut map, OWN_KEYS[3])?,
    };
    let numbers: HashSet<String> = (0..phones)
        .map(|i| (first_number + i).to_string())
        .collect();
    for key in office.out_of_service.iter().chain(&office.misconfigured) {
        if !numbers.contains(key) {
            return Err(format!(
                "no simulated phone has the number {key:?} (numbers {first_number} to {})",
                first_number + phones - 1
            ));
        }
    }
    let lines: Vec<Value> = (0..phones)
        .map(|i| {
            let number = (first_number + i).to_string();
            serde_json::json!({ "key": number, "name": name(i, &number), "number": number })
        })
        .collect();
    map.insert("lines".to_owned(), Value::Array(lines));
    let phone = Value::Object(map).to_string();
    tapir_example_virtual_phone::validate(&phone)?;
    Ok((office, phone))
}

fn name(index: u64, number: &str) -> String {
    usize::try_from(index)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map(|n| (*n).to_owned())
        .unwrap_or_else(|| format!("Phone {number}"))
}

/// The MAC, IP and identity of the simulated phone at `index`.
fn dress(index: u64, number: &str) -> (String, String, String) {
    let mac = format!(
        "02:74:61:{:02x}:{:02x}:{:02x}",
        (index >> 16) & 0xff,
        (index >> 8) & 0xff,
        index & 0xff
    );
    let block = index / 250;
    let ip = format!(
        "198.{}.{}.{}",
        18 + block / 256,
        block % 256,
        index % 250 + 1
    );
    let identity = format!("sip:{number}@office.simulated.invalid");
    (mac, ip, identity)
}

fn validate(config: &str) -> Result<(), String> {
    parse(config).map(|_| ())
}

fn build(config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
    let (office, phone) =
        parse(config).map_err(|e| DriverError::new(ErrorKind::InvalidParameter, e))?;
    let inner = tapir_example_virtual_phone::build(&phone, sink)?;
    let index = (0..office.phones)
        .map(|i| ((office.first_number + i).to_string(), i))
        .collect();
    let driver = Simulated {
        inner,
        index,
        misconfigured: office.misconfigured.iter().cloned().collect(),
        unreachable: Mutex::new(HashSet::new()),
    };
    for key in &office.out_of_service {
        driver.http_callback(HttpCallback {
            method: "POST".to_owned(),
            path: "/lines/out-of-service".to_owned(),
            query: format!(
                "key={key}&reason=simulated%20fault%3A%20the%20phone%20does%20not%20answer"
            ),
            headers: Vec::new(),
            peer: "simulated".to_owned(),
            body: String::new(),
        });
    }
    tracing::warn!(
        phones = office.phones,
        "SIMULATED office: {} simulated phones, numbers {} to {}; nothing here is a real phone.",
        office.phones,
        office.first_number,
        office.first_number + office.phones - 1
    );
    Ok(Box::new(driver))
}

/// A virtual phone with the phone table of an office.
struct Simulated {
    inner: Box<dyn PhoneDriver>,
    /// Position of each generated line, by key (its number).
    index: HashMap<String, u64>,
    misconfigured: HashSet<String>,
    /// Lines whose phone is out of service now (set through the virtual phone's HTTP paths).
    unreachable: Mutex<HashSet<String>>,
}

impl PhoneDriver for Simulated {
    fn submit(&self, request: RequestEnvelope) -> Result<(), DriverError> {
        self.inner.submit(request)
    }

    fn http_callback(&self, request: HttpCallback) -> HttpReply {
        let service = match request.path.as_str() {
            "/lines/out-of-service" => Some(true),
            "/lines/in-service" => Some(false),
            _ => None,
        };
        let key = request
            .query
            .split('&')
            .find_map(|p| p.strip_prefix("key="))
            .map(str::to_owned);
        let reply = self.inner.http_callback(request);
        if let (Some(out), Some(key), true) = (service, key, (200..300).contains(&reply.status)) {
            let mut unreachable = self
                .unreachable
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if out {
                unreachable.insert(key);
            } else {
                unreachable.remove(&key);
            }
        }
        reply
    }

    fn devices(&self) -> Vec<DeviceStatus> {
        let unreachable = self
            .unreachable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut rows: Vec<(u64, DeviceStatus)> = self
            .inner
            .devices()
            .into_iter()
            .map(|mut d| {
                let index = self.index.get(&d.key).copied();
                let number = d.key.clone();
                if let Some(i) = index {
                    let (mac, ip, identity) = dress(i, &number);
                    d.mac = Some(mac);
                    d.ip = Some(ip);
                    d.identity = Some(identity);
                }
                d.model = Some("simulated desk phone".to_owned());
                d.firmware = Some(format!("sim-{}", env!("CARGO_PKG_VERSION")));
                if unreachable.contains(&d.key) {
                    d.connection = Connection::Unreachable;
                    d.detail = Some("simulated fault: the phone does not answer".to_owned());
                } else if self.misconfigured.contains(&d.key) {
                    d.configuration = Configuration::SettingsWrong;
                    d.detail =
                        Some("simulated fault: the phone's settings need rewriting".to_owned());
                } else {
                    d.detail = Some("simulated phone".to_owned());
                }
                (index.unwrap_or(u64::MAX), d)
            })
            .collect();
        rows.sort_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
        rows.into_iter().map(|(_, d)| d).collect()
    }

    fn device_action(
        &self,
        device: &str,
        action: DeviceAction,
    ) -> Result<DeviceActionOutcome, DriverError> {
        self.inner.device_action(device, action)
    }

    fn line_opened(&self, line: &LineKey) {
        self.inner.line_opened(line);
    }

    fn shutdown(&self) {
        self.inner.shutdown();
    }
}

tapir_core::inventory::submit! {
    DriverDescriptor {
        name: crate::host::SIMULATED_DRIVER,
        summary: "A SIMULATED office of desk phones (virtual phones on timers) to try tapir without hardware; never a real phone.",
        version: env!("CARGO_PKG_VERSION"),
        example_config: EXAMPLE_CONFIG,
        validate,
        build,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_validates_and_bad_sections_are_refused_by_name() {
        assert_eq!(validate(EXAMPLE_CONFIG), Ok(()));
        assert_eq!(validate("{}"), Ok(()));
        for (bad, word) in [
            (r#"{"phones": 0}"#, "phones"),
            (r#"{"phones": 100001}"#, "phones"),
            (r#"{"phones": "many"}"#, "phones"),
            (r#"{"lines": []}"#, "lines"),
            (r#"{"out_of_service": ["999"]}"#, "999"),
            (r#"{"ring_ms": "slow"}"#, "slow"),
            (r#"{"colour": "blue"}"#, "colour"),
        ] {
            let error = validate(bad).expect_err(bad);
            assert!(error.contains(word), "{bad}: {error}");
        }
    }

    #[test]
    fn phones_are_dressed_with_addresses_no_real_device_has() {
        assert_eq!(
            dress(0, "100"),
            (
                "02:74:61:00:00:00".to_owned(),
                "198.18.0.1".to_owned(),
                "sip:100@office.simulated.invalid".to_owned()
            )
        );
        let (mac, ip, _) = dress(MAX_PHONES - 1, "x");
        assert_eq!(mac, "02:74:61:01:86:9f");
        assert_eq!(ip, "198.19.143.250");
        assert_eq!(name(1, "101"), "Sales");
        assert_eq!(name(8, "108"), "Phone 108");
    }
}
