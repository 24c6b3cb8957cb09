//! Kamailio as a proxy or registrar on 127.0.0.1: the test writes the configuration (given the
//! port picked for it), Kamailio runs in the foreground (`-DD -E`) in its own process group, so
//! dropping it stops its worker processes too.

use crate::ports::free_port;
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

    /// Starts Kamailio; it is started once its UDP port is bound.
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
        Kamailio {
            server,
            port: self.port,
        }
    }
}

/// A running Kamailio.
#[derive(Debug)]
pub struct Kamailio {
    server: Server,
    port: u16,
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
        }
    }

    /// Its SIP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
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
