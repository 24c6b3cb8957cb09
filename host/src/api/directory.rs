//! Lines joined with the phones that serve them, searched, filtered and paged on the server,
//! so that the page and the CLI stay quick at 10,000 phones: `GET /v1/lines?q=&filter=&
//! offset=&limit=`, the same for `GET /v1/phones`, the counts of `GET /v1/summary`, and the
//! driver instances of `GET /v1/drivers`.
//!
//! One search for both lists (the page's search box, `tapir lines --search`): every word of
//! `q` must appear, case-insensitively, in the line's id, name, key, driver instance or
//! address numbers, or in its phone's MAC (colons, dashes and dots ignored), IP, model,
//! firmware, identity or number. Filters: `out_of_service` (the line is out of service or its
//! phone is not connected), `misconfigured` (the phone's configuration is wrong), `with_calls`
//! (a call that is not Idle), `simulated`.

use super::error::ApiError;
use super::extract::ApiQuery;
use super::lines::with_seq;
use super::ApiState;
use crate::host::{Host, InstanceView};
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tapir_core::{Configuration, Connection, DeviceStatus, LineId};
use tapir_tsp::{CallSnapshot, LineSnapshot};

/// The header with the number of matching rows before `offset` and `limit` were applied.
pub const TOTAL_HEADER: HeaderName = HeaderName::from_static("x-tapir-total");

/// The largest page a client gets, whatever `limit` it asks for.
pub const MAX_LIMIT: usize = 1000;

/// `?q=&filter=&offset=&limit=` of the line and phone lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Words that must all appear (name, number, key, MAC, IP, ...).
    pub q: Option<String>,
    /// Only rows in this condition.
    pub filter: Option<Filter>,
    /// Only this driver instance.
    pub driver: Option<String>,
    /// Rows to skip.
    pub offset: Option<usize>,
    /// Rows to return (at most [`MAX_LIMIT`]).
    pub limit: Option<usize>,
}

/// A condition rows are filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Out of service, or the phone is not connected.
    OutOfService,
    /// The phone's configuration is wrong.
    Misconfigured,
    /// A call that is not Idle.
    WithCalls,
    /// Served by a simulated driver instance.
    Simulated,
}

/// A line as the API shows it: the front end's snapshot, whether it is simulated, and the
/// phone that serves it.
#[derive(Debug, Clone, Serialize)]
pub struct LineView {
    /// The line.
    #[serde(flatten)]
    pub line: LineSnapshot,
    /// Served by the simulated office: no real phone is behind it.
    pub simulated: bool,
    /// Calls on it that are not Idle.
    pub active_calls: usize,
    /// The phone serving it, as its driver reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<DeviceStatus>,
}

/// One row of the phone table.
#[derive(Debug, Clone, Serialize)]
pub struct PhoneRow {
    /// The driver instance (its config section name).
    pub driver: String,
    /// The device.
    #[serde(flatten)]
    pub device: DeviceStatus,
    /// Served by the simulated office.
    pub simulated: bool,
}

/// Everything the lists are made of, read once per request.
pub struct Directory {
    /// Lines joined with their phones.
    pub lines: Vec<LineView>,
    /// Every phone of every running instance.
    pub phones: Vec<PhoneRow>,
    /// Every call not yet forgotten.
    pub calls: Vec<CallSnapshot>,
    /// The instances.
    pub instances: Vec<InstanceView>,
}

impl Directory {
    /// Reads lines, calls and every driver's phones. Drivers answer synchronously: call this
    /// on a blocking thread.
    pub fn read(host: &Host) -> Self {
        let instances = host.instances();
        let simulated: HashSet<String> = instances
            .iter()
            .filter(|i| i.simulated)
            .map(|i| i.name.clone())
            .collect();
        let mut phones = Vec::new();
        for (name, driver) in host.drivers() {
            let devices =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.devices()))
                    .unwrap_or_else(|_| {
                        tracing::warn!(instance = %name, "Driver panicked listing its devices.");
                        Vec::new()
                    });
            let sim = simulated.contains(&name);
            phones.extend(devices.into_iter().map(|device| PhoneRow {
                driver: name.clone(),
                device,
                simulated: sim,
            }));
        }
        let calls = host.tsp.calls();
        let mut active: HashMap<LineId, usize> = HashMap::new();
        for call in calls.iter().filter(|c| !c.state.is_idle()) {
            *active.entry(call.line).or_default() += 1;
        }
        let by_line: HashMap<(&str, &str), &DeviceStatus> = phones
            .iter()
            .flat_map(|p| {
                p.device
                    .lines
                    .iter()
                    .map(move |k| ((p.driver.as_str(), k.as_str()), &p.device))
            })
            .collect();
        let lines = host
            .tsp
            .lines()
            .into_iter()
            .map(|line| LineView {
                simulated: simulated.contains(&line.driver),
                active_calls: active.get(&line.id).copied().unwrap_or(0),
                phone: by_line
                    .get(&(line.driver.as_str(), line.key.as_str()))
                    .map(|d| (*d).clone()),
                line,
            })
            .collect();
        Self {
            lines,
            phones,
            calls,
            instances,
        }
    }

    /// The lines matching `query`, and how many matched before paging.
    pub fn lines(self, query: &ListQuery) -> (Vec<LineView>, usize) {
        let words = words(query.q.as_deref());
        let matching: Vec<LineView> = self
            .lines
            .into_iter()
            .filter(|l| query.driver.as_ref().is_none_or(|d| *d == l.line.driver))
            .filter(|l| query.filter.is_none_or(|f| line_in(l, f)))
            .filter(|l| words.iter().all(|w| line_text(l).contains(w.as_str())))
            .collect();
        page(matching, query)
    }

    /// The phones matching `query`, and how many matched before paging.
    pub fn phones(self, query: &ListQuery) -> (Vec<PhoneRow>, usize) {
        let words = words(query.q.as_deref());
        let busy: HashSet<(String, String)> = self
            .lines
            .iter()
            .filter(|l| l.active_calls > 0)
            .map(|l| (l.line.driver.clone(), l.line.key.0.clone()))
            .collect();
        let matching: Vec<PhoneRow> = self
            .phones
            .into_iter()
            .filter(|p| query.driver.as_ref().is_none_or(|d| *d == p.driver))
            .filter(|p| {
                query.filter.is_none_or(|f| match f {
                    Filter::OutOfService => p.device.connection != Connection::Connected,
                    Filter::Misconfigured => misconfigured(&p.device),
                    Filter::WithCalls => p
                        .device
                        .lines
                        .iter()
                        .any(|k| busy.contains(&(p.driver.clone(), k.0.clone()))),
                    Filter::Simulated => p.simulated,
                })
            })
            .filter(|p| {
                let text = format!("{} {}", p.driver, device_text(&p.device));
                words.iter().all(|w| text.contains(w.as_str()))
            })
            .collect();
        page(matching, query)
    }
}

fn words(q: Option<&str>) -> Vec<String> {
    q.unwrap_or_default()
        .split_whitespace()
        .map(normalize)
        .filter(|w| !w.is_empty())
        .collect()
}

/// Lower case, with the separators of MAC addresses removed (so `00:04:13`, `00-04-13` and
/// `000413` all match).
fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ':' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn line_text(l: &LineView) -> String {
    let mut text = format!(
        "{} {} {} {}",
        l.line.id, l.line.name, l.line.key, l.line.driver
    );
    for address in &l.line.caps.addresses {
        text.push(' ');
        text.push_str(&address.number);
    }
    if let Some(phone) = &l.phone {
        text.push(' ');
        text.push_str(&device_text(phone));
    }
    normalize(&text)
}

fn device_text(d: &DeviceStatus) -> String {
    let parts = [
        Some(d.key.as_str()),
        d.mac.as_deref(),
        d.ip.as_deref(),
        d.model.as_deref(),
        d.firmware.as_deref(),
        d.identity.as_deref(),
        d.number.as_deref(),
    ];
    let text: Vec<&str> = parts.into_iter().flatten().collect();
    normalize(&text.join(" "))
}

fn misconfigured(d: &DeviceStatus) -> bool {
    matches!(
        d.configuration,
        Configuration::CallbacksMissing | Configuration::SettingsWrong | Configuration::Problem
    )
}

fn line_in(l: &LineView, filter: Filter) -> bool {
    match filter {
        Filter::OutOfService => {
            !l.line.in_service
                || l.phone
                    .as_ref()
                    .is_some_and(|p| p.connection != Connection::Connected)
        }
        Filter::Misconfigured => l.phone.as_ref().is_some_and(misconfigured),
        Filter::WithCalls => l.active_calls > 0,
        Filter::Simulated => l.simulated,
    }
}

fn page<T>(rows: Vec<T>, query: &ListQuery) -> (Vec<T>, usize) {
    let total = rows.len();
    let offset = query.offset.unwrap_or(0);
    // Without a limit every row comes (the list as it always was); with one, a page.
    let limit = query.limit.map_or(usize::MAX, |l| l.min(MAX_LIMIT));
    (rows.into_iter().skip(offset).take(limit).collect(), total)
}

/// Reads the directory off the async threads.
pub(crate) async fn read(state: &ApiState) -> Result<Directory, ApiError> {
    let host = Arc::clone(&state.host);
    tokio::task::spawn_blocking(move || Directory::read(&host))
        .await
        .map_err(|_| ApiError::internal("reading the lines and phones failed"))
}

/// A list with `X-Tapir-Seq` and `X-Tapir-Total`.
pub(crate) fn with_total(seq: u64, total: usize, body: impl IntoResponse) -> Response {
    let mut response = with_seq(seq, body);
    if let Ok(value) = HeaderValue::from_str(&total.to_string()) {
        response.headers_mut().insert(TOTAL_HEADER, value);
    }
    response
}

/// `GET /v1/lines`: every line, or with `q`, `filter`, `driver`, `offset`, `limit` the
/// matching page (`X-Tapir-Total` tells how many matched).
pub async fn lines(
    State(state): State<Arc<ApiState>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    // The position is read before the snapshot, so replaying from it misses nothing.
    let seq = state.position().await;
    let (rows, total) = read(&state).await?.lines(&query);
    Ok(with_total(seq, total, Json(rows)))
}

/// The counts at the top of the page.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Lines: `total`, `in_service`, `out_of_service`, `with_calls`.
    pub lines: BTreeMap<&'static str, usize>,
    /// Phones: `total`, `connected`, `not_connected`, `misconfigured`.
    pub phones: BTreeMap<&'static str, usize>,
    /// Calls that are not Idle, by state, and `active` in all.
    pub calls: BTreeMap<&'static str, usize>,
    /// Driver instances: `running`, `failed`, `disabled`.
    pub drivers: BTreeMap<&'static str, usize>,
    /// True when a simulated office runs: some lines and phones are not real.
    pub simulated: bool,
    /// The event position the counts are at least as new as.
    pub seq: u64,
    /// The host's clock, in milliseconds since the Unix epoch (calls' `state_ms` are on it).
    pub now_ms: u64,
}

/// `GET /v1/summary`.
pub async fn summary(State(state): State<Arc<ApiState>>) -> Result<Json<Summary>, ApiError> {
    let seq = state.position().await;
    let dir = read(&state).await?;
    let mut lines = BTreeMap::new();
    lines.insert("total", dir.lines.len());
    let in_service = dir.lines.iter().filter(|l| l.line.in_service).count();
    lines.insert("in_service", in_service);
    lines.insert("out_of_service", dir.lines.len() - in_service);
    lines.insert(
        "with_calls",
        dir.lines.iter().filter(|l| l.active_calls > 0).count(),
    );
    let mut phones = BTreeMap::new();
    phones.insert("total", dir.phones.len());
    let connected = dir
        .phones
        .iter()
        .filter(|p| p.device.connection == Connection::Connected)
        .count();
    phones.insert("connected", connected);
    phones.insert("not_connected", dir.phones.len() - connected);
    phones.insert(
        "misconfigured",
        dir.phones
            .iter()
            .filter(|p| misconfigured(&p.device))
            .count(),
    );
    let mut calls = BTreeMap::new();
    calls.insert("active", 0);
    for call in dir.calls.iter().filter(|c| !c.state.is_idle()) {
        *calls.entry(call.state.name()).or_default() += 1;
        *calls.entry("active").or_default() += 1;
    }
    let mut drivers = BTreeMap::new();
    for state in ["running", "failed", "disabled"] {
        drivers.insert(state, 0);
    }
    for instance in &dir.instances {
        *drivers.entry(instance.state).or_default() += 1;
    }
    let simulated = dir
        .instances
        .iter()
        .any(|i| i.simulated && i.state == "running");
    Ok(Json(Summary {
        lines,
        phones,
        calls,
        drivers,
        simulated,
        seq,
        now_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    }))
}

/// `GET /v1/drivers`: every configured driver instance with its state.
pub async fn drivers(State(state): State<Arc<ApiState>>) -> Json<Vec<InstanceView>> {
    Json(state.host.instances())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_separators_and_case_do_not_matter() {
        assert_eq!(normalize("00:04:13:A1-B2"), "000413a1b2");
        assert_eq!(words(Some("  Sales 00:04 ")), vec!["sales", "0004"]);
    }

    #[test]
    fn paging_caps_the_limit_and_keeps_the_total() {
        let rows: Vec<u32> = (0..2500).collect();
        let q = |offset, limit| ListQuery {
            offset,
            limit,
            ..ListQuery::default()
        };
        assert_eq!(page(rows.clone(), &q(None, None)).0.len(), 2500);
        let (got, total) = page(rows.clone(), &q(Some(10), Some(5)));
        assert_eq!((got, total), (vec![10, 11, 12, 13, 14], 2500));
        assert_eq!(page(rows.clone(), &q(None, Some(5000))).0.len(), MAX_LIMIT);
        assert_eq!(page(rows, &q(Some(2499), Some(10))).0, vec![2499]);
    }
}
