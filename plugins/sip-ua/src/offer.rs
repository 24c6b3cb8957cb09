//! Incoming calls that are indicated, never answered (SIPTAPI's "incoming call indication"):
//! an out-of-dialog INVITE becomes an *offer* answered `180 Ringing`; the application may
//! redirect it (`302` with the target as Contact), reject it, or leave it ringing until the
//! caller CANCELs (`Reason: SIP;cause=200` = answered elsewhere) or our ring limit answers 480.
//!
//! The reading of INVITE and CANCEL ([`Caller::from_invite`], [`CancelCause::from_cancel`]) is
//! sans-I/O; [`Offers`] is the one task per endpoint that owns the offers and answers them, shared
//! by every SIP driver with incoming indication.

use crate::endpoint::{Endpoint, Incoming};
use crate::header::NameAddr;
use crate::message::{Message, Method};
use crate::transaction::TxKey;
use std::collections::HashMap;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Who is calling: from `P-Asserted-Identity` when present (the network's word), else `From`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    /// The user part (the number), unescaped `%23` → `#`; `None` for anonymous callers.
    pub number: Option<String>,
    /// The display name.
    pub name: Option<String>,
    /// The URI as sent.
    pub uri: String,
}

impl Caller {
    /// Reads the caller of an INVITE.
    pub fn from_invite(invite: &Message) -> Caller {
        let pai = invite
            .header_values("P-Asserted-Identity")
            .filter_map(NameAddr::parse)
            .find(|n| n.uri.starts_with("sip:") || n.uri.starts_with("sips:"))
            .or_else(|| {
                invite
                    .header_values("P-Asserted-Identity")
                    .find_map(NameAddr::parse)
            });
        let from = invite.header("From").and_then(NameAddr::parse);
        let Some(who) = pai.clone().or(from.clone()) else {
            return Caller::default();
        };
        let user = if let Some(tel) = who.uri.strip_prefix("tel:") {
            Some(tel.split(';').next().unwrap_or("").to_owned())
        } else {
            crate::header::Uri::parse(&who.uri).and_then(|u| u.user)
        };
        let number = user
            .map(|u| {
                u.replace("%23", "#")
                    .replace("%2B", "+")
                    .replace("%2b", "+")
            })
            .filter(|u| !u.is_empty() && !u.eq_ignore_ascii_case("anonymous"));
        let name = who
            .display
            .clone()
            .or_else(|| from.and_then(|f| f.display))
            .filter(|d| !d.trim().is_empty() && !d.eq_ignore_ascii_case("anonymous"));
        Caller {
            number,
            name,
            uri: who.uri,
        }
    }
}

/// Why an offer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferEnd {
    /// The caller cancelled; `answered_elsewhere` when the CANCEL carried
    /// `Reason: SIP;cause=200` (RFC 3326; a parallel-forked branch took the call).
    Cancelled {
        /// A `Reason` with SIP cause 200.
        answered_elsewhere: bool,
        /// The SIP cause of the `Reason`, if any.
        cause: Option<u16>,
    },
    /// Nobody took the call within the ring limit; we answered 480.
    RingTimeout,
    /// We redirected it (302).
    Redirected,
    /// We rejected it.
    Rejected,
}

/// Reading a CANCEL's `Reason` header.
pub struct CancelCause;

impl CancelCause {
    /// The SIP cause of the first `Reason: SIP;cause=N` header, if any.
    pub fn from_cancel(cancel: &Message) -> Option<u16> {
        cancel.header_values("Reason").find_map(|v| {
            let mut parts = v.split(';');
            let proto = parts.next()?.trim();
            if !proto.eq_ignore_ascii_case("SIP") {
                return None;
            }
            parts.find_map(|p| {
                let (k, val) = p.split_once('=')?;
                if k.trim().eq_ignore_ascii_case("cause") {
                    val.trim().trim_matches('"').parse().ok()
                } else {
                    None
                }
            })
        })
    }
}

/// What the offers task reports to its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferEvent {
    /// A new call rings on `line`.
    Offered {
        /// The offer's id (for [`Offers::redirect`] / [`Offers::reject`]).
        id: u64,
        /// The line (as the driver's `pick` said).
        line: String,
        /// Who calls.
        caller: Caller,
        /// The Request-URI's user (the number dialled), if any.
        called: Option<String>,
        /// The SIP Call-ID.
        call_id: String,
    },
    /// The offer ended.
    Ended {
        /// The offer.
        id: u64,
        /// How.
        end: OfferEnd,
    },
}

/// Failures of [`Offers`] commands.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OfferError {
    /// No such offer (it ended already).
    #[error("the incoming call has ended already")]
    Gone,
    /// The offers task has stopped.
    #[error("the incoming-call task has stopped")]
    Stopped,
}

enum Cmd {
    Redirect {
        id: u64,
        contact: String,
        reply: oneshot::Sender<Result<(), OfferError>>,
    },
    Reject {
        id: u64,
        code: u16,
        reply: oneshot::Sender<Result<(), OfferError>>,
    },
}

struct Offer {
    key: TxKey,
    invite: Message,
    to_tag: String,
    call_id: String,
    deadline: Instant,
}

/// How an offers task picks the line for an INVITE: `Ok(line)` or `Err((code, reason))` to
/// refuse it at once (404 unknown line, 486 line busy, 480 disabled).
pub type Pick = Box<dyn Fn(&Message) -> Result<String, (u16, &'static str)> + Send + Sync>;

/// Handle to the offers task of one endpoint. Dropping every handle stops the task.
#[derive(Clone, Debug)]
pub struct Offers {
    cmd: mpsc::Sender<Cmd>,
}

impl Offers {
    /// Takes over the endpoint's new incoming calls ([`Endpoint::route_new_calls`]) and starts
    /// the task on the current runtime. `ring_limit` bounds how long an offer rings.
    ///
    /// # Errors
    /// [`OfferError::Stopped`] when the endpoint has stopped.
    pub async fn start(
        endpoint: Endpoint,
        pick: Pick,
        ring_limit: Duration,
        report: impl Fn(OfferEvent) + Send + Sync + 'static,
    ) -> Result<Offers, OfferError> {
        let (in_tx, in_rx) = mpsc::channel(4096);
        endpoint
            .route_new_calls(Some(in_tx))
            .await
            .map_err(|_| OfferError::Stopped)?;
        let (cmd, cmd_rx) = mpsc::channel(1024);
        let task = Task {
            endpoint,
            pick,
            ring_limit,
            offers: HashMap::new(),
            by_call_id: HashMap::new(),
            next_id: 1,
        };
        crate::runtime::spawn(task.run(in_rx, cmd_rx, report));
        Ok(Offers { cmd })
    }

    /// Redirects an offer: `302 Moved Temporarily` with `Contact: <contact>`.
    ///
    /// # Errors
    /// [`OfferError`].
    pub async fn redirect(&self, id: u64, contact: String) -> Result<(), OfferError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Redirect { id, contact, reply })
            .await
            .map_err(|_| OfferError::Stopped)?;
        rx.await.map_err(|_| OfferError::Stopped)?
    }

    /// Rejects an offer with `code` (486 Busy Here, 603 Decline, ...).
    ///
    /// # Errors
    /// [`OfferError`].
    pub async fn reject(&self, id: u64, code: u16) -> Result<(), OfferError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Reject { id, code, reply })
            .await
            .map_err(|_| OfferError::Stopped)?;
        rx.await.map_err(|_| OfferError::Stopped)?
    }
}

struct Task {
    endpoint: Endpoint,
    pick: Pick,
    ring_limit: Duration,
    offers: HashMap<u64, Offer>,
    by_call_id: HashMap<String, u64>,
    next_id: u64,
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        302 => "Moved Temporarily",
        404 => "Not Found",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        603 => "Decline",
        _ => "Rejected",
    }
}

impl Task {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Incoming>,
        mut cmds: mpsc::Receiver<Cmd>,
        report: impl Fn(OfferEvent) + Send + Sync + 'static,
    ) {
        loop {
            let next = self.offers.values().map(|o| o.deadline).min();
            let sleep = async {
                match next {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                inc = inbox.recv() => match inc {
                    Some(Incoming::Request { key, msg }) => self.on_request(key, msg, &report).await,
                    Some(_) => {}
                    None => break,
                },
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Redirect { id, contact, reply }) => {
                        let r = self.finish(id, 302, Some(contact)).await;
                        if r.is_ok() {
                            report(OfferEvent::Ended { id, end: OfferEnd::Redirected });
                        }
                        let _ = reply.send(r);
                    }
                    Some(Cmd::Reject { id, code, reply }) => {
                        let r = self.finish(id, code, None).await;
                        if r.is_ok() {
                            report(OfferEvent::Ended { id, end: OfferEnd::Rejected });
                        }
                        let _ = reply.send(r);
                    }
                    None => break,
                },
                () = sleep => {
                    let now = Instant::now();
                    let due: Vec<u64> = self.offers.iter().filter(|(_, o)| o.deadline <= now).map(|(id, _)| *id).collect();
                    for id in due {
                        if self.finish(id, 480, None).await.is_ok() {
                            report(OfferEvent::Ended { id, end: OfferEnd::RingTimeout });
                        }
                    }
                }
            }
        }
        // Stopping: answer what still rings.
        let ids: Vec<u64> = self.offers.keys().copied().collect();
        for id in ids {
            let _ = self.finish(id, 480, None).await;
        }
        let _ = self.endpoint.route_new_calls(None).await;
    }

    async fn on_request(
        &mut self,
        key: TxKey,
        msg: Message,
        report: &(impl Fn(OfferEvent) + Send + Sync + 'static),
    ) {
        let call_id = msg.call_id().unwrap_or_default().to_owned();
        match msg.method() {
            Some(Method::Invite) => {
                if self.by_call_id.contains_key(&call_id) {
                    // A second INVITE with the same Call-ID (a new branch of a fork): refuse.
                    let r = Message::response_to(&msg, 482, "Loop Detected", None);
                    let _ = self.endpoint.respond(key, r).await;
                    return;
                }
                let line = match (self.pick)(&msg) {
                    Ok(line) => line,
                    Err((code, reason)) => {
                        let tag = crate::dialog::new_tag();
                        let r = Message::response_to(&msg, code, reason, Some(&tag));
                        let _ = self.endpoint.respond(key, r).await;
                        return;
                    }
                };
                let to_tag = crate::dialog::new_tag();
                let ringing = Message::response_to(&msg, 180, "Ringing", Some(&to_tag));
                let _ = self.endpoint.respond(key.clone(), ringing).await;
                let id = self.next_id;
                self.next_id += 1;
                let caller = Caller::from_invite(&msg);
                let called = msg
                    .request_uri()
                    .and_then(crate::header::Uri::parse)
                    .and_then(|u| u.user);
                self.by_call_id.insert(call_id.clone(), id);
                self.offers.insert(
                    id,
                    Offer {
                        key,
                        invite: msg,
                        to_tag,
                        call_id: call_id.clone(),
                        deadline: Instant::now() + self.ring_limit,
                    },
                );
                report(OfferEvent::Offered {
                    id,
                    line,
                    caller,
                    called,
                    call_id,
                });
            }
            Some(Method::Cancel) => {
                let Some(id) = self.by_call_id.get(&call_id).copied() else {
                    let r =
                        Message::response_to(&msg, 481, "Call/Transaction Does Not Exist", None);
                    let _ = self.endpoint.respond(key, r).await;
                    return;
                };
                let ok = Message::response_to(&msg, 200, "OK", None);
                let _ = self.endpoint.respond(key, ok).await;
                let cause = CancelCause::from_cancel(&msg);
                if self.finish(id, 487, None).await.is_ok() {
                    report(OfferEvent::Ended {
                        id,
                        end: OfferEnd::Cancelled {
                            answered_elsewhere: cause == Some(200),
                            cause,
                        },
                    });
                }
            }
            _ => {
                let r = Message::response_to(&msg, 481, "Call/Transaction Does Not Exist", None);
                let _ = self.endpoint.respond(key, r).await;
            }
        }
    }

    /// Sends the offer's final answer and forgets it.
    async fn finish(
        &mut self,
        id: u64,
        code: u16,
        contact: Option<String>,
    ) -> Result<(), OfferError> {
        let offer = self.offers.remove(&id).ok_or(OfferError::Gone)?;
        self.by_call_id.remove(&offer.call_id);
        let mut r = Message::response_to(
            &offer.invite,
            code,
            reason_phrase(code),
            Some(&offer.to_tag),
        );
        if let Some(c) = contact {
            r.push("Contact", format!("<{c}>"));
        }
        self.endpoint
            .respond(offer.key, r)
            .await
            .map_err(|_| OfferError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> Message {
        let text = format!(
            "INVITE sip:acd@127.0.0.1:5060;line=7 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
             From: \"Jane Roe\" <sip:+4930123%23@pbx>;tag=aa\r\nTo: <sip:acd@pbx>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}\r\n"
        );
        Message::parse(text.as_bytes()).expect("invite")
    }

    #[test]
    fn caller_from_from_and_from_pai() {
        let c = Caller::from_invite(&invite(""));
        assert_eq!(c.number.as_deref(), Some("+4930123#"));
        assert_eq!(c.name.as_deref(), Some("Jane Roe"));
        let c = Caller::from_invite(&invite(
            "P-Asserted-Identity: \"Front Desk\" <sip:200@pbx>\r\nP-Asserted-Identity: <tel:+49302000>\r\n",
        ));
        assert_eq!(c.number.as_deref(), Some("200"));
        assert_eq!(c.name.as_deref(), Some("Front Desk"));
        let c = Caller::from_invite(&invite("P-Asserted-Identity: <tel:+49302000;cpc=x>\r\n"));
        assert_eq!(c.number.as_deref(), Some("+49302000"));
        assert_eq!(c.name.as_deref(), Some("Jane Roe"));
        let anon = Message::parse(
            b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        )
        .expect("anon");
        assert_eq!(Caller::from_invite(&anon).number, None);
        assert_eq!(Caller::from_invite(&anon).name, None);
    }

    #[test]
    fn cancel_reason_cause() {
        let cancel = |reason: &str| {
            Message::parse(
                format!("CANCEL sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 CANCEL\r\n{reason}\r\n")
                    .as_bytes(),
            )
            .expect("cancel")
        };
        assert_eq!(
            CancelCause::from_cancel(&cancel(
                "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"
            )),
            Some(200)
        );
        assert_eq!(
            CancelCause::from_cancel(&cancel("Reason: Q.850;cause=16\r\n")),
            None
        );
        assert_eq!(
            CancelCause::from_cancel(&cancel(
                "Reason: Q.850;cause=16, SIP ;cause=600;text=\"Busy\"\r\n"
            )),
            Some(600)
        );
        assert_eq!(CancelCause::from_cancel(&cancel("")), None);
    }
}
