//! Benchmark of the `acd` driver on 127.0.0.1 (run: `cargo bench -p tapir-plugin-acd --bench acd`,
//! optionally `-- 1000` for one size only):
//! - **registration**: N lines on one account REGISTER (digest auth) with Kamailio as registrar;
//!   time until every line is in service, failures, memory per idle registered line;
//! - **dialling**: ACD calls with transfer (INVITE → 180 → 200/ACK → REFER → NOTIFY 100/180/200
//!   → BYE) against SIPp as the called party, at most `C` at once over the lines; calls per
//!   second sustained and failures;
//! - **memory per active call**: `C` calls held Connected against SIPp, RSS growth per call.
//!
//! Prints a table. Needs `kamailio` and `sipp`; skips a part when one is missing.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{kamailio, sipp, start_sipp, Kamailio};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tapir_core::*;

/// What the sink forwards: a call's new state, or a request's completion (ok or not).
type Note = (CallId, Option<CallState>, Option<(RequestId, bool)>);

/// A sink that counts line events and forwards call events to the bench loop.
struct Sink {
    in_service: AtomicUsize,
    out_of_service: AtomicUsize,
    tx: Mutex<mpsc::Sender<Note>>,
    next: AtomicU64,
    /// Why requests failed or calls ended badly, counted.
    why: Mutex<HashMap<String, usize>>,
}

impl Sink {
    fn note(&self, what: String) {
        if let Ok(mut w) = self.why.lock() {
            *w.entry(what).or_default() += 1;
        }
    }
}

impl EventSink for Sink {
    fn event(&self, event: DriverEvent) {
        match event {
            DriverEvent::LineInService { .. } => {
                self.in_service.fetch_add(1, Ordering::SeqCst);
            }
            DriverEvent::LineOutOfService { .. } => {
                self.out_of_service.fetch_add(1, Ordering::SeqCst);
            }
            DriverEvent::CallState { call, state, .. } => {
                if matches!(state, CallState::Busy(_) | CallState::Disconnected(_)) {
                    self.note(format!("{state:?}"));
                }
                if let Ok(tx) = self.tx.lock() {
                    let _ = tx.send((call, Some(state), None));
                }
            }
            _ => {}
        }
    }
    fn complete(&self, request: RequestId, outcome: Outcome) {
        if let Err(e) = &outcome {
            self.note(e.detail.chars().take(70).collect());
        }
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send((CallId(0), None, Some((request, outcome.is_ok()))));
        }
    }
    fn new_call_id(&self) -> CallId {
        CallId(1_000_000 + self.next.fetch_add(1, Ordering::SeqCst))
    }
}

type Events = mpsc::Receiver<Note>;

fn sink() -> (Arc<Sink>, Events) {
    let (tx, rx) = mpsc::channel();
    (
        Arc::new(Sink {
            in_service: AtomicUsize::new(0),
            out_of_service: AtomicUsize::new(0),
            tx: Mutex::new(tx),
            next: AtomicU64::new(0),
            why: Mutex::new(HashMap::new()),
        }),
        rx,
    )
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn build(config: serde_json::Value, sink: Arc<Sink>) -> Box<dyn PhoneDriver> {
    let _ = tapir_plugin_acd::config::EXAMPLE;
    let d = builtin_driver("acd").expect("acd registered");
    (d.build)(&config.to_string(), sink).expect("driver builds")
}

fn start_kamailio(bin: &Path) -> Kamailio {
    Kamailio::builder(bin, kamailio_cfg).memory(256, 16).start()
}

fn kamailio_cfg(port: u16) -> String {
    format!(
        r#"#!KAMAILIO
debug=1
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "auth.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", 0)
modparam("auth", "nonce_expire", 300)
request_route {{
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("tapir.test", "secret", "0")) {{
            www_challenge("tapir.test", "0");
            exit;
        }}
        # 0x02: no reply from save() (it would list every binding of the account, thousands
        # of Contacts); we answer 200 ourselves.
        if (!save("location", "0x02")) {{
            sl_reply_error();
            exit;
        }}
        sl_send_reply("200", "OK");
        exit;
    }}
    sl_send_reply("404", "Not Found");
}}
"#
    )
}

struct RegRow {
    lines: usize,
    rate: f64,
    secs: f64,
    registered: usize,
    failures: usize,
    kib_per_line: f64,
}

fn registration(kam: &Path, lines: usize, rate: f64) -> RegRow {
    let k = start_kamailio(kam);
    let (s, _rx) = sink();
    let before = rss_kib();
    let started = Instant::now();
    let d = build(
        json!({
            "bind": "127.0.0.1:0",
            "domain": format!("127.0.0.1:{}", k.port()),
            "user": "acd",
            "password": "secret",
            "lines": lines,
            "register": true,
            "register_rate": rate,
            "register_burst": 100
        }),
        s.clone(),
    );
    let limit = Duration::from_secs_f64(lines as f64 / rate * 3.0 + 30.0);
    while s.in_service.load(Ordering::SeqCst) < lines && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    let after = rss_kib();
    let row = RegRow {
        lines,
        rate,
        secs,
        registered: s.in_service.load(Ordering::SeqCst),
        failures: s.out_of_service.load(Ordering::SeqCst),
        kib_per_line: after.saturating_sub(before) as f64 / lines as f64,
    };
    d.shutdown();
    drop(k);
    row
}

struct DialRow {
    lines: usize,
    concurrent: usize,
    calls: usize,
    ok: usize,
    failed: usize,
    secs: f64,
}

/// `total` ACD calls with transfer, at most `concurrent` at once, spread over `lines` lines.
fn dialling(bin: &Path, lines: usize, concurrent: usize, total: usize, agent: bool) -> DialRow {
    // With `agent`, the called party really calls a second SIPp (the agent's phone) before it
    // reports the sipfrag 200, and hangs up with it afterwards.
    let agent_phone = agent.then(|| {
        start_sipp(
            bin,
            "agent",
            total as u32,
            &["-l", "100000", "-buff_size", "8388608"],
        )
    });
    let agent_port = agent_phone
        .as_ref()
        .map(|a| a.port().to_string())
        .unwrap_or_default();
    // SIPp's own socket buffer is 64 KiB by default and its scenario does not retransmit
    // NOTIFYs: with 200 calls at once it drops datagrams (4 % of calls failed); 8 MiB fixes it.
    let mut target = if agent {
        start_sipp(
            bin,
            "target_transfer_to_agent",
            total as u32,
            &[
                "-l",
                "100000",
                "-buff_size",
                "8388608",
                "-key",
                "agent_port",
                &agent_port,
            ],
        )
    } else {
        start_sipp(
            bin,
            "target_transfer",
            total as u32,
            &["-l", "100000", "-buff_size", "8388608"],
        )
    };
    let (s, rx) = sink();
    let d = build(
        json!({
            "bind": "127.0.0.1:0",
            "domain": format!("127.0.0.1:{}", target.port()),
            "user": "acd",
            "lines": lines,
            "notify_timeout_secs": 30
        }),
        s.clone(),
    );
    let started = Instant::now();
    let mut next_call = 1u64;
    let mut started_calls = 0usize;
    let mut free_lines: Vec<usize> = (1..=lines).rev().collect();
    let mut line_of: HashMap<CallId, usize> = HashMap::new();
    let mut transfers: HashMap<RequestId, CallId> = HashMap::new();
    let mut placing: HashMap<RequestId, CallId> = HashMap::new();
    let mut next_req = 1u64;
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut ended = 0usize;
    let deadline = Instant::now() + Duration::from_secs(600);
    while ended < total && Instant::now() < deadline {
        while line_of.len() < concurrent && started_calls < total {
            let Some(line) = free_lines.pop() else { break };
            let call = CallId(next_call);
            next_call += 1;
            let id = RequestId(next_req);
            next_req += 1;
            let r = d.submit(RequestEnvelope {
                id,
                line: LineKey::new(line.to_string()),
                request: Request::MakeCall {
                    call,
                    address: AddressId(0),
                    destination: Some("4930123".into()),
                },
            });
            started_calls += 1;
            if r.is_err() {
                failed += 1;
                ended += 1;
                free_lines.push(line);
                continue;
            }
            placing.insert(id, call);
            line_of.insert(call, line);
        }
        let Ok((call, state, done)) = rx.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        if let Some((req, good)) = done {
            if let Some(call) = placing.remove(&req) {
                // A MakeCall that failed never placed its call: no state follows.
                if !good {
                    failed += 1;
                    ended += 1;
                    if let Some(line) = line_of.remove(&call) {
                        free_lines.push(line);
                    }
                }
                continue;
            }
            if let Some(call) = transfers.remove(&req) {
                if good {
                    ok += 1;
                } else {
                    failed += 1;
                    let _ = d.submit(RequestEnvelope {
                        id: RequestId(next_req),
                        line: LineKey::new(line_of.get(&call).copied().unwrap_or(0).to_string()),
                        request: Request::Drop { call },
                    });
                    next_req += 1;
                }
            }
            continue;
        }
        let Some(line) = line_of.get(&call).copied() else {
            continue;
        };
        match state {
            Some(CallState::Connected) => {
                let id = RequestId(next_req);
                next_req += 1;
                transfers.insert(id, call);
                if d.submit(RequestEnvelope {
                    id,
                    line: LineKey::new(line.to_string()),
                    request: Request::BlindTransfer {
                        call,
                        destination: "300".into(),
                    },
                })
                .is_err()
                {
                    transfers.remove(&id);
                    failed += 1;
                }
            }
            // The failed-call rule: the call ends Disconnected and the driver holds nothing
            // more (a front end would answer the Drop); the line is free at once.
            Some(CallState::Disconnected(_)) => {
                failed += 1;
                line_of.remove(&call);
                free_lines.push(line);
                ended += 1;
            }
            Some(CallState::Idle) => {
                line_of.remove(&call);
                free_lines.push(line);
                ended += 1;
            }
            _ => {}
        }
    }
    let secs = started.elapsed().as_secs_f64();
    d.shutdown();
    if let Ok(w) = s.why.lock() {
        if !w.is_empty() {
            eprintln!("failures by reason: {:?}", *w);
        }
    }
    let _ = target.wait_exit(Duration::from_secs(5));
    drop(agent_phone);
    DialRow {
        lines,
        concurrent,
        calls: total,
        ok,
        failed,
        secs,
    }
}

/// RSS growth per Connected call: `n` calls held up against SIPp, then dropped.
fn active_memory(bin: &Path, n: usize) -> (f64, usize) {
    let target = start_sipp(
        bin,
        "target_answer",
        n as u32,
        &["-l", "100000", "-buff_size", "8388608"],
    );
    let (s, rx) = sink();
    let d = build(
        json!({
            "bind": "127.0.0.1:0",
            "domain": format!("127.0.0.1:{}", target.port()),
            "user": "acd",
            "lines": n
        }),
        s,
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib();
    for i in 1..=n {
        let _ = d.submit(RequestEnvelope {
            id: RequestId(i as u64),
            line: LineKey::new(i.to_string()),
            request: Request::MakeCall {
                call: CallId(i as u64),
                address: AddressId(0),
                destination: Some("4930123".into()),
            },
        });
    }
    let mut connected = 0;
    let end = Instant::now() + Duration::from_secs(120);
    while connected < n && Instant::now() < end {
        if let Ok((_, Some(CallState::Connected), _)) = rx.recv_timeout(Duration::from_secs(1)) {
            connected += 1;
        }
    }
    // Let transactions settle (the INVITE client transactions linger for Timer D/M).
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib();
    for i in 1..=n {
        let _ = d.submit(RequestEnvelope {
            id: RequestId(1_000_000 + i as u64),
            line: LineKey::new(i.to_string()),
            request: Request::Drop {
                call: CallId(i as u64),
            },
        });
    }
    let mut idle = 0;
    let end = Instant::now() + Duration::from_secs(60);
    while idle < n && Instant::now() < end {
        if let Ok((_, Some(CallState::Idle), _)) = rx.recv_timeout(Duration::from_secs(1)) {
            idle += 1;
        }
    }
    d.shutdown();
    drop(target);
    (
        after.saturating_sub(before) as f64 * 1024.0 / n as f64,
        connected,
    )
}

/// Runs one part in a fresh process (this binary again), so that memory figures are not
/// blurred by what earlier parts freed; returns its printed line.
fn part(args: &[&str]) -> String {
    let Ok(me) = std::env::current_exe() else {
        return "cannot find the bench binary".into();
    };
    match Command::new(me)
        .arg("part")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(e) => format!("part {args:?} failed: {e}"),
    }
}

fn run_part(args: &[String]) {
    let num = |i: usize| {
        args.get(i)
            .and_then(|a| a.parse::<usize>().ok())
            .unwrap_or(1_000)
    };
    match args.first().map(String::as_str) {
        Some("active") => {
            if let Some(bin) = sipp() {
                let (bytes, connected) = active_memory(&bin, num(1));
                println!(
                    "RSS per active (Connected) call: {:.1} KiB ({connected} calls held at once)",
                    bytes / 1024.0
                );
            }
        }
        Some("reg") => {
            if let Some(kam) = kamailio() {
                let r = registration(&kam, num(1), 2_000.0);
                println!(
                    "| {} | {:.0} | {:.2} s | {} | {} | {:.1} KiB |",
                    r.lines, r.rate, r.secs, r.registered, r.failures, r.kib_per_line
                );
            }
        }
        Some("dial") => {
            if let Some(bin) = sipp() {
                let n = num(1);
                let agent = args.get(2).is_some_and(|a| a == "agent");
                // The agent rings 200 ms: more calls at once keep the rate up.
                let conc = if agent { 1_000.min(n) } else { 200.min(n) };
                let r = dialling(&bin, n, conc, 20_000, agent);
                println!(
                    "| {} | {} | {} | {} | {} | {} | {:.2} s | {:.0} |",
                    r.lines,
                    if agent {
                        "SIPp (rings 200 ms, answers)"
                    } else {
                        "sipfrag only"
                    },
                    r.concurrent,
                    r.calls,
                    r.ok,
                    r.failed,
                    r.secs,
                    r.ok as f64 / r.secs
                );
            }
        }
        _ => {}
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().is_some_and(|a| a == "part") {
        run_part(&args[1..]);
        return;
    }
    let sizes: Vec<String> = match args.iter().find(|a| a.parse::<usize>().is_ok()) {
        Some(n) => vec![n.clone()],
        None => vec!["1000".into(), "10000".into()],
    };
    println!("tapir acd benchmark (127.0.0.1; each part in a fresh process; RSS of that process; SIPTAPI-ACD allows at most 999 lines)");
    println!();
    println!("{}", part(&["active", "2000"]));
    println!();
    println!("| lines (one account) | REGISTER rate cap /s | all registered after | registered | failures | RSS per idle registered line |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in &sizes {
        println!("{}", part(&["reg", n]));
    }
    println!();
    println!("| lines | agent phone | concurrent calls | calls | transferred | failed | time | calls/s |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for n in &sizes {
        println!("{}", part(&["dial", n, "plain"]));
        println!("{}", part(&["dial", n, "agent"]));
    }
}
