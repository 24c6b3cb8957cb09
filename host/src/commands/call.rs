//! `tapir call`: a one-shot for administrators testing a setup. Starts the host in-process
//! (no HTTP endpoint), places one call, prints every event of that line as a JSON line on
//! stdout, and exits 0 when the call ended normally.
//!
//! "Normally" means it was connected and then ended by either side without error. Busy, a
//! failed request, a disconnect for any other reason, or the timeout end it with a non-zero
//! status and the reason on stderr: the state, and the driver's own words for it (the call's
//! `cause`, such as `603 Decline`), printed whatever the log level. It exits only once the
//! MakeCall has completed too, so a failed MakeCall's error is never lost.

use crate::config::Source;
use crate::embedded::Embedded;
use crate::host::Host;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tapir_core::{AddressId, CallId, CallState, DisconnectMode, LineId, RequestId};
use tapir_tsp::{Action, RequestResult, TspEvent};
use tokio::sync::broadcast::error::TryRecvError;

/// What the command was asked.
pub struct Args {
    /// Configuration file.
    pub config: PathBuf,
    /// Line id or key.
    pub line: String,
    /// Address to call from.
    pub address: u32,
    /// Overall limit.
    pub timeout: Duration,
    /// Hang up this long after Connected.
    pub hangup_after: Option<Duration>,
    /// What to dial.
    pub number: String,
}

/// Exit statuses: 0 ended normally, 1 the call failed, 2 bad setup, 3 timeout.
pub fn run(args: Args) -> ExitCode {
    let source = Source::File(args.config.clone());
    let Some((mut config, catalog)) = super::load(&source) else {
        return ExitCode::from(2);
    };
    config.http.enabled = false;
    if let Err(error) = crate::logging::init(&config.log) {
        eprintln!("tapir: cannot set up logging: {error}");
        return ExitCode::from(2);
    }
    // Drivers that learn call state from phone callbacks need the phone endpoint while the
    // call runs; the embedded host serves it (or goes on without it when the port is taken).
    let host = Embedded::start(config, &catalog);
    let code = place(&host, &args);
    host.shutdown();
    code
}

fn fail(code: u8, reason: &str) -> ExitCode {
    eprintln!("tapir call: {reason}");
    ExitCode::from(code)
}

fn place(host: &Host, args: &Args) -> ExitCode {
    let tsp = &host.tsp;
    let lines = tsp.lines();
    let line = match args.line.parse::<u32>() {
        Ok(id) if lines.iter().any(|l| l.id == LineId(id)) => LineId(id),
        _ => match lines.iter().find(|l| l.key.as_str() == args.line) {
            Some(l) => l.id,
            None => {
                let known: Vec<_> = lines
                    .iter()
                    .map(|l| format!("{} ({})", l.id, l.key))
                    .collect();
                return fail(
                    2,
                    &format!("no line {:?}; lines: {}", args.line, known.join(", ")),
                );
            }
        },
    };
    let mut events = tsp.subscribe();
    if let Err(error) = tsp.open_line(line) {
        return fail(2, &format!("cannot open line {line}: {error}"));
    }
    let accepted = match tsp.submit(Action::MakeCall {
        line,
        address: AddressId(args.address),
        destination: Some(args.number.clone()),
    }) {
        Ok(a) => a,
        Err(error) => return fail(1, &format!("the call was refused: {error}")),
    };
    let Some(call) = accepted.call else {
        return fail(1, "the front end did not create a call");
    };
    let started = Instant::now();
    let mut watch = Watch::new(call, accepted.request);
    let mut dropping = false;
    loop {
        if started.elapsed() > args.timeout {
            let _ = tsp.submit(Action::Drop { call });
            return fail(3, &format!("timeout after {} s", args.timeout.as_secs()));
        }
        if let (Some(at), Some(after), false) = (watch.connected_at, args.hangup_after, dropping) {
            if at.elapsed() >= after {
                dropping = true;
                if let Err(error) = tsp.submit(Action::Drop { call }) {
                    return fail(1, &format!("hang-up refused: {error}"));
                }
            }
        }
        let event = match events.try_recv() {
            Ok(e) => e,
            Err(TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(TryRecvError::Lagged(n)) => {
                eprintln!("tapir call: {n} events were missed");
                continue;
            }
            Err(TryRecvError::Closed) => return fail(1, "the host stopped"),
        };
        if event.event.line() != line {
            continue;
        }
        match serde_json::to_string(&event) {
            Ok(json) => println!("{json}"),
            Err(error) => eprintln!("tapir call: cannot print an event: {error}"),
        }
        match watch.on_event(&event.event) {
            Next::Wait => {}
            Next::Drop => {
                if !dropping {
                    dropping = true;
                    let _ = tsp.submit(Action::Drop { call });
                }
            }
            Next::Exit(Ok(())) => {
                let _ = tsp.close_call(call);
                return ExitCode::SUCCESS;
            }
            Next::Exit(Err(reason)) => {
                let _ = tsp.close_call(call);
                return fail(1, &reason);
            }
        }
    }
}

/// What to do after an event.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Keep reading.
    Wait,
    /// Drop the call (it failed or was disconnected), then keep reading.
    Drop,
    /// Exit: Ok when the call was connected and ended normally, else the failure line.
    Exit(Result<(), String>),
}

/// Follows one call's events: its states, the cause its driver gives, and the completion of
/// its MakeCall. It ends only once both the call is over (Idle) and the MakeCall completed,
/// so the completion (and its error) is never lost to an Idle that came first.
struct Watch {
    call: CallId,
    make_call: RequestId,
    /// The MakeCall's result, once completed.
    placed: Option<Result<(), String>>,
    connected_at: Option<Instant>,
    /// Why the call failed, once known.
    ended: Option<String>,
    /// The driver's words for why (the SIP status and reason phrase).
    cause: Option<String>,
    idle: bool,
}

impl Watch {
    fn new(call: CallId, make_call: RequestId) -> Self {
        Self {
            call,
            make_call,
            placed: None,
            connected_at: None,
            ended: None,
            cause: None,
            idle: false,
        }
    }

    fn with_cause(&self, text: String) -> String {
        match &self.cause {
            Some(cause) => format!("{text} ({cause})"),
            None => text,
        }
    }

    fn on_event(&mut self, event: &TspEvent) -> Next {
        let mut next = Next::Wait;
        match event {
            TspEvent::Completed {
                request, result, ..
            } if *request == self.make_call => {
                self.placed = Some(match result {
                    RequestResult::Ok(_) => Ok(()),
                    RequestResult::Err(error) => {
                        Err(format!("the call could not be placed: {error}"))
                    }
                });
            }
            TspEvent::CallInfo { call, info, .. } if *call == self.call && info.cause.is_some() => {
                self.cause.clone_from(&info.cause);
            }
            TspEvent::CallState { call, state, .. } if *call == self.call => match state {
                CallState::Connected => {
                    self.connected_at.get_or_insert_with(Instant::now);
                }
                CallState::Busy(_) => {
                    if self.ended.is_none() {
                        self.ended = Some(self.with_cause("the far end is busy".to_owned()));
                    }
                    next = Next::Drop;
                }
                CallState::Disconnected(mode) => {
                    if *mode != DisconnectMode::Normal || self.connected_at.is_none() {
                        let text = format!("disconnected: {}", mode_name(*mode));
                        // A cause given with the Disconnected state is the better one.
                        self.ended = Some(self.with_cause(text));
                    }
                    next = Next::Drop;
                }
                CallState::Idle => self.idle = true,
                _ => {}
            },
            _ => {}
        }
        match (&self.placed, self.idle) {
            (Some(Err(reason)), _) => Next::Exit(Err(reason.clone())),
            (Some(Ok(())), true) => Next::Exit(match (&self.ended, self.connected_at) {
                (None, Some(_)) => Ok(()),
                (Some(reason), _) => Err(reason.clone()),
                (None, None) => {
                    Err(self.with_cause("the call ended before it was connected".to_owned()))
                }
            }),
            _ => next,
        }
    }
}

fn mode_name(mode: DisconnectMode) -> String {
    serde_json::to_value(mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{mode:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_core::{CallInfo, Completion, DriverError, ErrorKind, LineId};

    fn state(call: u64, state: CallState) -> TspEvent {
        TspEvent::CallState {
            line: LineId(0),
            call: CallId(call),
            state,
        }
    }

    fn completed(request: u64, result: RequestResult) -> TspEvent {
        TspEvent::Completed {
            request: RequestId(request),
            line: LineId(0),
            result,
        }
    }

    #[test]
    fn a_failed_call_names_its_mode_and_cause() {
        let mut w = Watch::new(CallId(1), RequestId(7));
        assert_eq!(
            w.on_event(&completed(7, RequestResult::Ok(Completion::Done))),
            Next::Wait
        );
        let info = CallInfo {
            cause: Some("the call to sip:200@pbx failed: 603 Decline".into()),
            ..CallInfo::default()
        };
        w.on_event(&TspEvent::CallInfo {
            line: LineId(0),
            call: CallId(1),
            info,
        });
        assert_eq!(
            w.on_event(&state(1, CallState::Disconnected(DisconnectMode::Reject))),
            Next::Drop
        );
        assert_eq!(
            w.on_event(&state(1, CallState::Idle)),
            Next::Exit(Err(
                "disconnected: reject (the call to sip:200@pbx failed: 603 Decline)".into()
            ))
        );
    }

    #[test]
    fn idle_before_the_makecall_completion_waits_for_it() {
        let mut w = Watch::new(CallId(1), RequestId(7));
        w.on_event(&state(1, CallState::Dialing));
        // The front end publishes Idle for a call whose MakeCall failed, then the completion.
        assert_eq!(w.on_event(&state(1, CallState::Idle)), Next::Wait);
        let error = DriverError::new(ErrorKind::OperationFailed, "no route to the phone");
        match w.on_event(&completed(7, RequestResult::Err(error))) {
            Next::Exit(Err(reason)) => {
                assert!(reason.contains("no route to the phone"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_connected_call_that_ended_normally_succeeds() {
        let mut w = Watch::new(CallId(1), RequestId(7));
        w.on_event(&completed(7, RequestResult::Ok(Completion::Done)));
        w.on_event(&state(1, CallState::Connected));
        assert_eq!(
            w.on_event(&state(2, CallState::Idle)),
            Next::Wait,
            "another call"
        );
        assert_eq!(w.on_event(&state(1, CallState::Idle)), Next::Exit(Ok(())));
    }
}
