//! The dispatcher: the only thread that invokes TAPI's callbacks.
//!
//! It drains the front end's events, translates them under the provider's lock into
//! [`Callback`]s (added to those TSPI functions queued, such as LINE_CALLINFO after
//! lineSetAppSpecific), releases the lock, and sends them one at a time. Because there is one
//! sender, a callback is never entered while another one runs, and the order of the front
//! end's events is kept. After `providerShutdown` has stopped the drivers, the dispatcher
//! sends what is still due and ends; `providerShutdown` waits for it, so nothing follows.

use crate::provider::{CallRec, Callback, Provider, State};
use crate::structs;
use std::cell::Cell;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};
use tapir_core::CallState;
use tapir_tsp::tapi::{self, address_state, line_dev_state, line_msg, value as v};
use tapir_tsp::{Follower, RequestResult, TspEvent};

/// How long the dispatcher sleeps when there is nothing to send.
const IDLE: Duration = Duration::from_millis(2);
/// How many 100 µs waits the dispatcher allows for a new call's first state (50 ms).
const NEWCALL_PATIENCE: u32 = 500;

/// Starts the dispatcher thread.
///
/// # Errors
/// The thread could not be started.
pub fn spawn(provider: Arc<Provider>, events: Follower) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tapir-tspi-callbacks".into())
        .spawn(move || run(&provider, events))
}

fn run(provider: &Provider, mut events: Follower) {
    loop {
        let stopping = provider.stopping();
        let batch: Vec<Callback> = {
            let mut st = provider.lock();
            let mut waited = 0;
            loop {
                match events.try_next() {
                    Some(event) => translate(&mut st, event.seq, event.event),
                    // The front end publishes a new call's first state right after the call;
                    // wait for it so that nothing can be sent between the two.
                    None if matches!(st.outbox.back(), Some(Callback::NewCall { .. }))
                        && waited < NEWCALL_PATIENCE =>
                    {
                        waited += 1;
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    None => break,
                }
            }
            st.outbox.drain(..).collect()
        };
        if batch.is_empty() {
            if stopping {
                return;
            }
            std::thread::sleep(IDLE);
            continue;
        }
        for callback in batch {
            invoke(provider, callback);
        }
    }
}

/// Turns one front-end event (numbered `seq`) into the callbacks TAPI expects, updating the
/// call table.
pub fn translate(st: &mut State, seq: u64, event: TspEvent) {
    match event {
        TspEvent::LineCreated { line, name } => {
            // Lines counted at enumeration, already bound, or already announced are known.
            if st.by_line.contains_key(&line)
                || st.enumerated.contains(&line)
                || st.pending_create.values().any(|l| *l == line)
            {
                return;
            }
            let temp = st.next_temp();
            st.pending_create.insert(temp, line);
            tracing::info!(line = %line, name = %name, temp, "Announcing a new line to TAPI.");
            st.outbox.push_back(Callback::Create { temp });
        }
        TspEvent::LineRemoved { line } => {
            for hd_line in st.opens_of(line) {
                st.outbox.push_back(Callback::Line {
                    hd_line,
                    call: None,
                    msg: line_msg::CLOSE,
                    p1: 0,
                    p2: 0,
                    p3: 0,
                });
            }
            // The front end forgets the line's calls; TAPI's handles stay valid until
            // lineCloseCall and report Idle from now on.
            let on_line: Vec<usize> = st
                .open
                .iter()
                .filter(|(_, o)| o.line == line)
                .map(|(hd, _)| *hd)
                .collect();
            for rec in st.calls.values_mut() {
                if on_line.contains(&rec.hd_line) {
                    rec.state = CallState::Idle;
                    rec.entered = SystemTime::now();
                }
            }
            // The device id is gone for good: requests naming it are BADDEVICEID, and a line
            // that comes back later is announced afresh (LINE_CREATE) and gets a new id.
            if let Some(device_id) = st.by_line.remove(&line) {
                st.devices.remove(&device_id);
                st.outbox.push_back(Callback::Remove { device_id });
            }
            st.enumerated.retain(|l| *l != line);
            st.pending_create.retain(|_, l| *l != line);
        }
        TspEvent::LineService {
            line, in_service, ..
        } => {
            let bit = if in_service {
                line_dev_state::INSERVICE
            } else {
                line_dev_state::OUTOFSERVICE
            };
            for hd_line in st.opens_of(line) {
                let wanted = st
                    .open
                    .get(&hd_line)
                    .is_some_and(|o| o.status_masks(seq).0 & bit != 0);
                if wanted {
                    st.outbox.push_back(Callback::Line {
                        hd_line,
                        call: None,
                        msg: line_msg::LINEDEVSTATE,
                        p1: bit as usize,
                        p2: 0,
                        p3: 0,
                    });
                }
            }
        }
        TspEvent::NewCall { line, call, info } => {
            let Some(hd_line) = st.opens_of(line).first().copied() else {
                return;
            };
            st.calls.insert(
                call,
                CallRec {
                    hd_line,
                    ht_call: 0,
                    state: CallState::Unknown,
                    entered: SystemTime::now(),
                    info,
                    app_specific: 0,
                },
            );
            st.outbox.push_back(Callback::NewCall { hd_line, call });
        }
        TspEvent::CallState { call, state, .. } => {
            let Some(rec) = st.calls.get_mut(&call) else {
                return;
            };
            rec.state = state;
            rec.entered = SystemTime::now();
            let hd_line = rec.hd_line;
            let (bits, mode) = tapi::call_state(&state);
            st.outbox.push_back(Callback::Line {
                hd_line,
                call: Some(call),
                msg: line_msg::CALLSTATE,
                p1: bits as usize,
                p2: mode as usize,
                p3: v::MEDIAMODE_INTERACTIVEVOICE as usize,
            });
        }
        TspEvent::CallInfo { call, info, .. } => {
            let Some(rec) = st.calls.get_mut(&call) else {
                return;
            };
            let changed = structs::info_changes(&rec.info, &info);
            rec.info = info;
            let (hd_line, idle) = (rec.hd_line, rec.state.is_idle());
            if changed != 0 && !idle {
                st.outbox.push_back(Callback::Line {
                    hd_line,
                    call: Some(call),
                    msg: line_msg::CALLINFO,
                    p1: changed as usize,
                    p2: 0,
                    p3: 0,
                });
            }
        }
        TspEvent::AddressState { line, address, .. } => {
            for hd_line in st.opens_of(line) {
                let wanted = st
                    .open
                    .get(&hd_line)
                    .is_some_and(|o| o.status_masks(seq).1 & address_state::FORWARD != 0);
                if wanted {
                    st.outbox.push_back(Callback::Line {
                        hd_line,
                        call: None,
                        msg: line_msg::ADDRESSSTATE,
                        p1: address.0 as usize,
                        p2: address_state::FORWARD as usize,
                        p3: 0,
                    });
                }
            }
        }
        TspEvent::Completed {
            request, result, ..
        } => {
            let Some(tapi_request) = st.requests.remove(&request) else {
                return;
            };
            let result = match result {
                RequestResult::Ok(_) => 0,
                RequestResult::Err(error) => crate::TspiError::from(error).code(),
            };
            st.outbox.push_back(Callback::Completion {
                request: tapi_request,
                result,
            });
        }
    }
}

/// Sends one callback. Targets are looked up now, so a line closed or a call closed since
/// the callback was queued gets nothing.
fn invoke(provider: &Provider, callback: Callback) {
    match callback {
        Callback::Completion { request, result } => {
            let proc_ = provider.lock().completion;
            if let Some(completion) = proc_ {
                completion(request, result);
            }
        }
        Callback::Create { temp } => {
            let (proc_, h_provider) = {
                let st = provider.lock();
                (st.line_create, st.h_provider)
            };
            if let Some(line_event) = proc_ {
                line_event(0, 0, line_msg::CREATE, h_provider, temp, 0);
            }
        }
        Callback::Remove { device_id } => {
            let proc_ = provider.lock().line_create;
            if let Some(line_event) = proc_ {
                line_event(0, 0, line_msg::REMOVE, device_id as usize, 0, 0);
            }
        }
        Callback::Line {
            hd_line,
            call,
            msg,
            p1,
            p2,
            p3,
        } => {
            let target = {
                let mut st = provider.lock();
                let ht_call = match call {
                    Some(call) => match st.calls.get(&call) {
                        Some(rec) => rec.ht_call,
                        None => return,
                    },
                    None => 0,
                };
                let Some(open) = st.open.get_mut(&hd_line).filter(|o| !o.gone) else {
                    return;
                };
                if msg == line_msg::CLOSE {
                    open.gone = true;
                }
                (open.event_proc, open.ht_line, ht_call)
            };
            let (line_event, ht_line, ht_call) = target;
            line_event(ht_line, ht_call, msg, p1, p2, p3);
        }
        Callback::NewCall { hd_line, call } => {
            let target = {
                let st = provider.lock();
                if !st.calls.contains_key(&call) {
                    return;
                }
                match st.open.get(&hd_line).filter(|o| !o.gone) {
                    Some(open) => (open.event_proc, open.ht_line),
                    None => return,
                }
            };
            let (line_event, ht_line) = target;
            // TAPI writes its handle for the call through dwParam2 before it returns.
            let ht_call = Cell::new(0usize);
            line_event(
                ht_line,
                0,
                line_msg::NEWCALL,
                call.0 as usize,
                ht_call.as_ptr() as usize,
                0,
            );
            let ht_call = ht_call.get();
            let mut st = provider.lock();
            if ht_call == 0 {
                // TAPI does not want the call: forget it (the front end drops it).
                st.calls.remove(&call);
                drop(st);
                let _ = provider.tsp().close_call(call);
            } else if let Some(rec) = st.calls.get_mut(&call) {
                rec.ht_call = ht_call;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::OpenLine;
    use tapir_core::{
        AddressId, AddressStatus, CallId, CallInfo, DriverError, ErrorKind, LineId, RequestId,
    };
    use tapir_tsp::tapi::call_info_state;

    extern "system" fn ignore(_: usize, _: usize, _: u32, _: usize, _: usize, _: usize) {}

    /// Translates an event numbered after every lineSetStatusMessages so far.
    fn translate(st: &mut State, event: TspEvent) {
        super::translate(st, u64::MAX, event);
    }

    fn state_with_open_line(line_states: u32, address_states: u32) -> State {
        let mut st = State::default();
        st.base = Some(10);
        st.enumerated = vec![LineId(0)];
        st.devices.insert(10, LineId(0));
        st.by_line.insert(LineId(0), 10);
        st.open.insert(
            1,
            OpenLine {
                line: LineId(0),
                device_id: 10,
                ht_line: 0x1111,
                event_proc: ignore,
                version: 0x0002_0002,
                line_states,
                address_states,
                states_from: 0,
                earlier_states: (0, 0),
                gone: false,
            },
        );
        st
    }

    #[test]
    fn a_new_call_is_announced_then_its_state() {
        let mut st = state_with_open_line(0, 0);
        let (line, call) = (LineId(0), CallId(5));
        translate(
            &mut st,
            TspEvent::NewCall {
                line,
                call,
                info: CallInfo::default(),
            },
        );
        translate(
            &mut st,
            TspEvent::CallState {
                line,
                call,
                state: CallState::Offering,
            },
        );
        let out: Vec<_> = st.outbox.drain(..).collect();
        assert_eq!(out[0], Callback::NewCall { hd_line: 1, call });
        assert!(matches!(
            out[1],
            Callback::Line { msg: line_msg::CALLSTATE, p1: 0x2, call: Some(c), .. } if c == call
        ));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn status_messages_are_filtered() {
        let line = LineId(0);
        let service = TspEvent::LineService {
            line,
            in_service: false,
            reason: None,
        };
        let address = TspEvent::AddressState {
            line,
            address: AddressId(0),
            status: AddressStatus::default(),
        };
        let mut st = state_with_open_line(0, 0);
        translate(&mut st, service.clone());
        translate(&mut st, address.clone());
        assert!(st.outbox.is_empty(), "nothing enabled, nothing sent");
        let mut st = state_with_open_line(line_dev_state::OUTOFSERVICE, address_state::FORWARD);
        translate(&mut st, service);
        translate(&mut st, address);
        let msgs: Vec<_> = st
            .outbox
            .iter()
            .map(|c| match c {
                Callback::Line { msg, p1, .. } => (*msg, *p1),
                _ => (u32::MAX, 0),
            })
            .collect();
        assert_eq!(
            msgs,
            vec![
                (
                    line_msg::LINEDEVSTATE,
                    line_dev_state::OUTOFSERVICE as usize
                ),
                (line_msg::ADDRESSSTATE, 0)
            ]
        );
    }

    #[test]
    fn a_change_from_before_set_status_messages_is_judged_by_the_earlier_filter() {
        let line = LineId(0);
        let service = |in_service| TspEvent::LineService {
            line,
            in_service,
            reason: None,
        };
        // TAPI enabled the messages when the front end had numbered 7 events.
        let mut st = state_with_open_line(line_dev_state::INSERVICE, 0);
        if let Some(open) = st.open.get_mut(&1) {
            open.states_from = 7;
            open.earlier_states = (0, 0);
        }
        super::translate(&mut st, 7, service(true));
        assert!(
            st.outbox.is_empty(),
            "event 7 happened while nothing was enabled"
        );
        super::translate(&mut st, 8, service(true));
        assert!(matches!(
            st.outbox.pop_front(),
            Some(Callback::Line { msg: line_msg::LINEDEVSTATE, p1, .. })
                if p1 == line_dev_state::INSERVICE as usize
        ));
    }

    #[test]
    fn completions_go_to_the_tapi_request_once() {
        let mut st = state_with_open_line(0, 0);
        st.requests.insert(RequestId(3), 77);
        let failed = TspEvent::Completed {
            request: RequestId(3),
            line: LineId(0),
            result: RequestResult::Err(DriverError::new(ErrorKind::InvalidCallState, "x")),
        };
        translate(&mut st, failed.clone());
        translate(&mut st, failed);
        assert_eq!(
            st.outbox.drain(..).collect::<Vec<_>>(),
            vec![Callback::Completion {
                request: 77,
                result: 0x8000_001Cu32 as i32
            }]
        );
    }

    #[test]
    fn lines_appearing_later_are_created_and_removed() {
        let mut st = state_with_open_line(0, 0);
        translate(
            &mut st,
            TspEvent::LineCreated {
                line: LineId(0),
                name: "known".into(),
            },
        );
        assert!(
            st.outbox.is_empty(),
            "an enumerated line is not created twice"
        );
        translate(
            &mut st,
            TspEvent::LineCreated {
                line: LineId(1),
                name: "new".into(),
            },
        );
        let Some(Callback::Create { temp }) = st.outbox.pop_front() else {
            panic!("LINE_CREATE expected");
        };
        assert_eq!(st.pending_create.get(&temp), Some(&LineId(1)));
        st.calls.insert(
            CallId(8),
            CallRec {
                hd_line: 1,
                ht_call: 0x77,
                state: CallState::Connected,
                entered: SystemTime::now(),
                info: CallInfo::default(),
                app_specific: 0,
            },
        );
        translate(&mut st, TspEvent::LineRemoved { line: LineId(0) });
        assert_eq!(
            st.calls.get(&CallId(8)).map(|c| c.state),
            Some(CallState::Idle),
            "the handle stays valid until lineCloseCall, as Idle"
        );
        let out: Vec<_> = st.outbox.drain(..).collect();
        assert!(matches!(
            out[0],
            Callback::Line {
                msg: line_msg::CLOSE,
                hd_line: 1,
                ..
            }
        ));
        assert_eq!(out[1], Callback::Remove { device_id: 10 });
        assert_eq!(out.len(), 2);
        assert!(
            !st.devices.contains_key(&10) && !st.by_line.contains_key(&LineId(0)),
            "the removed device id names nothing any more"
        );
        // The same line coming back is a new device: LINE_CREATE again, with a fresh temp id.
        translate(
            &mut st,
            TspEvent::LineCreated {
                line: LineId(0),
                name: "back".into(),
            },
        );
        let Some(Callback::Create { temp: again }) = st.outbox.pop_front() else {
            panic!("LINE_CREATE expected for a line that came back");
        };
        assert_ne!(again, temp);
        assert_eq!(st.pending_create.get(&again), Some(&LineId(0)));
        // A second removal of a line that is not bound (LINE_CREATE not answered yet) sends
        // nothing and withdraws the pending creation.
        translate(&mut st, TspEvent::LineRemoved { line: LineId(1) });
        assert!(st.outbox.is_empty());
        assert!(!st.pending_create.values().any(|l| *l == LineId(1)));
    }

    #[test]
    fn call_info_changes_name_what_changed() {
        let mut st = state_with_open_line(0, 0);
        let (line, call) = (LineId(0), CallId(5));
        translate(
            &mut st,
            TspEvent::NewCall {
                line,
                call,
                info: CallInfo::default(),
            },
        );
        st.outbox.clear();
        let info = CallInfo {
            connected: tapir_core::Party::number("200"),
            ..CallInfo::default()
        };
        translate(&mut st, TspEvent::CallInfo { line, call, info });
        assert!(matches!(
            st.outbox.pop_front(),
            Some(Callback::Line { msg: line_msg::CALLINFO, p1, .. })
                if p1 == call_info_state::CONNECTEDID as usize
        ));
    }
}
