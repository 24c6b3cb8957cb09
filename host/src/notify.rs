//! The systemd notification protocol (`Type=notify`): one datagram to the Unix socket named
//! by `$NOTIFY_SOCKET` per state change (`READY=1`, `RELOADING=1` with `MONOTONIC_USEC`,
//! `STOPPING=1`). Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent. A name
//! starting with `@` is a Linux abstract socket.

/// The daemon serves: start-up or a reload is done.
pub fn ready() {
    send("READY=1\nSTATUS=Serving.\n");
}

/// A reload starts; [`ready`] follows when it is done.
pub fn reloading() {
    let usec = monotonic_usec();
    send(&format!(
        "RELOADING=1\nSTATUS=Reloading the configuration.\nMONOTONIC_USEC={usec}\n"
    ));
}

/// The daemon is stopping.
pub fn stopping() {
    send("STOPPING=1\nSTATUS=Stopping.\n");
}

#[cfg(unix)]
fn send(message: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send_to(&target, message) {
        tracing::warn!(socket = ?target, %error, "Cannot notify the service manager.");
    }
}

#[cfg(unix)]
fn send_to(target: &std::ffi::OsStr, message: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let socket = UnixDatagram::unbound()?;
    let bytes = target.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(message.as_bytes(), &addr)?;
            return Ok(());
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = name;
            return Err(std::io::Error::other("abstract sockets need Linux"));
        }
    }
    socket.send_to(message.as_bytes(), target)?;
    Ok(())
}

#[cfg(not(unix))]
fn send(_message: &str) {}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares reloads with.
#[cfg(unix)]
fn monotonic_usec() -> u128 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u128::try_from(now.tv_sec).unwrap_or(0) * 1_000_000
        + u128::try_from(now.tv_nsec).unwrap_or(0) / 1_000
}

#[cfg(not(unix))]
fn monotonic_usec() -> u128 {
    0
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reaches_the_socket() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        send_to(path.as_os_str(), "READY=1\n").expect("sent");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"READY=1\n");
        assert!(monotonic_usec() > 0);
    }
}
