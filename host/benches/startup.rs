//! Start-up and shutdown time of `tapir run`, measured from outside as an operator sees it:
//! from spawning the process until `/healthz` answers, and from SIGTERM until the process has
//! exited. Run with `cargo bench -p tapir-host --bench startup`; prints a table.
//!
//! Two configurations: the embedded default (the simulated office, 8 phones) and 1,000
//! virtual-phone lines from the example plugin (built on demand).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18780)
}

fn healthy(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if write!(s, "GET /healthz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut out = String::new();
    s.read_to_string(&mut out).is_ok() && out.contains("200 OK")
}

fn example_plugin_dir() -> Option<tempdirless::Dir> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let name = format!(
        "{}tapir_example_virtual_phone{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let lib = target.join("debug").join(&name);
    if !lib.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "tapir-example-virtual-phone"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return None;
        }
    }
    let dir = tempdirless::Dir::new("tapir-startup-bench")?;
    std::fs::copy(&lib, dir.path.join(&name)).ok()?;
    Some(dir)
}

/// A scratch folder removed on drop (kept dependency-free for the bench).
mod tempdirless {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new(prefix: &str) -> Option<Self> {
            let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
            std::fs::create_dir_all(&path).ok()?;
            Some(Self { path })
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn measure(config: Option<&Path>) -> Option<(Vec<f64>, Vec<f64>)> {
    let mut start_ms = Vec::new();
    let mut stop_ms = Vec::new();
    for _ in 0..RUNS {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapir"));
        cmd.arg("run")
            .env("TAPIR_HTTP__LISTEN", &addr)
            .env("TAPIR_PHONES__LISTEN", "127.0.0.1:0")
            .env("TAPIR_LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let began = Instant::now();
        let mut child = cmd.spawn().ok()?;
        let deadline = began + Duration::from_secs(20);
        while !healthy(&addr) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        start_ms.push(began.elapsed().as_secs_f64() * 1000.0);
        let stopping = Instant::now();
        let _ = Command::new("kill")
            .args(["-s", "TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        stop_ms.push(stopping.elapsed().as_secs_f64() * 1000.0);
    }
    Some((start_ms, stop_ms))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    println!("tapir run: {RUNS} runs each, debug build of the binary under test");
    println!(
        "{:<34} {:>14} {:>14} {:>14}",
        "configuration", "start p50 ms", "start max ms", "stop p50 ms"
    );
    let mut rows: Vec<(String, Option<PathBuf>)> = vec![("embedded default".into(), None)];
    let plugins = example_plugin_dir();
    if let Some(dir) = &plugins {
        let lines: Vec<String> = (0..1000)
            .map(|i| format!("{{ key = \"{}\" }}", 1000 + i))
            .collect();
        let config = dir.path.join("tapir.toml");
        let text = format!(
            "plugin_dir = {:?}\n[drivers.office]\ndriver = \"virtual-phone\"\nlines = [{}]\n",
            dir.path,
            lines.join(", ")
        );
        if std::fs::write(&config, text).is_ok() {
            rows.push(("1,000 virtual-phone lines".into(), Some(config)));
        }
    }
    for (name, config) in rows {
        match measure(config.as_deref()) {
            Some((mut start, mut stop)) => {
                let max = start.iter().cloned().fold(0.0, f64::max);
                println!(
                    "{name:<34} {:>14.1} {:>14.1} {:>14.1}",
                    median(&mut start),
                    max,
                    median(&mut stop)
                );
            }
            None => println!("{name:<34} did not start within 20 s"),
        }
    }
}
