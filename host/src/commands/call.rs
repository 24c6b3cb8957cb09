//! `tapir call`: a one-shot for administrators testing a setup. Starts the host in-process
//! (no HTTP endpoint), places one call, prints every event of that line as a JSON line on
//! stdout, and exits 0 when the call ended normally.
//!
//! "Normally" means it was connected and then ended by either side without error. Busy, a
//! failed request, a disconnect for any other reason, or the timeout end it with a non-zero
//! status and the reason on stderr.

use crate::config::Source;
use crate::embedded::Embedded;
use crate::host::Host;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tapir_core::{AddressId, CallState, DisconnectMode, LineId};
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
    let mut connected_at: Option<Instant> = None;
    let mut ended: Option<String> = None;
    let mut dropping = false;
    loop {
        if started.elapsed() > args.timeout {
            let _ = tsp.submit(Action::Drop { call });
            return fail(3, &format!("timeout after {} s", args.timeout.as_secs()));
        }
        if let (Some(at), Some(after), false) = (connected_at, args.hangup_after, dropping) {
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
        match &event.event {
            TspEvent::Completed {
                request,
                result: RequestResult::Err(error),
                ..
            } if *request == accepted.request => {
                return fail(1, &format!("the call failed: {error}"));
            }
            TspEvent::CallState { call: c, state, .. } if *c == call => match state {
                CallState::Connected => {
                    connected_at.get_or_insert_with(Instant::now);
                }
                CallState::Busy(_) => {
                    ended.get_or_insert_with(|| "the far end is busy".to_owned());
                    dropping = true;
                    let _ = tsp.submit(Action::Drop { call });
                }
                CallState::Disconnected(mode) => {
                    if *mode != DisconnectMode::Normal || connected_at.is_none() {
                        ended.get_or_insert_with(|| format!("disconnected: {}", mode_name(*mode)));
                    }
                    dropping = true;
                    let _ = tsp.submit(Action::Drop { call });
                }
                CallState::Idle => {
                    let _ = tsp.close_call(call);
                    return match (&ended, connected_at) {
                        (None, Some(_)) => ExitCode::SUCCESS,
                        (Some(reason), _) => fail(1, reason),
                        (None, None) => fail(1, "the call ended before it was connected"),
                    };
                }
                _ => {}
            },
            _ => {}
        }
    }
}

fn mode_name(mode: DisconnectMode) -> String {
    serde_json::to_value(mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{mode:?}"))
}
