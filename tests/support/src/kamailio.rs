//! Kamailio as a proxy or registrar on 127.0.0.1: the test writes the configuration (given the
//! port picked for it), Kamailio runs in the foreground (`-DD -E`) in its own process group, so
//! dropping it stops its worker processes too. With [`Kamailio::builder_tls`] it also listens
//! for TLS (the `tls` module, Debian `kamailio-tls-modules`) with a configuration made by
//! [`tls_config`] from certificates the test made ([`crate::pki`]).

use crate::pki::Identity;
use crate::ports::{free_port, free_tcp_port, wait_taken};
use crate::server::{Ready, Server};
use std::path::Path;
use std::time::Duration;

/// How to start Kamailio; made by [`Kamailio::builder`].
#[derive(Debug, Clone)]
pub struct KamailioBuilder {
    bin: std::path::PathBuf,
    config: String,
    port: u16,
    name: String,
    shm_mb: u32,
    pkg_mb: u32,
    args: Vec<String>,
    tls_port: Option<u16>,
}

impl KamailioBuilder {
    /// Shared and per-process memory in MiB (`-m`, `-M`; default 64 and 8).
    pub fn memory(mut self, shm_mb: u32, pkg_mb: u32) -> Self {
        self.shm_mb = shm_mb;
        self.pkg_mb = pkg_mb;
        self
    }

    /// Further command-line arguments (for example `-n 1`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The name used in messages (default `kamailio`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts Kamailio; it is started once its UDP port (and its TLS port) is bound. A clone
    /// of the builder starts it again on the same ports (a restarted PBX).
    ///
    /// # Panics
    /// When it exits at start (a configuration error) or does not bind in time; the message
    /// carries its log.
    pub fn start(self) -> Kamailio {
        let server = Server::builder(self.name, &self.bin)
            .file("kamailio.cfg", self.config)
            .args(["-f", "{dir}/kamailio.cfg", "-DD", "-E"])
            .args(["-m".to_owned(), self.shm_mb.to_string()])
            .args(["-M".to_owned(), self.pkg_mb.to_string()])
            .args(["-Y", "{dir}", "-w", "{dir}"])
            .args(self.args)
            .ready(Ready::Udp(self.port))
            .within(Duration::from_secs(15))
            .start();
        if let Some(tls) = self.tls_port {
            if !wait_taken(tls, true, Duration::from_secs(15)) {
                panic!(
                    "kamailio did not listen on TLS port {tls}:\n{}",
                    server.log()
                );
            }
        }
        Kamailio {
            server,
            port: self.port,
            tls_port: self.tls_port,
        }
    }
}

/// A running Kamailio.
#[derive(Debug)]
pub struct Kamailio {
    server: Server,
    port: u16,
    tls_port: Option<u16>,
}

impl Kamailio {
    /// Kamailio with the configuration `config(port)` makes for the free port picked for it.
    pub fn builder(bin: &Path, config: impl FnOnce(u16) -> String) -> KamailioBuilder {
        let port = free_port();
        KamailioBuilder {
            bin: bin.to_path_buf(),
            config: config(port),
            port,
            name: "kamailio".into(),
            shm_mb: 64,
            pkg_mb: 8,
            args: Vec::new(),
            tls_port: None,
        }
    }

    /// Kamailio with TLS: `config(port, tls_port)` makes the configuration for the UDP/TCP
    /// port and the TLS port picked for it (see [`tls_module`]).
    pub fn builder_tls(bin: &Path, config: impl FnOnce(u16, u16) -> String) -> KamailioBuilder {
        let port = free_port();
        let mut tls_port = free_tcp_port();
        while tls_port == port {
            tls_port = free_tcp_port();
        }
        KamailioBuilder {
            bin: bin.to_path_buf(),
            config: config(port, tls_port),
            port,
            name: "kamailio-tls".into(),
            shm_mb: 64,
            pkg_mb: 8,
            args: Vec::new(),
            tls_port: Some(tls_port),
        }
    }

    /// Its SIP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its TLS port on 127.0.0.1 (made with [`Self::builder_tls`]).
    ///
    /// # Panics
    /// When it was started without TLS.
    pub fn tls_port(&self) -> u16 {
        match self.tls_port {
            Some(p) => p,
            None => panic!("this Kamailio has no TLS port"),
        }
    }

    /// What it logged so far (`xlog` lines and errors).
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Its PID (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Stops it and its workers now.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

/// The TLS side of a Kamailio configuration: the `tls` module reading `tls_cfg` (a file made
/// by [`tls_config`]), listening on `tls_port`; `listen=` for UDP/TCP stays the caller's.
pub fn tls_module(tls_port: u16, tls_cfg: &Path) -> String {
    format!(
        "enable_tls=yes\nlisten=tls:127.0.0.1:{tls_port}\nloadmodule \"tls.so\"\n\
         modparam(\"tls\", \"config\", \"{}\")\n",
        tls_cfg.display()
    )
}

/// Kamailio's `tls.cfg`: as a server it presents `server` and, with `require_client_cert`,
/// demands a client certificate issued by `ca`; as a client (when it connects to us) it
/// checks nothing.
pub fn tls_config(server: &Identity, ca: &Path, require_client_cert: bool) -> String {
    let verify = if require_client_cert { "yes" } else { "no" };
    format!(
        "[server:default]\nmethod = TLSv1.2+\nverify_certificate = {verify}\n\
         require_certificate = {verify}\nprivate_key = {}\ncertificate = {}\nca_list = {}\n\n\
         [client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
        server.key.display(),
        server.cert.display(),
        ca.display()
    )
}

/// A PBX for the drivers' TLS and NAT tests: Kamailio on `port` (UDP, TCP) and, with `tls`,
/// on a TLS port (`tls_module`). Initial requests from `client_user` (tapir's account) go to
/// the phone at 127.0.0.1:`phone_port` (SIPp, UDP), record-routed; other initial requests (a
/// caller) go to the registered contact. Requests from TLS/TCP clients get an alias of the
/// connection they came on in their Contact (`add_contact_alias`, initial and in-dialog), and
/// their REGISTERs record it as `received` (`fix_nated_register`), so in-dialog requests and
/// incoming calls reach them over their own connection, as PBXs serve TLS clients that do not
/// listen. Every request and reply is logged with its transport (`proto=tls`), source,
/// Request-URI and Contact.
pub fn pbx_config(
    port: u16,
    tls: Option<(u16, &Path)>,
    phone_port: u16,
    client_user: &str,
) -> String {
    let tls = tls
        .map(|(tls_port, cfg)| tls_module(tls_port, cfg))
        .unwrap_or_default();
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
{tls}loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "nathelper.so"
modparam("usrloc", "db_mode", 0)
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "received_avp", "$avp(RECEIVED)")

onreply_route {{
    xlog("L_INFO", "reply $rs $rm proto=$pr src=$si:$sp\n");
}}

request_route {{
    xlog("L_INFO", "request $rm proto=$pr src=$si:$sp ruri=$ru contact=[$hdr(Contact)]\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (proto == TLS || proto == TCP) {{
        add_contact_alias();
    }}
    if (has_totag()) {{
        # In-dialog: the Route set, or the Request-URI (the phone's NOTIFYs carry no Route);
        # an aliased Request-URI goes over the connection the alias names.
        if (!loose_route()) {{
            if (is_method("ACK") && !t_check_trans()) {{
                exit;
            }}
        }}
        handle_ruri_alias();
        t_relay();
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();
    if (is_method("REGISTER")) {{
        if (proto == TLS || proto == TCP) {{
            fix_nated_register();
        }}
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if ($fU == "{client_user}") {{
        $du = "sip:127.0.0.1:{phone_port}";
    }} else if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    record_route();
    t_relay();
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(port: u16) -> String {
        format!(
            "#!KAMAILIO\ndebug=2\nlog_stderror=yes\nchildren=2\nauto_aliases=no\n\
             listen=udp:127.0.0.1:{port}\nloadmodule \"sl.so\"\nloadmodule \"pv.so\"\nloadmodule \"xlog.so\"\n\
             request_route {{\n    xlog(\"L_INFO\", \"request $rm\\n\");\n    \
             sl_send_reply(\"404\", \"Not Here\");\n}}\n"
        )
    }

    /// The PIDs of processes in group `pgid`.
    fn group_members(pgid: u32) -> Vec<String> {
        let out = std::process::Command::new("ps")
            .args(["-e", "-o", "pid=,pgid="])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (pid, group) = (f.next()?, f.next()?);
                (group == pgid.to_string()).then(|| pid.to_owned())
            })
            .collect()
    }

    #[test]
    fn kamailio_starts_and_its_workers_stop_with_it() {
        let Some(bin) = crate::programs::kamailio() else {
            return;
        };
        let k = Kamailio::builder(&bin, config).start();
        let pgid = k.pid();
        assert!(
            group_members(pgid).len() > 1,
            "Kamailio forks its workers into its group"
        );
        drop(k);
        let gone = crate::wait::until(Duration::from_secs(10), || {
            group_members(pgid).is_empty().then_some(())
        });
        assert!(gone.is_some(), "workers left: {:?}", group_members(pgid));
    }

    #[test]
    fn kamailio_listens_for_tls_with_a_test_certificate() {
        let Some(bin) = crate::programs::kamailio_tls() else {
            return;
        };
        let pki = crate::pki::Pki::new("tapir test CA");
        let server = pki.server("kamailio", &["localhost", "127.0.0.1"]);
        let cfg = pki.write("tls.cfg", &tls_config(&server, pki.ca_file(), false));
        let k = Kamailio::builder_tls(&bin, |port, tls| {
            format!("{}{}", config(port), tls_module(tls, &cfg))
        })
        .start();
        assert!(crate::ports::tcp_taken(k.tls_port()));
        assert!(!k.log().contains("ERROR"), "{}", k.log());
    }

    #[test]
    fn a_broken_configuration_fails_with_the_log() {
        let Some(bin) = crate::programs::kamailio() else {
            return;
        };
        let started = std::panic::catch_unwind(|| {
            Kamailio::builder(&bin, |port| {
                format!("listen=udp:127.0.0.1:{port}\nno such thing\n")
            })
            .start()
        });
        let Err(panic) = started else {
            panic!("Kamailio started on a broken configuration");
        };
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("exited at start"), "{text}");
    }
}
