//! The two servers under test in the click-to-dial benches: `tapir run` with one `sip-refer`
//! line driven over its REST API, and Kamailio's `dlg.bridge_dlg` driven over JSON-RPC; how
//! each is started, asked to dial, and measured.

use super::{env_num, Http, Procs};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tapir_test_support::kamailio::Kamailio;
use tapir_test_support::ports::free_port;
use tapir_test_support::process::Guard;

/// Which server a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `tapir run`, `sip-refer`, REST API.
    Tapir,
    /// Kamailio 5.6, `dlg.bridge_dlg` over JSON-RPC.
    Kamailio,
}

impl Side {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Side::Tapir => "tapir",
            Side::Kamailio => "kamailio",
        }
    }
}

/// A running server under test, stopped when dropped.
pub enum Server {
    /// tapir and its configuration folder.
    Tapir {
        guard: Guard,
        http: String,
        line: u32,
        /// `?wait=10`: answered once MakeCall completes, when the first INVITE is out, as
        /// Kamailio answers the RPC once its `t_uac` sent the INVITE. Empty with
        /// `TAPIR_BENCH_NO_WAIT=1`: tapir answers 202 on accepting the request and the client
        /// can run ahead of the SIP side.
        query: &'static str,
        _dir: tempfile::TempDir,
    },
    /// Kamailio.
    Kamailio {
        kamailio: Kamailio,
        http: String,
        sip_port: u16,
    },
}

/// The `tapir` binary cargo built for this bench (release under `cargo bench`), or
/// `TAPIR_BENCH_BIN` (to compare two builds, A/B).
fn tapir_bin() -> PathBuf {
    std::env::var_os("TAPIR_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tapir")))
}

fn wait_http(addr: &str, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(mut c) = Http::connect(addr) {
            if c.request("GET", "/healthz", "").is_ok() {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Server {
    /// Starts `side` with the phone at `127.0.0.1:<phone_port>`.
    ///
    /// # Panics
    /// When the server does not start (a broken bench setup).
    pub fn start(side: Side, phone_port: u16) -> Server {
        match side {
            Side::Tapir => Self::start_tapir(phone_port),
            Side::Kamailio => Self::start_kamailio(phone_port),
        }
    }

    fn start_tapir(phone_port: u16) -> Server {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("temporary folder: {e}"),
        };
        let port = free_port();
        let http = format!("127.0.0.1:{port}");
        let linger = env_num("TAPIR_BENCH_LINGER_S", 10);
        // The runtime's workers: tapir's default unless set (for A/B).
        let workers = match env_num("TAPIR_BENCH_WORKERS", 0) {
            0 => String::new(),
            n => format!("workers = {n}\n"),
        };
        let config = format!(
            "[log]\nlevel = \"warn\"\n\n[http]\nlisten = \"{http}\"\n{workers}\n[api]\nidle_call_linger_s = {linger}\n\n\
             [phones]\nlisten = \"127.0.0.1:0\"\n\n[drivers.pbx]\ndriver = \"sip-refer\"\n\
             bind = \"127.0.0.1:0\"\nlines = [ {{ key = \"desk\", domain = \"127.0.0.1\", \
             phone_address = \"127.0.0.1:{phone_port}\", \
             user = \"ctd\", phone_user = \"201\", auto_answer = true, max_calls = 100000, \
             notify_timeout_secs = 25 }} ]\n"
        );
        let path = dir.path().join("tapir.toml");
        if let Err(e) = std::fs::write(&path, config) {
            panic!("write {}: {e}", path.display());
        }
        let mut cmd = Command::new(tapir_bin());
        // The bench's own variables are no tapir settings.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TAPIR_BENCH_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("run")
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let guard = Guard::start("tapir run", &mut cmd);
        if !wait_http(&http, Duration::from_secs(20)) {
            panic!("tapir did not answer on {http}");
        }
        // The line's id: the only line of the configuration.
        let line = Http::connect(&http)
            .and_then(|mut c| c.request("GET", "/v1/lines", ""))
            .ok()
            .and_then(|(_, body)| {
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                v.as_array()?.first()?.get("id")?.as_u64()
            })
            .and_then(|id| u32::try_from(id).ok());
        let Some(line) = line else {
            panic!("tapir's /v1/lines has no line");
        };
        Server::Tapir {
            guard,
            http,
            line,
            query: if env_num("TAPIR_BENCH_NO_WAIT", 0) == 0 {
                "?wait=10"
            } else {
                ""
            },
            _dir: dir,
        }
    }

    fn start_kamailio(phone_port: u16) -> Server {
        let Some(bin) = tapir_test_support::programs::kamailio() else {
            panic!("kamailio is not installed");
        };
        let http_port = free_port();
        let children = env_num("TAPIR_BENCH_KAMAILIO_CHILDREN", 2);
        // Shared memory: at 256 MiB Kamailio ran out ("short of cell shmem") after about 10,000
        // click-to-dials at full speed: its transactions wait out their timers in it.
        let shm_mb = u32::try_from(env_num("TAPIR_BENCH_KAMAILIO_SHM_MB", 2048)).unwrap_or(2048);
        let kamailio = Kamailio::builder(&bin, |sip| kamailio_config(sip, http_port, children))
            .memory(shm_mb, 16)
            .name("kamailio bench")
            .start();
        let http = format!("127.0.0.1:{http_port}");
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&http).is_err() {
            if Instant::now() > until {
                panic!(
                    "kamailio's HTTP port {http} is not open:\n{}",
                    kamailio.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = phone_port;
        let sip_port = kamailio.port();
        Server::Kamailio {
            kamailio,
            http,
            sip_port,
        }
    }

    /// The server's HTTP `host:port`.
    pub fn http(&self) -> &str {
        match self {
            Server::Tapir { http, .. } | Server::Kamailio { http, .. } => http,
        }
    }

    /// The process(es) whose CPU and memory count.
    pub fn procs(&self) -> Procs {
        match self {
            Server::Tapir { guard, .. } => Procs::One(guard.pid()),
            Server::Kamailio { kamailio, .. } => Procs::Group(kamailio.pid()),
        }
    }

    /// The request path and body that start one click-to-dial to the phone.
    pub fn dial_request(&self, phone_port: u16, n: u64) -> (String, String) {
        match self {
            Server::Tapir { line, query, .. } => (
                format!("/v1/lines/{line}/calls{query}"),
                format!("{{\"destination\":\"2{:05}\"}}", n % 100_000),
            ),
            Server::Kamailio { .. } => (
                "/RPC".to_owned(),
                format!(
                    "{{\"jsonrpc\":\"2.0\",\"method\":\"dlg.bridge_dlg\",\"params\":\
                     [\"sip:201@127.0.0.1:{phone_port}\",\"sip:2{:05}@127.0.0.1\"],\"id\":{n}}}",
                    n % 100_000
                ),
            ),
        }
    }

    /// Whether an answer to [`Server::dial_request`] says the call was started.
    pub fn accepted(&self, status: u16, body: &str) -> bool {
        match self {
            Server::Tapir { .. } => status == 202 || status == 200,
            Server::Kamailio { .. } => status == 200 && !body.contains("\"error\""),
        }
    }

    /// The last `lines` lines Kamailio logged (tapir's log goes to the bench's stderr).
    pub fn log_tail(&self, lines: usize) -> Option<String> {
        let Server::Kamailio { kamailio, .. } = self else {
            return None;
        };
        let log = kamailio.log();
        let all: Vec<&str> = log.lines().collect();
        Some(all[all.len().saturating_sub(lines)..].join("\n"))
    }

    /// The server's own count of SIP retransmissions (tapir's metric; none for Kamailio).
    pub fn retransmissions(&self) -> Option<u64> {
        let Server::Tapir { http, .. } = self else {
            return None;
        };
        let (_, body) = Http::connect(http)
            .and_then(|mut c| c.request("GET", "/metrics", ""))
            .ok()?;
        Some(
            body.lines()
                .filter(|l| l.starts_with("tapir_sip_retransmissions_total"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .sum::<f64>() as u64,
        )
    }
}

/// Kamailio's configuration: SIP on UDP `sip` with `children` workers, JSON-RPC over HTTP on
/// TCP `http`; the dialog module's bridge identifies itself with a Contact on the SIP port so
/// the phone's NOTIFYs come back here, where they are answered 200.
///
/// UDP socket buffers up to 4 MiB, as tapir asks for (Kamailio's auto-probing stops at
/// 256 KiB by default; bursts then overflowed it, the kernel dropped SIPp's answers and
/// Kamailio's INVITE retransmissions made SIPp abort calls).
///
/// One TCP worker: with two, Kamailio 5.6.3 gave INVITEs from both workers the same Call-IDs
/// (seen here: SIPp received a new INVITE with the Call-ID of a call in progress), so
/// concurrent JSON-RPC requests are served by one process; the SIP work (the replies, the
/// REFER, the BYE) runs in the UDP workers.
fn kamailio_config(sip: u16, http: u16, children: u64) -> String {
    format!(
        r#"#!KAMAILIO
debug=1
log_stderror=yes
memdbg=5
memlog=5
children={children}
tcp_children=1
maxbuffer=4194304
auto_aliases=no
listen=udp:127.0.0.1:{sip}
listen=tcp:127.0.0.1:{http}
tcp_accept_no_cl=yes
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "dialog.so"
loadmodule "xhttp.so"
loadmodule "jsonrpcs.so"
modparam("dialog", "bridge_controller", "sip:ctd@127.0.0.1:{sip}")
modparam("dialog", "bridge_contact", "sip:ctd@127.0.0.1:{sip}")
modparam("jsonrpcs", "transport", 1)
request_route {{
    if (method == "ACK") {{
        exit;
    }}
    if (method == "NOTIFY") {{
        sl_send_reply("200", "OK");
        exit;
    }}
    sl_send_reply("405", "Not Here");
}}
event_route[xhttp:request] {{
    if ($hu =~ "^/RPC") {{
        jsonrpc_dispatch();
        exit;
    }}
    xhttp_reply("200", "OK", "text/plain", "ok");
}}
"#
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        match self {
            Server::Tapir { guard, .. } => guard.kill(),
            Server::Kamailio { kamailio, .. } => kamailio.stop(),
        }
    }
}
