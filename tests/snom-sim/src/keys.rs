//! The phone's keys and dialling: what `command.htm` does (keys, `number=`), including what
//! the far end of an outgoing call does (scripted per number).

use crate::phone::{Inner, Outcome, SimCallState, SimPhone};
use std::sync::Arc;

fn is_digit_key(key: &str) -> bool {
    key.len() == 1
        && key
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

impl SimPhone {
    /// The identity `sip:user@host` (or `user`) names, 0 when none matches.
    pub(crate) fn identity_of(&self, uri: &str) -> usize {
        let user = uri
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("");
        (0..=self.config.more_identities.len())
            .find(|i| self.identity_user(*i) == user)
            .unwrap_or(0)
    }

    /// Places a call from the phone (`number=`, or digits after off-hook) on `identity`; a
    /// connected call is held first. Returns the new call's CSTA id.
    pub(crate) fn dial(self: &Arc<Self>, st: &mut Inner, number: &str, identity: usize) -> u64 {
        for i in 0..st.calls.len() {
            if st.calls[i].state == SimCallState::Connected {
                st.calls[i].state = SimCallState::Held;
                let c = st.calls[i].clone();
                self.fire(st, "action_hold", Some(&c));
            }
        }
        st.dialtone = false;
        let call = self.new_call(st, number, SimCallState::Outgoing, identity);
        st.calls.push(call.clone());
        self.fire(st, "action_outgoing_url", Some(&call));
        let outcome = st
            .scripts
            .get(number)
            .copied()
            .or(self.config.answer_after.map(Outcome::Answer));
        if let Some(outcome) = outcome {
            let me = Arc::clone(self);
            let id = call.csta;
            self.handle.spawn(async move {
                tokio::time::sleep(outcome.after()).await;
                match outcome.cause() {
                    None => me.remote_answer(id),
                    Some(cause) => me.remote_fail(id, cause),
                }
            });
        }
        call.csta
    }

    /// Presses one key. A function key `Pn` does what its setting `fkey{n-1}` says
    /// (`keyevent F_DEFLECT`), or nothing.
    pub(crate) fn key(self: &Arc<Self>, st: &mut Inner, key: &str) {
        if let Some(n) = key.strip_prefix('P').and_then(|n| n.parse::<usize>().ok()) {
            let programmed = n
                .checked_sub(1)
                .and_then(|i| st.settings.get(&format!("fkey{i}")))
                .and_then(|f| f.strip_prefix("keyevent "))
                .map(str::to_owned);
            if let Some(event) = programmed {
                self.key(st, event.trim());
            }
            return;
        }
        let active = st
            .calls
            .iter()
            .position(|c| c.state != SimCallState::Held && c.state != SimCallState::Ringing);
        let ringing = st
            .calls
            .iter()
            .position(|c| c.state == SimCallState::Ringing);
        let held: Vec<usize> = (0..st.calls.len())
            .filter(|i| st.calls[*i].state == SimCallState::Held)
            .collect();
        if let Some(digits) = st.redirect_digits.as_mut() {
            if is_digit_key(key) {
                digits.push_str(key);
                return;
            }
            if key == "ENTER" {
                let target = st.redirect_digits.take().unwrap_or_default();
                if let Some(r) = ringing {
                    let c = st.calls.remove(r);
                    st.redirected_to.push(target);
                    self.fire_csta(crate::csta::diverted_event(&c));
                    self.fire_url(st, "action_disconnected_url", Some(&c));
                }
                return;
            }
        }
        if let Some(digits) = st.transfer_digits.as_mut() {
            if is_digit_key(key) {
                digits.push_str(key);
                return;
            }
        }
        match key {
            "OFFHOOK" | "ENTER" | "SPEAKER" => {
                if let Some(target) = st.transfer_digits.take() {
                    if let Some(i) = active {
                        let c = st.calls.remove(i);
                        st.transferred_to.push(target);
                        self.fire(st, "action_blind_transfer", Some(&c));
                        self.fire_url(st, "action_disconnected_url", Some(&c));
                    }
                } else if let Some(r) = ringing {
                    if let Some(a) = active {
                        st.calls[a].state = SimCallState::Held;
                        let c = st.calls[a].clone();
                        self.fire(st, "action_hold", Some(&c));
                    }
                    st.calls[r].state = SimCallState::Connected;
                    let c = st.calls[r].clone();
                    self.fire(st, "action_connected_url", Some(&c));
                } else if st.calls.is_empty() && key == "OFFHOOK" {
                    st.dialtone = true;
                    self.fire(st, "action_offhook_url", None);
                }
            }
            "CANCEL" | "ONHOOK" | "DISCONNECT" => {
                st.transfer_digits = None;
                if let Some(i) = active {
                    let c = st.calls.remove(i);
                    self.fire(st, "action_disconnected_url", Some(&c));
                } else if let Some(r) = ringing {
                    let c = st.calls.remove(r);
                    // The quirk: a rejected call reports disconnected twice.
                    self.fire(st, "action_disconnected_url", Some(&c));
                    self.fire_url(st, "action_disconnected_url", Some(&c));
                } else if st.dialtone {
                    st.dialtone = false;
                }
                if st.calls.is_empty() {
                    self.fire(st, "action_onhook_url", None);
                }
            }
            "F_HOLD" | "F_R" => {
                if let Some(i) = active {
                    st.calls[i].state = SimCallState::Held;
                    let c = st.calls[i].clone();
                    self.fire(st, "action_hold", Some(&c));
                } else if held.len() == 1 {
                    st.calls[held[0]].state = SimCallState::Connected;
                    let c = st.calls[held[0]].clone();
                    self.fire(st, "action_unhold", Some(&c));
                }
            }
            "TRANSFER" => {
                if let (Some(a), [h]) = (active, held.as_slice()) {
                    let held_call = st.calls[*h].clone();
                    let consult = st.calls[a].clone();
                    self.fire_csta(crate::csta::transferred_event(&held_call, &consult));
                    self.fire_url(st, "action_attended_transfer", Some(&held_call));
                    st.calls
                        .retain(|c| c.csta != held_call.csta && c.csta != consult.csta);
                    self.fire_url(st, "action_disconnected_url", Some(&held_call));
                    self.fire_url(st, "action_disconnected_url", Some(&consult));
                } else if active.is_some() {
                    st.transfer_digits = Some(String::new());
                }
            }
            // snom's call-deflection key event: the number follows, ENTER sends it.
            "F_DEFLECT" if ringing.is_some() => {
                st.redirect_digits = Some(String::new());
            }
            // F_REDIRECT toggles call forwarding (all calls to redirect_number); it does not
            // deflect the ringing call.
            "F_REDIRECT" => {
                let on = st.settings.get("redirect_event").map(String::as_str) == Some("none")
                    || !st.settings.contains_key("redirect_event");
                st.settings.insert(
                    "redirect_event".into(),
                    if on { "all" } else { "none" }.into(),
                );
                self.fire(
                    st,
                    if on {
                        "action_redirection_on_url"
                    } else {
                        "action_redirection_off_url"
                    },
                    None,
                );
            }
            "DND" => {
                let on = st.settings.get("dnd_mode").map(String::as_str) != Some("on");
                st.settings
                    .insert("dnd_mode".into(), if on { "on" } else { "off" }.into());
                self.fire(
                    st,
                    if on {
                        "action_dnd_on_url"
                    } else {
                        "action_dnd_off_url"
                    },
                    None,
                );
            }
            _ => {}
        }
    }
}
