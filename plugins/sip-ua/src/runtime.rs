//! The tokio runtime a SIP driver owns. The `PhoneDriver` contract is synchronous, so a driver
//! that speaks SIP owns its runtime and only enqueues work in `submit`; every SIP driver builds,
//! enters and shuts it down the same way, here.

use std::future::Future;
use std::sync::Mutex;
use tokio::runtime::{Handle, Runtime};

/// A driver's own runtime: tokio's multi-threaded scheduler with one worker. The endpoint task
/// and the call legs hand every message to each other over channels; on one worker such a
/// hand-off is a task switch on the same thread instead of waking a parked thread (futex,
/// context switch), which the `versus_kamailio` bench measured as the largest cost per call.
pub struct DriverRuntime {
    rt: Mutex<Option<Runtime>>,
    handle: Handle,
}

impl std::fmt::Debug for DriverRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DriverRuntime")
    }
}

impl DriverRuntime {
    /// Starts the runtime; its threads are called `thread_name`.
    ///
    /// # Errors
    /// The I/O error when the runtime cannot start.
    pub fn new(thread_name: &str) -> std::io::Result<DriverRuntime> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread_name)
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        Ok(DriverRuntime {
            rt: Mutex::new(Some(rt)),
            handle,
        })
    }

    /// The runtime's handle, to spawn on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `f` to its end on the runtime, from a thread of its own: a driver is built from
    /// whatever thread the host uses, possibly inside another runtime, where blocking on this
    /// one directly would panic. `None` if that thread panicked.
    pub fn block_on<F>(&self, f: F) -> Option<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let handle = &self.handle;
        std::thread::scope(|s| s.spawn(move || handle.block_on(f)).join().ok())
    }

    /// Stops the runtime without waiting for its tasks (they were told to end before).
    pub fn shutdown(&self) {
        if let Ok(mut rt) = self.rt.lock() {
            if let Some(rt) = rt.take() {
                rt.shutdown_background();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_on_from_inside_another_runtime() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("outer runtime");
        let ours = DriverRuntime::new("test-rt").expect("runtime");
        let got = outer.block_on(async { ours.block_on(async { 6 * 7 }) });
        assert_eq!(got, Some(42));
        ours.shutdown();
        ours.shutdown();
    }
}
