//! Where a SIP driver's tasks run, and how they all end with the driver. The `PhoneDriver`
//! contract is synchronous, so a driver that speaks SIP only enqueues work in `submit`; every
//! SIP driver builds, enters and shuts down its runtime the same way, here.
//!
//! A driver built on a thread inside a multi-threaded tokio runtime (the `tapir` host builds
//! its drivers so) runs its tasks on that runtime: the API request, the call's SIP work and
//! the events it publishes then pass between tasks of one scheduler, without waking a thread
//! of another runtime for each hand-off (the `versus_kamailio` bench measured those wake-ups
//! as the largest cost per call). Built anywhere else (the Windows TSP, tests), it starts a
//! runtime of its own with one worker.
//!
//! Either way every task of the driver is spawned in its scope ([`Spawner::spawn`], or
//! [`spawn`] from inside one of its tasks) and has ended when the driver's shutdown returns
//! (or its drop), so its sockets are closed and a reload binds them again at once, also with
//! calls in flight.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a shutdown waits for the driver's tasks to end (each ends at its next poll once
/// told to; only a task stuck in a blocking call takes longer).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// A driver's scope: its stop signal and the count of its tasks still alive.
#[derive(Debug, Clone)]
struct Scope {
    stop: watch::Receiver<bool>,
    live: Arc<AtomicUsize>,
}

tokio::task_local! {
    /// The scope of the driver whose task is running.
    static SCOPE: Scope;
}

/// Counts one live task of a driver until dropped (with the task's future, however it ends).
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(live: &Arc<AtomicUsize>) -> Alive {
        live.fetch_add(1, Ordering::SeqCst);
        Alive(live.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `fut` in the scope of a driver: until it ends or the driver stops.
fn scoped<F>(scope: Scope, fut: F) -> impl Future<Output = ()> + Send + 'static
where
    F: Future<Output = ()> + Send + 'static,
{
    let alive = Alive::new(&scope.live);
    let mut watch = scope.stop.clone();
    SCOPE.scope(scope, async move {
        let _alive = alive;
        tokio::select! {
            biased;
            () = fut => {}
            // Stop asked, or the driver (the sender) is gone.
            _ = watch.wait_for(|stopped| *stopped) => {}
        }
    })
}

/// Spawns `fut` on the current runtime; from inside a driver's task it belongs to that driver
/// and ends with it.
///
/// # Panics
/// Outside a tokio runtime (as `tokio::spawn`).
pub fn spawn<F>(fut: F) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    match SCOPE.try_with(Clone::clone) {
        Ok(scope) => tokio::spawn(scoped(scope, fut)),
        Err(_) => tokio::spawn(fut),
    }
}

/// Spawns a driver's tasks, from any thread.
#[derive(Debug, Clone)]
pub struct Spawner {
    handle: Handle,
    scope: Scope,
}

impl Spawner {
    /// Spawns `fut` as a task of the driver: it ends when the driver stops.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(scoped(self.scope.clone(), fut))
    }
}

/// The runtime a SIP driver's tasks run on: the host's, or its own.
pub struct DriverRuntime {
    /// Its own runtime; `None` when it shares the host's (or after shutdown).
    rt: Mutex<Option<Runtime>>,
    spawner: Spawner,
    stop: watch::Sender<bool>,
    shared: bool,
}

impl std::fmt::Debug for DriverRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverRuntime")
            .field("shared", &self.shared)
            .finish()
    }
}

impl DriverRuntime {
    /// The runtime of the calling thread when it is a multi-threaded one; otherwise a runtime
    /// of its own with one worker, whose thread is called `thread_name`.
    ///
    /// # Errors
    /// The I/O error when an own runtime cannot start.
    pub fn new(thread_name: &str) -> std::io::Result<DriverRuntime> {
        let (stop, stop_rx) = watch::channel(false);
        let host = Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
        let (rt, handle) = match host {
            Some(handle) => (None, handle),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(thread_name)
                    .enable_all()
                    .build()?;
                let handle = rt.handle().clone();
                (Some(rt), handle)
            }
        };
        Ok(DriverRuntime {
            shared: rt.is_none(),
            rt: Mutex::new(rt),
            spawner: Spawner {
                handle,
                scope: Scope {
                    stop: stop_rx,
                    live: Arc::new(AtomicUsize::new(0)),
                },
            },
            stop,
        })
    }

    /// Spawns the driver's tasks.
    pub fn spawner(&self) -> &Spawner {
        &self.spawner
    }

    /// Whether the tasks run on the runtime of the thread that built the driver.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Runs `f` to its end on the runtime, from a thread of its own: a driver is built from
    /// whatever thread the host uses, possibly inside another runtime, where blocking on this
    /// one directly would panic. Tasks `f` spawns with [`spawn`] belong to the driver. `None`
    /// if that thread panicked.
    pub fn block_on<F>(&self, f: F) -> Option<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let handle = &self.spawner.handle;
        let scope = self.spawner.scope.clone();
        std::thread::scope(|s| {
            s.spawn(move || handle.block_on(SCOPE.scope(scope, f)))
                .join()
                .ok()
        })
    }

    /// Ends every task of the driver and returns once they have ended (at most
    /// [`SHUTDOWN_WAIT`]), then stops its own runtime. On a worker thread of the host's
    /// runtime the wait lets that worker's other tasks (the driver's among them) run elsewhere.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        let live = &self.spawner.scope.live;
        let wait = || {
            let until = Instant::now() + SHUTDOWN_WAIT;
            while live.load(Ordering::SeqCst) > 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        if live.load(Ordering::SeqCst) > 0 {
            let on_worker = Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
            if on_worker {
                tokio::task::block_in_place(wait);
            } else {
                wait();
            }
        }
        let left = live.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(tasks = left, "a SIP driver's tasks did not end in time");
        }
        if let Ok(mut rt) = self.rt.lock() {
            if let Some(rt) = rt.take() {
                rt.shutdown_background();
            }
        }
    }
}

impl Drop for DriverRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn blocks_on_from_inside_another_runtime() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("outer runtime");
        let ours = DriverRuntime::new("test-rt").expect("runtime");
        assert!(!ours.is_shared(), "a current-thread runtime is not shared");
        let got = outer.block_on(async { ours.block_on(async { 6 * 7 }) });
        assert_eq!(got, Some(42));
        ours.shutdown();
        ours.shutdown();
    }

    /// A task that holds a flag until it is dropped, spawned through `how`.
    fn hold(flag: Arc<AtomicBool>) -> impl Future<Output = ()> + Send + 'static {
        struct Holder(Arc<AtomicBool>);
        impl Drop for Holder {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        flag.store(true, Ordering::SeqCst);
        let holder = Holder(flag);
        async move {
            let _holder = holder;
            std::future::pending::<()>().await;
        }
    }

    fn wait_false(flag: &AtomicBool) -> bool {
        for _ in 0..200 {
            if !flag.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// A host runtime with `workers`, and a driver built inside it (dropped first).
    fn host_and_driver(workers: usize) -> (Runtime, DriverRuntime) {
        let host = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("host runtime");
        let driver = {
            let _in_host = host.enter();
            DriverRuntime::new("unused").expect("runtime")
        };
        (host, driver)
    }

    #[test]
    fn a_driver_on_the_host_runtime_takes_every_task_down_with_it() {
        let (host, driver) = host_and_driver(2);
        assert!(driver.is_shared());
        let (direct, child, from_block_on) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        // A task of the driver, one it spawns in turn, and one spawned while building.
        let c = child.clone();
        driver.spawner().spawn(async move {
            let _ = spawn(hold(c)).await;
        });
        driver.spawner().spawn(hold(direct.clone()));
        let b = from_block_on.clone();
        driver.block_on(async move {
            spawn(hold(b));
        });
        // A task of the host, not of the driver.
        let other = Arc::new(AtomicBool::new(false));
        host.spawn(hold(other.clone()));
        std::thread::sleep(Duration::from_millis(50));
        assert!(direct.load(Ordering::SeqCst) && child.load(Ordering::SeqCst));
        assert!(from_block_on.load(Ordering::SeqCst) && other.load(Ordering::SeqCst));
        driver.shutdown();
        assert!(wait_false(&direct), "the driver's own task ended");
        assert!(wait_false(&child), "a task its task spawned ended");
        assert!(
            wait_false(&from_block_on),
            "a task spawned while building ended"
        );
        assert!(other.load(Ordering::SeqCst), "the host's task runs on");
    }

    /// A driver task holding a bound UDP socket; the port.
    fn bind_in_task(driver: &DriverRuntime) -> u16 {
        let (tx, rx) = std::sync::mpsc::channel();
        driver.spawner().spawn(async move {
            let Ok(socket) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
                return;
            };
            let _ = tx.send(socket.local_addr().map(|a| a.port()).unwrap_or(0));
            std::future::pending::<()>().await;
        });
        rx.recv_timeout(Duration::from_secs(5)).expect("bound")
    }

    #[test]
    fn shutdown_returns_once_the_tasks_ended_even_with_the_worker_busy() {
        for shared in [true, false] {
            let (host, driver) = host_and_driver(1);
            let driver = if shared {
                driver
            } else {
                drop(driver);
                DriverRuntime::new("own-rt").expect("runtime")
            };
            assert_eq!(driver.is_shared(), shared);
            let port = bind_in_task(&driver);
            // The worker that must drop the task is busy when the stop comes.
            let busy = if shared {
                host.spawn(async { std::thread::sleep(Duration::from_millis(200)) })
            } else {
                driver
                    .spawner()
                    .spawn(async { std::thread::sleep(Duration::from_millis(200)) })
            };
            std::thread::sleep(Duration::from_millis(20));
            driver.shutdown();
            // At once: the socket is closed and its port binds again (as a reload does).
            let again = std::net::UdpSocket::bind(("127.0.0.1", port));
            assert!(again.is_ok(), "shared {shared}: port {port} still bound");
            drop(busy);
        }
    }

    #[test]
    fn shutdown_from_a_worker_of_the_host_runtime_does_not_stall_it() {
        let (host, driver) = host_and_driver(1);
        let port = bind_in_task(&driver);
        let started = std::time::Instant::now();
        // Dropped inside a task of the only worker, which must still run the driver's task.
        host.block_on(async move {
            let _ = tokio::spawn(async move { drop(driver) }).await;
        });
        assert!(started.elapsed() < SHUTDOWN_WAIT, "waited out the limit");
        assert!(std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn dropping_the_driver_ends_its_tasks_too() {
        let (_host, driver) = host_and_driver(1);
        let flag = Arc::new(AtomicBool::new(false));
        driver.spawner().spawn(hold(flag.clone()));
        std::thread::sleep(Duration::from_millis(50));
        assert!(flag.load(Ordering::SeqCst));
        drop(driver);
        assert!(wait_false(&flag));
    }
}
