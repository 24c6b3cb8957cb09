//! Polling with a deadline, for conditions no event announces (a file written, a port bound).

use std::time::{Duration, Instant};

/// Calls `f` every 20 ms until it returns `Some`, at most `limit`; the last try happens at the
/// deadline.
pub fn until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
