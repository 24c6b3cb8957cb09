//! How one phone event (an Action URL, or a uaCSTA event in the same terms) changes the
//! phone's calls: new calls, states, ends with their mode, transfers, address state, restarts.

use super::{cause_mode, party, CallTracker, Ids, LineNews};
use crate::action::{Event, Vars};
use tapir_core::{
    BusyMode, CallDirection, CallId, CallState, DisconnectMode, DriverEvent, ForwardMode,
    Forwarding, LineKey,
};

impl CallTracker {
    /// How a call the phone ended without a cause ends: an incoming call nobody answered was
    /// missed (NoAnswer, as snom's `missed` says); an outgoing call that never connected ended
    /// for a reason Action URLs do not give (Unavailable); any other call hung up (Normal).
    fn plain_end(&self, id: CallId) -> DisconnectMode {
        match self.get(id) {
            Some(c) if !c.answered && c.info.direction == CallDirection::Incoming => {
                DisconnectMode::NoAnswer
            }
            Some(c) if !c.answered && c.info.direction == CallDirection::Outgoing => {
                DisconnectMode::Unavailable
            }
            _ => DisconnectMode::Normal,
        }
    }

    /// The far end of a call refused or could not be reached (uaCSTA `FailedEvent`): Busy
    /// when it is busy; otherwise the cause is kept for the call's end.
    pub fn failed(&mut self, line: &LineKey, vars: &Vars) -> Vec<DriverEvent> {
        let Some(id) = self.find(vars).filter(|_| Self::has_key(vars)) else {
            return Vec::new();
        };
        let mode = vars
            .get("cause")
            .map(cause_mode)
            .unwrap_or(DisconnectMode::Unavailable);
        if let Some(c) = self.get_mut(id) {
            c.cause = Some(mode);
        }
        if mode == DisconnectMode::Busy {
            return self.set_state(line, id, CallState::Busy(BusyMode::Station));
        }
        Vec::new()
    }

    /// Applies one phone event (an Action URL, or a uaCSTA event in the same terms).
    pub fn apply(
        &mut self,
        line: &LineKey,
        ids: &mut dyn Ids,
        event: Event,
        vars: &Vars,
    ) -> (Vec<DriverEvent>, LineNews) {
        let mut out = Vec::new();
        let mut news = LineNews::None;
        if matches!(event, Event::Incoming | Event::Outgoing | Event::Connected) {
            out.extend(self.end_stale(line, vars));
        }
        let found = self.find(vars);
        // A cause that tells why a call failed decides its end; a normal clearing or a
        // cancel leaves it to the call's own story (an unanswered incoming call was missed).
        let failure = vars.get("cause").map(cause_mode).filter(|m| {
            !matches!(
                m,
                DisconnectMode::Normal | DisconnectMode::Unknown | DisconnectMode::Cancelled
            )
        });
        if let (Some(id), Some(mode)) = (found, failure) {
            if let Some(c) = self.get_mut(id) {
                c.cause = Some(mode);
            }
        }
        match event {
            Event::Incoming => match found {
                Some(id) => {
                    self.learn_keys(id, vars);
                    out.extend(self.update_info(line, id, vars));
                }
                None if self.was_ended(vars) => {}
                None => out.extend(self.new_call(
                    line,
                    ids,
                    vars,
                    CallState::Offering,
                    CallDirection::Incoming,
                )),
            },
            Event::Outgoing => out.extend(self.outgoing(line, ids, vars, found)),
            Event::Connected => match found {
                Some(id) => {
                    self.learn_keys(id, vars);
                    out.extend(self.update_info(line, id, vars));
                    out.extend(self.set_state(line, id, CallState::Connected));
                }
                None if self.was_ended(vars) || !Self::has_key(vars) => {}
                None => out.extend(self.new_call(
                    line,
                    ids,
                    vars,
                    CallState::Connected,
                    CallDirection::Unknown,
                )),
            },
            Event::Hold => {
                if let Some(id) = found {
                    let pending = self.get(id).is_some_and(|c| c.pending_transfer);
                    let state = if pending {
                        CallState::OnHoldPendingTransfer
                    } else {
                        CallState::OnHold
                    };
                    out.extend(self.set_state(line, id, state));
                }
            }
            Event::Unhold => {
                if let Some(id) = found {
                    if let Some(c) = self.get_mut(id) {
                        c.pending_transfer = false;
                    }
                    out.extend(self.set_state(line, id, CallState::Connected));
                }
            }
            Event::Disconnected => {
                if let Some(id) = found {
                    let mode = self.plain_end(id);
                    out.extend(self.end(line, id, Some(mode)));
                }
                if vars.ongoing() == Some(0) {
                    out.extend(self.end_reported(line));
                }
            }
            Event::Missed => {
                if let Some(id) = found {
                    out.extend(self.end(line, id, Some(DisconnectMode::NoAnswer)));
                }
            }
            Event::Transfer | Event::BlindTransfer | Event::AttendedTransfer => {
                out.extend(self.transferred(line, event, found));
            }
            Event::ReceivedAttendedTransfer => {
                if let (Some(id), Some(remote)) = (found, vars.get("remote")) {
                    if let Some(c) = self.get_mut(id) {
                        let mut info = c.info.clone();
                        info.connected = party(remote, vars.get("name"));
                        info.reason = tapir_core::CallReason::Transfer;
                        if info != c.info {
                            c.info = info.clone();
                            out.push(DriverEvent::CallInfo {
                                line: line.clone(),
                                call: id,
                                info,
                            });
                        }
                    }
                }
            }
            Event::Onhook | Event::Offhook => {
                // No call identity on these (the quirk); only "no call left" is news.
                if event == Event::Onhook && vars.ongoing() == Some(0) {
                    out.extend(self.end_reported(line));
                }
            }
            Event::DndOn | Event::DndOff => {
                let on = event == Event::DndOn;
                if self.address.do_not_disturb != on {
                    self.address.do_not_disturb = on;
                    out.push(self.address_event(line));
                }
            }
            Event::RedirectionOn | Event::RedirectionOff => {
                let forwarding = match (event, vars.get("fwd")) {
                    (Event::RedirectionOn, Some(dest)) => vec![Forwarding {
                        mode: ForwardMode::Unconditional,
                        destination: dest.to_owned(),
                    }],
                    (Event::RedirectionOn, None) => self.address.forwarding.clone(),
                    _ => Vec::new(),
                };
                if forwarding != self.address.forwarding {
                    self.address.forwarding = forwarding;
                    out.push(self.address_event(line));
                }
            }
            Event::Setup => {
                out.extend(self.end_all(line));
                self.ended.clear();
                news = LineNews::Rebooted;
            }
            Event::LogOn => {
                // Also sent after a start: the phone numbers its calls from 1 again.
                self.ended.clear();
                news = LineNews::Registered;
            }
            Event::LogOff | Event::RegFailed => news = LineNews::Unregistered,
        }
        (out, news)
    }

    fn outgoing(
        &mut self,
        line: &LineKey,
        ids: &mut dyn Ids,
        vars: &Vars,
        found: Option<CallId>,
    ) -> Vec<DriverEvent> {
        let mut out = Vec::new();
        let id = match found {
            Some(id) => Some(id),
            None if self.was_ended(vars) => None,
            None => match self.pending_make.take() {
                Some(id) if self.get(id).is_some_and(|c| c.csta.is_none()) => Some(id),
                _ => {
                    out.extend(self.new_call(
                        line,
                        ids,
                        vars,
                        CallState::Dialing,
                        CallDirection::Outgoing,
                    ));
                    self.find(vars).or_else(|| self.calls.last().map(|c| c.id))
                }
            },
        };
        let Some(id) = id else {
            return out;
        };
        if self.pending_make == Some(id) {
            self.pending_make = None;
        }
        self.learn_keys(id, vars);
        out.extend(self.update_info(line, id, vars));
        if self.get(id).is_some_and(|c| c.state.is_outgoing_setup()) {
            out.extend(self.set_state(line, id, CallState::Ringback));
        }
        out
    }

    /// A transfer on the phone: the transferred call leaves (Idle), and with an attended
    /// transfer also its partner: the host's consultation call, or, for a transfer made on
    /// the phone's own keys, the one other established call.
    fn transferred(
        &mut self,
        line: &LineKey,
        event: Event,
        found: Option<CallId>,
    ) -> Vec<DriverEvent> {
        let mut gone: Vec<CallId> = found.into_iter().collect();
        if event != Event::BlindTransfer {
            match self.transfer {
                Some((held, consult)) if found.is_none_or(|f| f == held || f == consult) => {
                    gone.extend([held, consult]);
                }
                _ => {
                    let others: Vec<CallId> = self
                        .live()
                        .filter(|c| Some(c.id) != found && c.state.is_established())
                        .map(|c| c.id)
                        .collect();
                    if found.is_some() && others.len() == 1 {
                        gone.extend(others);
                    }
                }
            }
        }
        gone.dedup();
        gone.into_iter()
            .flat_map(|id| self.end(line, id, None))
            .collect()
    }
}
