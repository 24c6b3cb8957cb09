//! `PhoneDriver::line_opened`: the front end tells the driver when a line's open count goes
//! from 0 to 1, and only then; a driver that panics there does not stop the open.

use std::sync::{Arc, Mutex};
use tapir_core::*;
use tapir_tsp::{Tsp, TspConfig};

/// Records the lines it is told were opened; panics for line `boom`.
struct Opened(Arc<Mutex<Vec<String>>>);

impl PhoneDriver for Opened {
    fn submit(&self, _request: RequestEnvelope) -> Result<(), DriverError> {
        Err(DriverError::unavailable("no requests"))
    }
    fn line_opened(&self, line: &LineKey) {
        assert_ne!(line.as_str(), "boom", "the driver chokes on boom");
        self.0.lock().expect("lock").push(line.as_str().to_owned());
    }
    fn shutdown(&self) {}
}

fn line(key: &str) -> DriverEvent {
    DriverEvent::LineCreated {
        info: LineInfo {
            key: LineKey::new(key),
            name: key.into(),
            caps: LineCaps::default(),
            in_service: true,
        },
    }
}

#[test]
fn drivers_hear_of_a_line_opening_only_on_the_first_open() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tsp = Tsp::new(TspConfig::default());
    let kept = Arc::clone(&seen);
    tsp.add_driver("opened", move |sink: SharedSink| {
        sink.event(line("a"));
        sink.event(line("boom"));
        Ok(Box::new(Opened(kept)) as Box<dyn PhoneDriver>)
    })
    .expect("builds");
    tsp.sync();
    let id = |key: &str| {
        tsp.lines()
            .into_iter()
            .find(|l| l.key.as_str() == key)
            .map(|l| l.id)
            .expect("line exists")
    };
    let (a, boom) = (id("a"), id("boom"));
    let seen = || seen.lock().expect("lock").clone();

    tsp.open_line(a).expect("opens");
    assert_eq!(seen(), ["a"]);
    // A second opener: no news for the driver.
    tsp.open_line(a).expect("opens twice");
    assert_eq!(seen(), ["a"]);
    tsp.close_line(a).expect("closes");
    tsp.open_line(a).expect("opens again");
    assert_eq!(seen(), ["a"], "still one opener in between");
    // All openers gone, then opened again: 0 -> 1 once more.
    tsp.close_line(a).expect("closes");
    tsp.close_line(a).expect("closes the last");
    tsp.open_line(a).expect("opens again");
    assert_eq!(seen(), ["a", "a"]);
    // A refused open tells the driver nothing.
    assert!(tsp.open_line(LineId(999)).is_err());
    assert_eq!(seen(), ["a", "a"]);
    // A panic in the driver is caught: the line is open all the same.
    tsp.open_line(boom).expect("opens despite the panic");
    tsp.close_line(boom).expect("it was open");
    tsp.shutdown();
}
