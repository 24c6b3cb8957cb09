//! Click-to-dial load benchmark (plain binary, no harness): N `sip-refer` calls against one
//! SIPp phone on 127.0.0.1 at a given concurrency. Each call is the full job — INVITE, 180,
//! 200, ACK, REFER, 202, NOTIFY 100/180/200 (each answered), BYE — and tapir waits for the
//! final NOTIFY and the BYE's answer before the call goes Idle (counted as done); a failure is done
//! at its Disconnected state.
//!
//! Run: `TAPIR_BENCH_CALLS=5000 TAPIR_BENCH_CONCURRENCY=200 cargo bench -p tapir-plugin-sip --bench click_to_dial`

#[path = "../tests/common/mod.rs"]
mod common;

use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tapir_core::*;

#[derive(Default)]
struct Timing {
    submitted: HashMap<u64, Instant>,
    refer: HashMap<u64, Duration>,
    done: HashMap<u64, Duration>,
    finished: u64,
    failures: u64,
    reasons: HashMap<String, u64>,
    /// The cause each call reported (with its Disconnected state).
    causes: HashMap<u64, String>,
}

#[derive(Default)]
struct Sink {
    t: Mutex<Timing>,
    cv: Condvar,
}

impl Timing {
    /// A call's outcome is known: Idle after the final NOTIFY, or a failure (its reason).
    fn finish(&mut self, call: u64, failure: Option<String>) {
        if let Some(s) = self.submitted.get(&call).copied() {
            self.done.insert(call, s.elapsed());
        }
        self.finished += 1;
        if let Some(reason) = failure {
            self.failures += 1;
            // Group reasons without the per-call number.
            let reason: String = reason.chars().filter(|c| !c.is_ascii_digit()).collect();
            *self.reasons.entry(reason).or_default() += 1;
        }
    }
}

impl EventSink for Sink {
    fn event(&self, event: DriverEvent) {
        let Ok(mut t) = self.t.lock() else { return };
        match event {
            DriverEvent::CallInfo { call, info, .. } => {
                if let Some(cause) = info.cause {
                    t.causes.insert(call.0, cause);
                }
            }
            DriverEvent::CallState { call, state, .. } => {
                let start = t.submitted.get(&call.0).copied();
                match state {
                    // Proceeding is reported just before the REFER goes out.
                    CallState::Proceeding => {
                        if let Some(s) = start {
                            t.refer.entry(call.0).or_insert_with(|| s.elapsed());
                        }
                    }
                    CallState::Idle => {
                        t.finish(call.0, None);
                        self.cv.notify_all();
                    }
                    // The failed-call rule: the call ends here and the driver holds nothing.
                    CallState::Disconnected(mode) => {
                        let cause = t.causes.remove(&call.0).unwrap_or_default();
                        t.finish(call.0, Some(format!("{mode:?}: {cause}")));
                        self.cv.notify_all();
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    fn complete(&self, request: RequestId, outcome: Outcome) {
        let Ok(mut t) = self.t.lock() else { return };
        // Request ids equal call ids in this benchmark. MakeCall completes once the INVITE is
        // out; an error means the call was never placed (no state follows).
        if let Err(e) = outcome {
            t.finish(request.0, Some(e.detail));
            self.cv.notify_all();
        }
    }
    fn new_call_id(&self) -> CallId {
        CallId(0)
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of this process in milliseconds (clock ticks of 10 ms).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 * 10.0
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)].as_secs_f64() * 1000.0
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let calls = env("TAPIR_BENCH_CALLS", 2000);
    let conc = env("TAPIR_BENCH_CONCURRENCY", 100);
    let Some(bin) = common::sipp() else { return };
    let mut phone = common::start_sipp_with(
        &bin,
        "phone_ok_any",
        false,
        calls as u32,
        &["-max_recv_loops", "10000", "-buff_size", "8388608"],
        false,
    );
    let sink = Arc::new(Sink::default());
    let cfg = json!({ "lines": [{
        "key": "bench", "domain": format!("127.0.0.1:{}", phone.port()), "user": "alice",
        "bind": "127.0.0.1:0", "max_calls": conc,
    }]});
    let _ = tapir_plugin_sip::config::EXAMPLE;
    let Some(desc) = builtin_driver("sip-refer") else {
        eprintln!("sip-refer not registered");
        return;
    };
    let driver = match (desc.build)(&cfg.to_string(), sink.clone()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("driver does not build: {e}");
            return;
        }
    };
    let cpu0 = cpu_ms();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    let mut submitted = 0u64;
    let mut refused = 0u64;
    loop {
        let mut t = sink
            .t
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.finished >= calls || Instant::now() > deadline {
            break;
        }
        while submitted < calls && submitted - t.finished < conc {
            submitted += 1;
            let call = submitted;
            t.submitted.insert(call, Instant::now());
            drop(t);
            let r = driver.submit(RequestEnvelope {
                id: RequestId(call),
                line: LineKey::new("bench"),
                request: Request::MakeCall {
                    call: CallId(call),
                    address: AddressId(0),
                    destination: Some(format!("{call}")),
                },
            });
            t = sink
                .t
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if r.is_err() {
                refused += 1;
                t.finished += 1;
            }
        }
        let _ = sink.cv.wait_timeout(t, Duration::from_millis(200));
    }
    let wall = start.elapsed();
    let cpu = cpu_ms() - cpu0;
    let stats = tapir_sip_ua::global_stats();
    let status = phone.wait_exit(Duration::from_secs(30));
    driver.shutdown();
    let t = sink
        .t
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut refer: Vec<Duration> = t.refer.values().copied().collect();
    let mut done: Vec<Duration> = t.done.values().copied().collect();
    let completed = (t.done.len() as u64).saturating_sub(t.failures);
    println!("| measure | value |");
    println!("|---|---|");
    println!("| calls / concurrency | {calls} / {conc} |");
    println!(
        "| completed OK / failed / refused | {completed} / {} / {refused} |",
        t.failures
    );
    println!("| wall time | {:.2} s |", wall.as_secs_f64());
    println!(
        "| click-to-dials per second | {:.0} |",
        completed as f64 / wall.as_secs_f64()
    );
    println!(
        "| request → REFER sent p50 / p99 | {:.2} ms / {:.2} ms |",
        pct(&mut refer, 0.5),
        pct(&mut refer, 0.99)
    );
    println!(
        "| request → outcome (Idle after the final NOTIFY and BYE, or Disconnected) p50 / p99 | {:.2} ms / {:.2} ms |",
        pct(&mut done, 0.5),
        pct(&mut done, 0.99)
    );
    println!("| retransmissions | {} |", stats.retransmissions);
    println!(
        "| tapir CPU time | {:.0} ms total, {:.3} ms per call |",
        cpu,
        cpu / completed.max(1) as f64
    );
    println!("| tapir peak RSS | {} KiB |", peak_rss_kib());
    println!("| SIPp phone exit | {status:?} |");
    for (reason, n) in &t.reasons {
        println!("failure ×{n}: {reason}");
    }
    if let Ok(rd) = std::fs::read_dir(phone.dir()) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().contains("errors") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                for line in text.lines().take(12) {
                    println!("sipp: {line}");
                }
            }
        }
    }
}
