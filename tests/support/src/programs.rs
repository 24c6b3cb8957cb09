//! Where the programs tests need are installed. A missing program is not a failure here: the
//! helper prints `SKIPPED: <why>` and returns `None`, and the test returns. (`.ci/run` installs
//! every program, so in CI they do run.)

use std::path::{Path, PathBuf};

/// Folders searched besides `PATH` (daemons such as Kamailio live in `sbin`).
const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"];

/// The program `name` from `PATH` or the usual `bin`/`sbin` folders, or `None` after printing
/// `SKIPPED: ...` with the Debian package that provides it.
pub fn program(name: &str, debian_package: &str) -> Option<PathBuf> {
    let found = find(name);
    if found.is_none() {
        println!(
            "SKIPPED: `{name}` is not installed (apt-get install {debian_package}); .ci/run installs it"
        );
    }
    found
}

/// The program without printing anything.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// SIPp (Debian package `sip-tester`).
pub fn sipp() -> Option<PathBuf> {
    program("sipp", "sip-tester")
}

/// nats-server (Debian package `nats-server`).
pub fn nats_server() -> Option<PathBuf> {
    program("nats-server", "nats-server")
}

/// Kamailio (Debian package `kamailio`).
pub fn kamailio() -> Option<PathBuf> {
    program("kamailio", "kamailio")
}

/// Kamailio with its TLS module (Debian packages `kamailio` and `kamailio-tls-modules`).
pub fn kamailio_tls() -> Option<PathBuf> {
    let bin = kamailio()?;
    let module = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .map(|d| Path::new(d).join("kamailio/modules/tls.so"))
    .any(|p| p.exists());
    if !module {
        println!(
            "SKIPPED: Kamailio's TLS module is not installed (apt-get install kamailio-tls-modules); .ci/run installs it"
        );
        return None;
    }
    Some(bin)
}

/// coturn's STUN/TURN server (Debian package `coturn`).
pub fn turnserver() -> Option<PathBuf> {
    program("turnserver", "coturn")
}

/// unbound, the DNS server of the DNS tests (Debian package `unbound`).
pub fn unbound() -> Option<PathBuf> {
    program("unbound", "unbound")
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_installed_programs_and_not_missing_ones() {
        assert!(super::find("sh").is_some());
        assert!(super::find("no-such-program-tapir").is_none());
        assert!(super::program("no-such-program-tapir", "nothing").is_none());
    }
}
