//! The click-to-dial job shared by the `versus_kamailio` and `scaling` benches: the SIPp phone
//! (`phone.xml`), the two servers under test (`tapir run` with a `sip-refer` line driven over
//! its REST API; Kamailio's `dlg.bridge_dlg` driven over JSON-RPC), a small keep-alive HTTP
//! client that both sides share, and the process accounting (CPU from `/proc/<pid>/stat`, peak
//! RSS from `/proc/<pid>/status`) of the server process(es) only.

#![allow(dead_code)]

mod server;

pub use server::{Server, Side};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_test_support::sipp::Sipp;

/// An environment variable as a number, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The median of `v` (0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The machine's load average (first three fields of `/proc/loadavg`).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------------------------
// Process accounting.

fn clock_ticks() -> f64 {
    // Linux reports utime/stime in USER_HZ, 100 on every architecture tapir runs on; getconf
    // confirms it when present.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) a process used so far, and its process group.
fn proc_stat(pid: u32) -> Option<(f64, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
    let pgrp = f.get(2)?.parse().ok()?;
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((ticks, pgrp))
}

/// The state letter of a process (`Z` once it exited and waits to be reaped; its CPU times
/// are still readable then).
fn proc_state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.get(text.rfind(')')? + 2..)?.chars().next()
}

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// `VmRSS` (resident set now) of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The server processes measured: one PID (tapir) or every process of a group (Kamailio).
#[derive(Debug, Clone, Copy)]
pub enum Procs {
    /// One process.
    One(u32),
    /// Every process in this process group.
    Group(u32),
}

impl Procs {
    fn pids(self) -> Vec<u32> {
        match self {
            Procs::One(pid) => vec![pid],
            Procs::Group(pgid) => {
                let Ok(rd) = std::fs::read_dir("/proc") else {
                    return Vec::new();
                };
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                    .filter(|pid| proc_stat(*pid).is_some_and(|(_, g)| g == pgid))
                    .collect()
            }
        }
    }

    /// CPU seconds used so far by the process(es).
    pub fn cpu_s(self) -> f64 {
        let hz = clock_ticks();
        self.pids()
            .into_iter()
            .filter_map(proc_stat)
            .map(|(t, _)| t / hz)
            .sum()
    }

    /// Peak RSS in MiB (for a group: the sum over its processes, which counts Kamailio's shared
    /// memory once per process that touched it).
    pub fn peak_rss_mib(self) -> f64 {
        self.pids().into_iter().map(peak_rss_kib).sum::<u64>() as f64 / 1024.0
    }

    /// RSS now in MiB (summed as for the peak).
    pub fn rss_mib(self) -> f64 {
        self.pids().into_iter().map(rss_kib).sum::<u64>() as f64 / 1024.0
    }
}

// ---------------------------------------------------------------------------------------------
// A keep-alive HTTP/1.1 client, one request at a time per connection.

/// One HTTP/1.1 connection.
pub struct Http {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Http {
    /// Connects to `addr` (`host:port`).
    pub fn connect(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Sends one request and reads its answer: (status, body).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(format!("{head}{body}").as_bytes())?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&format!("status line {line:?}")))?;
        let mut length = None;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed in the headers"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
        }
        let length = length.ok_or_else(|| bad("no Content-Length"))?;
        let mut buf = vec![0; length];
        self.reader.read_exact(&mut buf)?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

// ---------------------------------------------------------------------------------------------
// The phone and one run.

/// The SIPp phone scenario, holding each call ringing for `hold_ms` (0: answer at once),
/// written to a file in `dir`.
pub fn phone_scenario(dir: &Path, hold_ms: u64) -> PathBuf {
    let template = include_str!("phone.xml");
    let text = if hold_ms == 0 {
        template.to_owned()
    } else {
        template.replace(
            "<!--HOLD-->",
            &format!("<pause milliseconds=\"{hold_ms}\"/>"),
        )
    };
    let path = dir.join("bench_phone.xml");
    if let Err(e) = std::fs::write(&path, text) {
        panic!("write {}: {e}", path.display());
    }
    path
}

/// SIPp's counters at its end, with the retransmissions.
#[derive(Debug, Default, Clone, Copy)]
pub struct PhoneStats {
    /// Calls that ran the scenario to the end.
    pub successful: u64,
    /// Calls that failed.
    pub failed: u64,
    /// Retransmissions SIPp sent.
    pub retransmissions: u64,
}

/// Reads the last row of SIPp's `-trace_stat` file in `dir`.
pub fn phone_stats(dir: &Path) -> PhoneStats {
    let csv = std::fs::read_dir(dir).ok().and_then(|rd| {
        rd.flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("_.csv"))
    });
    let Some(text) = csv.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return PhoneStats::default();
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let (Some(head), Some(last)) = (lines.first(), lines.last()) else {
        return PhoneStats::default();
    };
    let cols: Vec<&str> = head.split(';').collect();
    let vals: Vec<&str> = last.split(';').collect();
    let num = |k: &str| -> u64 {
        cols.iter()
            .position(|c| *c == k)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    PhoneStats {
        successful: num("SuccessfulCall(C)"),
        failed: num("FailedCall(C)"),
        retransmissions: num("Retransmissions(C)"),
    }
}

/// Prints the start of SIPp's error log (why calls failed).
fn show_phone_errors(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for p in rd.flatten().map(|e| e.path()) {
        if p.to_string_lossy().ends_with("_errors.log") {
            if let Some(keep) = std::env::var_os("TAPIR_BENCH_KEEP") {
                let _ = std::fs::copy(&p, keep);
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            // "Dead call" notes are answers to calls already ended well: not the reason.
            let head: Vec<&str> = text
                .lines()
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    (l.contains("abort") || l.contains("timeout") || l.contains("fail"))
                        && !l.contains("dead call")
                })
                .take(8)
                .collect();
            eprintln!(
                "    phone errors ({}):\n    {}",
                p.display(),
                head.join("\n    ")
            );
        }
    }
}

/// How the client drives the server.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Connections, each with one request in flight at a time.
    pub connections: u64,
    /// When set, requests are paced to this many per second overall (open loop).
    pub rate: Option<f64>,
}

/// What one run measured.
#[derive(Debug, Default, Clone)]
pub struct RunResult {
    /// Calls the phone completed (the scenario ran to its end).
    pub completed: u64,
    /// Wall time from the first request to the phone's last completed call.
    pub seconds: f64,
    /// Server CPU seconds over the run.
    pub cpu_s: f64,
    /// Server peak RSS, MiB.
    pub peak_rss_mib: f64,
    /// Failures: failed SIPp calls, refused/failed requests and calls never completed.
    pub failures: u64,
    /// Retransmissions: SIPp's plus the server's own count where it has one.
    pub retransmissions: u64,
    /// Events read from tapir's event stream.
    pub events: u64,
    /// (calls requested so far, server CPU seconds so far, server RSS MiB then) at each mark.
    pub marks: Vec<(u64, f64, f64)>,
    /// Server RSS MiB just before the first request.
    pub idle_rss_mib: f64,
    /// The SIPp phone's CPU seconds over the run (the same job on both sides).
    pub phone_cpu_s: f64,
    /// The bench client's CPU seconds over the run (HTTP requests, and for tapir the event
    /// reader).
    pub client_cpu_s: f64,
}

impl RunResult {
    /// Completed calls per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.completed as f64 / self.seconds
        } else {
            0.0
        }
    }
    /// Server CPU per completed call, microseconds.
    pub fn cpu_us_per_call(&self) -> f64 {
        self.per_call(self.cpu_s)
    }
    /// The phone's and the client's CPU per completed call, microseconds: what the machine
    /// spends on the job besides the server.
    pub fn load_us_per_call(&self) -> f64 {
        self.per_call(self.phone_cpu_s + self.client_cpu_s)
    }
    fn per_call(&self, seconds: f64) -> f64 {
        if self.completed > 0 {
            seconds * 1e6 / self.completed as f64
        } else {
            0.0
        }
    }
}

/// Reads tapir's event stream (`GET /v1/events`) until `stop`, counting events.
fn read_events(addr: String, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) {
    let Ok(stream) = TcpStream::connect(&addr) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    if w.write_all(
        b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
    )
    .is_err()
    {
        return;
    }
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.starts_with("data:") {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => continue,
        }
    }
}

/// One run: a fresh phone and server, `n` click-to-dials in `shape`, phone holding each call
/// `hold_ms`; `marks` are call counts at which the CPU used so far is sampled.
pub fn run(side: Side, n: u64, shape: Shape, hold_ms: u64, marks: &[u64]) -> RunResult {
    let Some(sipp_bin) = tapir_test_support::programs::sipp() else {
        panic!("sipp is not installed");
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("temporary folder: {e}"),
    };
    let scenario = phone_scenario(dir.path(), hold_ms);
    let limit = Duration::from_secs(30 + n / 200 + hold_ms / 1000 * 4);
    let mut phone = Sipp::builder(&sipp_bin, &scenario)
        .calls(u32::try_from(n).unwrap_or(u32::MAX))
        .trace_msg(false)
        .timeout(limit)
        .name(format!("bench phone {}", side.name()))
        .args(["-max_socket", "65000", "-buff_size", "4194304"])
        .start();
    let phone_port = phone.port();
    let server = Server::start(side, phone_port);
    let procs = server.procs();
    std::thread::sleep(Duration::from_millis(300));
    let cpu0 = procs.cpu_s();
    let phone_procs = Procs::One(phone.pid());
    let client_procs = Procs::One(std::process::id());
    let (phone0, client0) = (phone_procs.cpu_s(), client_procs.cpu_s());
    let idle_rss_mib = procs.rss_mib();

    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let reader = (side == Side::Tapir).then(|| {
        let (addr, stop, events) = (server.http().to_owned(), stop.clone(), events.clone());
        std::thread::spawn(move || read_events(addr, stop, events))
    });

    let next = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let server = Arc::new(server);
    let start = Instant::now();
    let mut mark_samples = Vec::new();
    let mut pending: Vec<u64> = marks.to_vec();
    std::thread::scope(|s| {
        for _ in 0..shape.connections.max(1) {
            let (next, refused, done, server) =
                (next.clone(), refused.clone(), done.clone(), server.clone());
            s.spawn(move || {
                let mut http = match Http::connect(server.http()) {
                    Ok(h) => h,
                    Err(_) => return,
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    if let Some(rate) = shape.rate {
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    let (path, body) = server.dial_request(phone_port, i);
                    let ok = match http.request("POST", &path, &body) {
                        Ok((status, body)) => {
                            let ok = server.accepted(status, &body);
                            if !ok && refused.load(Ordering::Relaxed) == 0 {
                                eprintln!("    first refusal: {status} {body}");
                            }
                            ok
                        }
                        Err(e) => {
                            if refused.load(Ordering::Relaxed) == 0 {
                                eprintln!("    first request error: {e}");
                            }
                            if let Ok(h) = Http::connect(server.http()) {
                                http = h;
                            }
                            false
                        }
                    };
                    if !ok {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Sample the CPU at the marks while the clients run.
        while !pending.is_empty() && done.load(Ordering::Relaxed) < n {
            let d = done.load(Ordering::Relaxed);
            if d >= pending[0] {
                let cpu = procs.cpu_s() - cpu0;
                mark_samples.push((pending.remove(0), cpu, procs.rss_mib()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    // The phone's CPU is read until it exits (an exited, unreaped process still shows it).
    let mut phone_cpu_s = phone_procs.cpu_s() - phone0;
    let phone_deadline = Instant::now() + limit;
    while proc_state(phone.pid()).is_some_and(|s| s != 'Z') && Instant::now() < phone_deadline {
        phone_cpu_s = phone_procs.cpu_s() - phone0;
        std::thread::sleep(Duration::from_millis(2));
    }
    if proc_state(phone.pid()) == Some('Z') {
        phone_cpu_s = phone_procs.cpu_s() - phone0;
    }
    let status = phone.wait_exit(limit);
    let seconds = start.elapsed().as_secs_f64();
    let client_cpu_s = client_procs.cpu_s() - client0;
    let cpu_s = procs.cpu_s() - cpu0;
    let peak = procs.peak_rss_mib();
    // Marks not reached while requests went out are taken at the end of the run.
    for m in pending {
        mark_samples.push((m, cpu_s, procs.rss_mib()));
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(r) = reader {
        let _ = r.join();
    }
    let stats = phone_stats(phone.dir());
    let own_retrans = server.retransmissions().unwrap_or(0);
    if status.is_none() {
        eprintln!("{}: the phone did not finish in {limit:?}", side.name());
    }
    if stats.failed > 0 {
        show_phone_errors(phone.dir());
        if let Some(tail) = server.log_tail(30) {
            eprintln!("    {}'s last log lines:\n{tail}", side.name());
        }
    }
    let completed = stats.successful;
    let missing = n.saturating_sub(stats.successful + stats.failed);
    RunResult {
        completed,
        seconds,
        cpu_s,
        peak_rss_mib: peak,
        failures: stats.failed + refused.load(Ordering::Relaxed) + missing,
        retransmissions: stats.retransmissions + own_retrans,
        events: events.load(Ordering::Relaxed),
        marks: mark_samples,
        idle_rss_mib,
        phone_cpu_s,
        client_cpu_s,
    }
}
