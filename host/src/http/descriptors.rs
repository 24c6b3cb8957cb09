//! The process's open-file limit. Every connection is a descriptor, and the usual soft limit
//! (1,024) is far below what a host serving thousands of phones and clients needs, while the
//! hard limit is usually much higher (systemd: 524,288). `tapir run` raises the soft limit to
//! the hard one at start, as Go programs do; what it cannot get is shed by the listeners'
//! guard (see [`super::guard`]).

/// Raises the soft open-file limit to the hard limit and logs what the host has.
#[cfg(unix)]
pub fn raise_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    let (Some(current), maximum) = (before.current, before.maximum) else {
        tracing::debug!("No open-file limit.");
        return;
    };
    let target = maximum.unwrap_or(u64::MAX);
    if target <= current {
        tracing::info!(open_files = current, "Open-file limit.");
        return;
    }
    let raised = Rlimit {
        current: maximum,
        maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            from = current,
            to = maximum.map_or_else(|| "unlimited".to_owned(), |m| m.to_string()),
            "Open-file limit raised to the hard limit."
        ),
        Err(error) => tracing::info!(
            open_files = current,
            %error,
            "Open-file limit could not be raised."
        ),
    }
}

/// Other systems keep their limits.
#[cfg(not(unix))]
pub fn raise_limit() {}
