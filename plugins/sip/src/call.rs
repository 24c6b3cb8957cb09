//! One click-to-dial call, as an async task on the shared call leg of `tapir-sip-ua`: INVITE
//! the first leg, REFER it once it answers, follow the NOTIFY sipfrags, release our leg. What is
//! this driver's own: which party is called first and which is REFERred (by [`Mode`]), the
//! auto-answer headers, and which call states the leg's events mean.
//!
//! The failed-call rule (ARCHITECTURE.md): MakeCall completes Ok as soon as the first INVITE
//! is out, with an error only when it could not be sent at all (no address for the first
//! hop). Every later failure is a state: the cause (the SIP status and reason phrase) in the
//! call's info, then `Disconnected` with its mode (after `Busy` for a busy party), reported
//! once any BYE is sent; the driver forgets the call right then.

use crate::config::Line;
use crate::outcome::{progress_state, ClickToDialError};
use crate::report::Reporter;
use std::sync::Arc;
use tapir_core::CallState;
use tapir_sip_ua::header::Uri;
use tapir_sip_ua::leg::{Leg, LegEvent, LegFailure, LegSetup, Next, ReferFailure};
use tapir_sip_ua::{Endpoint, Resolver};
use tokio::sync::mpsc;

/// Which driver a call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// INVITE the user's phone, REFER it to the destination.
    Refer,
    /// INVITE the destination, REFER it to the user's phone.
    Reverse,
}

/// What the driver tells a running call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctl {
    /// The application dropped the call.
    Drop,
    /// The driver is shutting down.
    Shutdown,
}

/// Everything a line's calls share.
pub struct LineCtx {
    /// The line's configuration.
    pub line: Line,
    /// The endpoint it sends from.
    pub endpoint: Endpoint,
    /// DNS.
    pub resolver: Arc<Resolver>,
    /// Which driver.
    pub mode: Mode,
}

/// How the active part of a call ended.
enum End {
    Success { note: Option<&'static str> },
    Failed(ClickToDialError),
}

struct Call {
    rep: Reporter,
    ctl: mpsc::Receiver<Ctl>,
    refer_to: String,
    first_who: String,
}

/// The first leg's setup: whom it calls, whom it REFERs there, and who that is in sentences.
fn plan(ctx: &LineCtx, destination_uri: String) -> (LegSetup, String, String) {
    let line = &ctx.line;
    let account = &line.account;
    let user = line.user();
    let phone = line
        .cfg
        .phone_user
        .clone()
        .unwrap_or_else(|| user.to_owned());
    let phone_uri = if phone.starts_with("sip:") {
        phone.clone()
    } else {
        match &line.phone_addr {
            // Alternative mode: the phone itself, by address.
            Some(addr) if ctx.mode == Mode::Refer => {
                Uri::sip(Some(&phone), &addr.host, addr.port).to_string()
            }
            _ => format!("sip:{phone}@{}", line.domain()),
        }
    };
    let (first_uri, refer_to, first_who) = match ctx.mode {
        Mode::Refer => (
            phone_uri.clone(),
            destination_uri,
            format!("the user's phone ({phone_uri})"),
        ),
        // The phone's URI as resolved above: a `phone_user` that is a full `sip:` URI is taken
        // as it is (never `sip:sip:...@domain`).
        Mode::Reverse => (
            destination_uri.clone(),
            phone_uri,
            format!("the callee ({destination_uri})"),
        ),
    };
    let mut setup = LegSetup::new(account, user, account.credentials(), first_uri)
        .header("Subject", "click2dial call");
    if ctx.mode == Mode::Refer {
        if let Some(addr) = &line.phone_addr {
            setup = setup.direct(addr.clone());
        }
        if line.cfg.auto_answer {
            for (n, v) in line.cfg.auto_answer_header.headers(&line.domain()) {
                setup = setup.header(n, v);
            }
        }
    }
    (setup, refer_to, first_who)
}

/// Runs one click-to-dial to its end. `destination_uri` is already checked.
pub async fn run(
    ctx: Arc<LineCtx>,
    rep: Reporter,
    ctl: mpsc::Receiver<Ctl>,
    destination_uri: String,
) {
    let (setup, refer_to, first_who) = plan(&ctx, destination_uri);
    let mut call = Call {
        rep,
        ctl,
        refer_to,
        first_who,
    };
    let started = Leg::start(setup, ctx.endpoint.clone(), ctx.resolver.clone()).await;
    let mut leg = match started {
        Ok(leg) => leg,
        Err(failure) => return call.not_placed(failure),
    };
    // The first INVITE is out: the call exists, MakeCall completes Ok (once).
    call.rep.info_driver_key(leg.call_id());
    call.rep.state(CallState::Dialing);
    call.rep.complete_make_call(Ok(()));
    let end = match call.invite(&mut leg).await {
        Ok(()) => call.refer(&mut leg).await,
        Err(e) => End::Failed(e),
    };
    call.finish(&mut leg, end).await;
    leg.close().await;
}

impl Call {
    fn first_leg(&self, failure: LegFailure) -> ClickToDialError {
        ClickToDialError::FirstLeg {
            who: self.first_who.clone(),
            failure,
        }
    }

    fn referred(&self, failure: ReferFailure) -> ClickToDialError {
        ClickToDialError::Referred {
            who: self.first_who.clone(),
            target: self.refer_to.clone(),
            failure,
        }
    }

    /// Why the call must stop (a closed control channel counts as shutdown).
    fn note_ctl(&self, ctl: Option<Ctl>) -> ClickToDialError {
        match ctl.unwrap_or(Ctl::Shutdown) {
            Ctl::Drop => ClickToDialError::Dropped,
            Ctl::Shutdown => ClickToDialError::Shutdown,
        }
    }

    /// Nothing was sent: the call never existed.
    fn not_placed(mut self, failure: LegFailure) {
        if failure == LegFailure::Stopped {
            // The driver closes the gate only after its calls ended or 2 s passed.
            self.rep.complete_make_call(Err(ClickToDialError::Shutdown));
            self.rep.complete_drops();
            return;
        }
        let e = self.first_leg(failure);
        // The driver forgets it before the front end does, so the line is free for the next
        // MakeCall at once.
        tracing::info!(reason = %e, "click-to-dial could not start");
        self.rep.forget();
        self.rep.complete_make_call(Err(e));
        self.rep.complete_drops();
    }

    /// Phase 1: the first leg rings until it answers (dialog formed and ACKed).
    async fn invite(&mut self, leg: &mut Leg) -> Result<(), ClickToDialError> {
        let mut ringing = false;
        let mut stopped: Option<ClickToDialError> = None;
        loop {
            match leg.next(&mut self.ctl).await {
                Next::Ctl(c) => {
                    stopped = Some(self.note_ctl(c));
                    leg.cancel().await;
                }
                Next::Leg(LegEvent::Progress { code, .. }) if !ringing => {
                    ringing = true;
                    if let Some(s) = progress_state(code) {
                        self.rep.state(s);
                    }
                }
                Next::Leg(LegEvent::Answered) => return Ok(()),
                Next::Leg(LegEvent::Cancelled) => {
                    return Err(stopped.unwrap_or(ClickToDialError::Dropped))
                }
                Next::Leg(LegEvent::Failed(f)) => return Err(self.first_leg(f)),
                Next::Leg(LegEvent::Stopped) => return Err(ClickToDialError::Shutdown),
                Next::Leg(_) => {}
            }
        }
    }

    /// Phase 2: REFER the answered leg and follow the NOTIFYs.
    async fn refer(&mut self, leg: &mut Leg) -> End {
        self.rep.state(CallState::Proceeding);
        if !leg.refer(&self.refer_to).await {
            let f = ReferFailure::Unreachable("cannot send the REFER".into());
            return End::Failed(self.referred(f));
        }
        loop {
            match leg.next(&mut self.ctl).await {
                Next::Ctl(c) => return End::Failed(self.note_ctl(c)),
                Next::Leg(LegEvent::ReferProgress { code, .. }) => {
                    if let Some(s) = progress_state(code) {
                        self.rep.state(s);
                    }
                }
                Next::Leg(LegEvent::ReferDone(Ok(done))) => return End::Success {
                    note: done.without_reports.then_some(
                        "the phone accepted the REFER without progress reports (Refer-Sub: false)",
                    ),
                },
                Next::Leg(LegEvent::ReferDone(Err(f))) => return End::Failed(self.referred(f)),
                Next::Leg(LegEvent::HungUp) if !leg.refer_accepted() => {
                    return End::Failed(ClickToDialError::HungUp {
                        who: self.first_who.clone(),
                    })
                }
                Next::Leg(LegEvent::Stopped) => return End::Failed(ClickToDialError::Shutdown),
                Next::Leg(_) => {}
            }
        }
    }

    async fn finish(&mut self, leg: &mut Leg, end: End) {
        let call_id = leg.call_id().to_owned();
        match end {
            End::Success { note } => {
                if let Some(n) = note {
                    tracing::info!(%call_id, "{n}");
                }
                self.rep.state(CallState::Connected);
                leg.release().await;
                self.rep.state(CallState::Idle);
                self.rep.complete_drops();
            }
            End::Failed(ClickToDialError::Shutdown) => {
                leg.release().await;
                // The driver closes the gate only after its calls ended or 2 s passed.
                self.rep.complete_make_call(Err(ClickToDialError::Shutdown));
                self.rep.complete_drops();
            }
            End::Failed(ClickToDialError::Dropped) => {
                leg.release().await;
                self.rep.state(CallState::Idle);
                self.rep.complete_drops();
            }
            End::Failed(e) => {
                tracing::info!(%call_id, reason = %e, "click-to-dial failed");
                // BYE first, then the report: a Disconnected call holds nothing.
                leg.hangup().await;
                self.rep.failed(e.mode(), e.to_string());
                // A Drop that arrived before the report is answered now: the call is dropped.
                if self.rep.has_drops() {
                    self.rep.state(CallState::Idle);
                    self.rep.complete_drops();
                }
                leg.released().await;
            }
        }
    }
}
