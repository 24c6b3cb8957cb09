//! How one phone event (an Action URL, or a uaCSTA event in the same terms) changes the
//! phone's calls: new calls, states, ends with their mode, transfers, address state, restarts.

use super::{party, said, CallTracker, Cause, Ids, LineNews};
use crate::action::{Event, Vars};
use tapir_core::{
    BusyMode, CallDirection, CallId, CallState, DisconnectMode, DriverEvent, ForwardMode,
    Forwarding, LineKey,
};

impl CallTracker {
    /// How a call the phone ended without a failure cause ends: an incoming call nobody
    /// answered was missed (NoAnswer, as snom's `missed` says); an outgoing call that never
    /// connected ended for a reason Action URLs do not give (Unavailable); any other call hung
    /// up (Normal). The words are the CSTA event's (`said`) when the end came over uaCSTA,
    /// else a sentence saying what the phone reported.
    fn plain_end(&self, id: CallId, said: Option<&Cause>) -> Cause {
        let (mode, sentence) = match self.get(id) {
            Some(c) if !c.answered && c.info.direction == CallDirection::Incoming => {
                (DisconnectMode::NoAnswer, said::MISSED)
            }
            Some(c) if !c.answered && c.info.direction == CallDirection::Outgoing => {
                (DisconnectMode::Unavailable, said::NOT_ANSWERED_OUT)
            }
            _ => (DisconnectMode::Normal, said::HUNG_UP),
        };
        Cause::new(mode, said.map_or(sentence, |c| c.words.as_str()))
    }

    /// The cause a uaCSTA event carries (`cause`, named with its event `csta_event`).
    fn said(vars: &Vars) -> Option<Cause> {
        vars.get("cause")
            .map(|c| Cause::csta(vars.get("csta_event"), c))
    }

    /// Keeps the first failure cause the phone gave for a call.
    fn note_failure(&mut self, id: CallId, cause: Cause) {
        if let Some(c) = self.get_mut(id) {
            c.cause.get_or_insert(cause);
        }
    }

    /// The far end of a call refused or could not be reached (uaCSTA `FailedEvent`): the
    /// cause is kept for the call's end; a busy far end shows at once (the cause in the call's
    /// info, then Busy).
    pub fn failed(&mut self, line: &LineKey, vars: &Vars) -> Vec<DriverEvent> {
        let Some(id) = self.find(vars).filter(|_| Self::has_key(vars)) else {
            return Vec::new();
        };
        let cause = Self::said(vars)
            .unwrap_or_else(|| Cause::new(DisconnectMode::Unavailable, said::FAILED));
        self.note_failure(id, cause);
        let Some(cause) = self.get(id).and_then(|c| c.cause.clone()) else {
            return Vec::new();
        };
        if cause.mode == DisconnectMode::Busy {
            let mut out = self.tell_cause(line, id, &cause.words);
            out.extend(self.set_state(line, id, CallState::Busy(BusyMode::Station)));
            return out;
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
        let said = Self::said(vars);
        let failure = said.clone().filter(|c| {
            !matches!(
                c.mode,
                DisconnectMode::Normal | DisconnectMode::Unknown | DisconnectMode::Cancelled
            )
        });
        if let (Some(id), Some(cause)) = (found, failure) {
            self.note_failure(id, cause);
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
                    let cause = self.plain_end(id, said.as_ref());
                    out.extend(self.end(line, id, Some(cause)));
                }
                if vars.ongoing() == Some(0) {
                    out.extend(self.end_reported(line));
                }
            }
            Event::Missed => {
                if let Some(id) = found {
                    let missed = Cause::new(DisconnectMode::NoAnswer, said::MISSED);
                    out.extend(self.end(line, id, Some(missed)));
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
