//! The commands that talk to a running host over its API: `tapir lines`, `tapir dial`,
//! `tapir drop`, `tapir events`, `tapir phones`, `tapir phone ACTION DRIVER DEVICE`. Tables by default, `--json` for scripts.
//!
//! The host is found from `--url` (or `TAPIR_URL`), else from `[http] listen` of `--config`,
//! else the default `http://127.0.0.1:8780`; the token comes from `TAPIR_TOKEN`.
//!
//! Exit statuses: 0 done, 1 the host refused (the error code and message on stderr), 2 the
//! host could not be reached or the setup is wrong.

use crate::client::{Client, ClientError};
use crate::config::Source;
use crate::secret::Secret;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// How to reach the host; shared by every remote command.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The host's base URL (`http://127.0.0.1:8780`).
    #[arg(long, env = "TAPIR_URL")]
    pub url: Option<String>,
    /// Take the URL from this configuration file's `[http]` section.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// An extra CA certificate (PEM) for a host with a self-signed certificate.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What to do.
#[derive(Debug, Clone)]
pub enum Remote {
    /// List lines.
    Lines,
    /// Place a call.
    Dial {
        /// Line id, key or name.
        line: String,
        /// What to dial.
        number: String,
        /// Address to call from.
        address: u32,
        /// Wait this long for the completion.
        wait: Option<f64>,
    },
    /// Drop a call.
    Drop {
        /// The call.
        call: u64,
        /// Wait this long for the completion.
        wait: Option<f64>,
    },
    /// Follow events.
    Events {
        /// Resume after this position.
        after: Option<u64>,
        /// Stop after this many events.
        count: Option<u64>,
    },
    /// The phone table.
    Phones,
    /// A phone-table operation on one device.
    PhoneAction {
        /// `refresh`, `write_configuration`, `remove`, `set_login`, `save_configuration`, `add`.
        action: String,
        /// The driver instance.
        driver: String,
        /// The device key (for `add`: the address).
        device: String,
        /// The login (`set_login`, `add`).
        login: Option<String>,
        /// The MAC (`add`).
        mac: Option<String>,
        /// The password (`set_login`, `add`); never printed.
        password: Option<Secret>,
        /// Where `save_configuration` writes the configuration (stdout without it).
        out: Option<PathBuf>,
    },
}

/// Runs a remote command.
pub fn run(target: Target, what: Remote) -> ExitCode {
    let base = match resolve(&target) {
        Ok(base) => base,
        Err(message) => {
            eprintln!("tapir: {message}");
            return ExitCode::from(2);
        }
    };
    let token = std::env::var("TAPIR_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    let client = match Client::new(&base, token, target.ca_cert.as_deref()) {
        Ok(c) => c,
        Err(error) => {
            eprintln!("tapir: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("tapir: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(execute(&client, target.json, what)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ ClientError::Api { .. }) => {
            eprintln!("tapir: {error}");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("tapir: {error}");
            ExitCode::from(2)
        }
    }
}

fn resolve(target: &Target) -> Result<String, String> {
    if let Some(url) = &target.url {
        return Ok(url.clone());
    }
    let source = match &target.config {
        Some(path) => Source::File(path.clone()),
        None => Source::Embedded,
    };
    let http: crate::config::HttpConfig = source
        .figment()
        .extract_inner("http")
        .map_err(|e| format!("cannot read [http] of the configuration: {e}"))?;
    Ok(crate::client::base_url(&http))
}

async fn execute(client: &Client, as_json: bool, what: Remote) -> Result<(), ClientError> {
    match what {
        Remote::Lines => {
            let lines = client.get("/v1/lines").await?;
            let calls = client.get("/v1/calls").await?;
            if as_json {
                println!("{}", pretty(&lines));
                return Ok(());
            }
            let mut rows = vec![vec![
                "LINE".to_owned(),
                "NAME".to_owned(),
                "DRIVER".to_owned(),
                "KEY".to_owned(),
                "SERVICE".to_owned(),
                "CALLS".to_owned(),
            ]];
            for line in lines.as_array().into_iter().flatten() {
                let id = &line["id"];
                let active: Vec<String> = calls
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| &c["line"] == id && c["state"]["state"] != "idle")
                    .map(|c| format!("{} {}", c["id"], text(&c["state"]["state"])))
                    .collect();
                rows.push(vec![
                    id.to_string(),
                    text(&line["name"]),
                    text(&line["driver"]),
                    text(&line["key"]),
                    if line["in_service"] == true {
                        "in service".to_owned()
                    } else {
                        "out of service".to_owned()
                    },
                    active.join(", "),
                ]);
            }
            print_table(&rows);
        }
        Remote::Dial {
            line,
            number,
            address,
            wait,
        } => {
            let id = line_id(client, &line).await?;
            let body = json!({ "destination": number, "address": address });
            let reply = client
                .post(
                    &format!("/v1/lines/{id}/calls{}", wait_query(wait)),
                    Some(&body),
                )
                .await?;
            if as_json {
                println!("{reply}");
            } else {
                println!(
                    "call {} on line {id} to {number} (request {}{})",
                    reply["call"],
                    reply["request"],
                    if reply["completed"] == true {
                        ", completed"
                    } else {
                        ""
                    }
                );
            }
        }
        Remote::Drop { call, wait } => {
            let reply = client
                .post(&format!("/v1/calls/{call}/drop{}", wait_query(wait)), None)
                .await?;
            if as_json {
                println!("{reply}");
            } else {
                println!("dropping call {call} (request {})", reply["request"]);
            }
        }
        Remote::Events { after, count } => {
            let mut seen = 0u64;
            client
                .events(after, |event| {
                    if as_json {
                        println!("{event}");
                    } else {
                        println!("{}", describe(&event));
                    }
                    seen += 1;
                    count.is_none_or(|c| seen < c)
                })
                .await?;
        }
        Remote::PhoneAction {
            action,
            driver,
            device,
            login,
            mac,
            password,
            out,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(login) = login {
                body.insert("login".into(), login.into());
            }
            if let Some(mac) = mac {
                body.insert("mac".into(), mac.into());
            }
            if let Some(password) = &password {
                body.insert("password".into(), password.expose().into());
            }
            let path = format!(
                "/v1/phones/{}/{}/{}",
                segment(&driver),
                segment(&device),
                segment(&action)
            );
            let body = Value::Object(body);
            let reply = client.post(&path, Some(&body)).await?;
            match (reply["outcome"].as_str(), &out) {
                (Some("configuration"), Some(file)) => {
                    let text = reply["text"].as_str().unwrap_or_default();
                    std::fs::write(file, text).map_err(|e| {
                        ClientError::Setup(format!("cannot write {}: {e}", file.display()))
                    })?;
                    println!(
                        "{driver}/{device}: configuration saved to {}",
                        file.display()
                    );
                }
                (Some("configuration"), None) if !as_json => {
                    print!("{}", reply["text"].as_str().unwrap_or_default());
                }
                _ if as_json => println!("{}", pretty(&reply)),
                (Some("added"), _) => println!("{driver}: added {}", text(&reply["key"])),
                (Some("queued"), _) => {
                    println!("{driver}/{device}: {action} queued (see tapir phones)")
                }
                _ => println!("{driver}/{device}: {action} done"),
            }
        }
        Remote::Phones => {
            let phones = client.get("/v1/phones").await?;
            if as_json {
                println!("{}", pretty(&phones));
                return Ok(());
            }
            let mut rows = vec![[
                "DRIVER",
                "DEVICE",
                "MODEL",
                "FIRMWARE",
                "MAC",
                "IDENTITY",
                "IP",
                "CONNECTION",
                "CONFIGURATION",
                "LINES",
            ]
            .map(str::to_owned)
            .to_vec()];
            for p in phones["phones"].as_array().into_iter().flatten() {
                let lines: Vec<String> = p["lines"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                rows.push(vec![
                    text(&p["driver"]),
                    text(&p["key"]),
                    text(&p["model"]),
                    text(&p["firmware"]),
                    text(&p["mac"]),
                    text(&p["identity"]),
                    text(&p["ip"]),
                    text(&p["connection"]),
                    text(&p["configuration"]),
                    lines.join(", "),
                ]);
            }
            print_table(&rows);
            if rows.len() == 1 {
                println!("(no driver reports devices)");
            }
            for f in phones["failed_drivers"].as_array().into_iter().flatten() {
                println!(
                    "driver {} did not start: {}",
                    text(&f["driver"]),
                    text(&f["reason"])
                );
            }
        }
    }
    Ok(())
}

/// A line id from an id, key or name: a number that is a line's id wins, then a key, then a
/// name (driver keys are often digits, like extension numbers).
async fn line_id(client: &Client, line: &str) -> Result<u64, ClientError> {
    let lines = client.get("/v1/lines").await?;
    let all: Vec<&Value> = lines.as_array().into_iter().flatten().collect();
    let by_id = line
        .parse::<u64>()
        .ok()
        .filter(|id| all.iter().any(|l| l["id"].as_u64() == Some(*id)));
    by_id
        .or_else(|| {
            all.iter()
                .find(|l| l["key"] == line)
                .or_else(|| all.iter().find(|l| l["name"] == line))
                .and_then(|l| l["id"].as_u64())
        })
        .ok_or_else(|| ClientError::Api {
            status: 404,
            code: "bad_device_id".to_owned(),
            message: format!("no line with id, key or name {line:?}"),
        })
}

fn wait_query(wait: Option<f64>) -> String {
    wait.map(|w| format!("?wait={w}")).unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// One line for an event: position, kind, line, call and the interesting part.
fn describe(e: &Value) -> String {
    let mut out = format!("{:>6}  {:<13}", text(&e["seq"]), text(&e["event"]));
    if !e["line"].is_null() {
        out.push_str(&format!(" line {}", e["line"]));
    }
    if !e["call"].is_null() {
        out.push_str(&format!(" call {}", e["call"]));
    }
    if !e["request"].is_null() {
        out.push_str(&format!(" request {}", e["request"]));
    }
    if let Some(state) = e["state"]["state"].as_str() {
        out.push_str(&format!("  {state}"));
        if let Some(mode) = e["state"]["mode"].as_str() {
            out.push_str(&format!(" ({mode})"));
        }
    }
    if !e["name"].is_null() {
        out.push_str(&format!("  {}", text(&e["name"])));
    }
    if let Some(result) = e["result"].as_object() {
        if let Some(err) = result.get("err") {
            out.push_str(&format!(
                "  failed: {}: {}",
                text(&err["kind"]),
                text(&err["detail"])
            ));
        } else {
            out.push_str("  ok");
        }
    }
    out
}

fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

/// Percent-encodes one path segment (device keys may hold `:`, addresses `[`/`]`).
fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_described_on_one_line() {
        let e = json!({"seq": 7, "event": "call_state", "line": 0, "call": 3, "state": {"state": "busy", "mode": "station"}});
        assert_eq!(
            describe(&e),
            "     7  call_state    line 0 call 3  busy (station)"
        );
        let e = json!({"seq": 8, "event": "completed", "line": 0, "request": 2, "result": {"err": {"kind": "operation_failed", "detail": "x"}}});
        assert!(describe(&e).ends_with("failed: operation_failed: x"));
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(super::segment("000413A1B2C3"), "000413A1B2C3");
        assert_eq!(super::segment("[::1]:80"), "%5B%3A%3A1%5D%3A80");
        assert_eq!(super::segment("a/b c"), "a%2Fb%20c");
    }
}
