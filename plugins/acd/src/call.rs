//! One outgoing ACD call, as an async task on the shared call leg of `tapir-sip-ua`: INVITE the
//! target (Dialing → Ringback → Connected), then wait for the application — `BlindTransfer`
//! REFERs the target to the agent and follows the sipfrag NOTIFYs; `Drop` CANCELs or BYEs.
//! What is this driver's own: the requests it completes (MakeCall, Drop, BlindTransfer, each
//! exactly once), the states it reports, and its causes' words.
//!
//! The failed-call rule (ARCHITECTURE.md): MakeCall completes Ok once the first INVITE is out,
//! with an error only when none could be sent (no address for the first hop). Every later end
//! but the application's Drop is a state: the cause (SIP status and reason phrase, or what
//! happened) in the call's info, `Busy` first for a busy target, then `Disconnected` with its
//! mode, reported once any BYE is sent; the driver frees the call right then.

use crate::driver::Shared;
use crate::outcome::{destination_uri, progress_state, TransferError};
use std::sync::Arc;
use tapir_core::{CallState, Completion, DisconnectMode, DriverError, ErrorKind, RequestId};
use tapir_sip_ua::digest::Credentials;
use tapir_sip_ua::leg::{Leg, LegEvent, LegFailure, LegSetup, Next};
use tapir_sip_ua::report::CallReporter;
use tokio::sync::mpsc;

/// What the driver tells a running call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctl {
    /// The application dropped the call (request to complete).
    Drop(RequestId),
    /// Blind transfer to `to` (a `sip:` URI).
    Transfer {
        /// The request to complete.
        id: RequestId,
        /// The agent's URI.
        to: String,
    },
    /// The driver shuts down.
    Shutdown,
}

/// The account a line's calls are placed from.
#[derive(Debug, Clone)]
pub struct LineAccount {
    /// SIP user (From).
    pub user: String,
    /// Digest credentials.
    pub credentials: Credentials,
}

/// How the call ends.
enum End {
    /// Over (dropped by the application, or handed to an agent): Idle.
    Idle,
    /// The driver shuts down: nothing more is reported.
    Shutdown,
    /// Failed or hung up by the far end: the cause, then `Disconnected` with `mode`.
    Failed { mode: DisconnectMode, cause: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Drop,
    Shutdown,
}

struct Call {
    rep: CallReporter,
    ctl: mpsc::Receiver<Ctl>,
    target_uri: String,
    drops: Vec<RequestId>,
}

/// Runs one ACD call to its end. `target_uri` is already checked; `make_call` is completed Ok
/// as soon as the INVITE is on its way, with an error when none could be sent.
pub async fn run(
    shared: Arc<Shared>,
    account: Arc<LineAccount>,
    rep: CallReporter,
    ctl: mpsc::Receiver<Ctl>,
    target_uri: String,
    make_call: RequestId,
) {
    let mut call = Call {
        rep,
        ctl,
        target_uri,
        drops: Vec::new(),
    };
    let setup = LegSetup::new(
        &shared.parsed.account,
        &account.user,
        account.credentials.clone(),
        call.target_uri.clone(),
    );
    let started = Leg::start(setup, shared.endpoint.clone(), shared.resolver.clone()).await;
    let mut leg = match started {
        Ok(leg) => leg,
        Err(failure) => return call.not_placed(failure, make_call),
    };
    // The first INVITE is out: the call exists, MakeCall completes Ok.
    call.rep.info(leg.call_id());
    call.rep.state(CallState::Dialing);
    call.rep.complete(make_call, Ok(Completion::Done));
    let end = match call.invite(&mut leg).await {
        Ok(()) => {
            call.rep.state(CallState::Connected);
            call.connected(&mut leg).await
        }
        Err(end) => end,
    };
    call.end(&mut leg, end).await;
    leg.close().await;
}

impl Call {
    /// No INVITE could be sent: the call never existed.
    fn not_placed(mut self, failure: LegFailure, make_call: RequestId) {
        let error = if failure == LegFailure::Stopped {
            DriverError::new(ErrorKind::Uninitialized, "the acd driver has shut down")
        } else {
            let detail = match failure {
                LegFailure::Unreachable(d) => d,
                other => other.to_string(),
            };
            // The driver forgets it before the front end does, so the line is free for the
            // next MakeCall at once.
            tracing::info!(target_uri = %self.target_uri, %detail, "ACD call could not start.");
            self.rep.forget();
            DriverError::new(
                ErrorKind::OperationFailed,
                format!("the call to {} could not start: {detail}", self.target_uri),
            )
        };
        self.rep.complete(make_call, Err(error));
        self.finish_requests(false);
    }

    /// How a failure of the INVITE ends the call, in this driver's words.
    fn failed(&self, failure: LegFailure) -> End {
        let cause = match &failure {
            LegFailure::Status { code, reason } => format!("{code} {reason}"),
            LegFailure::Stopped => return End::Shutdown,
            other => other.about(&self.target_uri),
        };
        tracing::info!(target_uri = %self.target_uri, %cause, "ACD call failed.");
        End::Failed {
            mode: failure.mode(),
            cause,
        }
    }

    /// Releases what is left and reports the end; completes every request.
    async fn end(&mut self, leg: &mut Leg, end: End) {
        match end {
            End::Idle => {
                leg.release().await;
                self.rep.state(CallState::Idle);
            }
            End::Shutdown => leg.release().await,
            End::Failed { mode, cause } => {
                // BYE first, then the report: a Disconnected call holds nothing.
                leg.hangup().await;
                self.rep.failed(mode, cause);
                self.finish_requests(true);
                leg.released().await;
            }
        }
        self.finish_requests(false);
    }

    /// Completes the Drops taken so far and every request still queued for the call (it has
    /// ended). After a failure (`failed`), a Drop that reached the call before it was freed
    /// moves it to Idle first.
    fn finish_requests(&mut self, failed: bool) {
        self.ctl.close();
        while let Ok(c) = self.ctl.try_recv() {
            match c {
                Ctl::Drop(id) => self.drops.push(id),
                Ctl::Transfer { id, .. } => self.rep.complete(
                    id,
                    Err(DriverError::new(
                        ErrorKind::InvalidCallState,
                        "the call has ended",
                    )),
                ),
                Ctl::Shutdown => {}
            }
        }
        if failed && !self.drops.is_empty() {
            self.rep.state(CallState::Idle);
        }
        for id in std::mem::take(&mut self.drops) {
            self.rep.complete(id, Ok(Completion::Done));
        }
    }

    fn note_stop(&mut self, ctl: Option<Ctl>) -> Option<Stop> {
        match ctl {
            Some(Ctl::Drop(id)) => {
                self.drops.push(id);
                Some(Stop::Drop)
            }
            Some(Ctl::Transfer { id, .. }) => {
                self.rep.complete(
                    id,
                    Err(DriverError::new(
                        ErrorKind::InvalidCallState,
                        "the call is not connected",
                    )),
                );
                None
            }
            Some(Ctl::Shutdown) | None => Some(Stop::Shutdown),
        }
    }

    /// The INVITE phase: Ok once answered, else how the call ends.
    async fn invite(&mut self, leg: &mut Leg) -> Result<(), End> {
        let mut ringing = false;
        let mut stop: Option<Stop> = None;
        loop {
            match leg.next(&mut self.ctl).await {
                Next::Ctl(c) => {
                    if let Some(s) = self.note_stop(c) {
                        stop = Some(s);
                        leg.cancel().await;
                    }
                }
                Next::Leg(LegEvent::Progress { code, .. }) if !ringing => {
                    if let Some(s) = progress_state(code) {
                        ringing = s == CallState::Ringback;
                        self.rep.state(s);
                    }
                }
                Next::Leg(LegEvent::Answered) => return Ok(()),
                Next::Leg(LegEvent::Cancelled) if stop == Some(Stop::Drop) => {
                    return Err(End::Idle)
                }
                Next::Leg(LegEvent::Cancelled | LegEvent::Stopped) => return Err(End::Shutdown),
                Next::Leg(LegEvent::Failed(f)) => return Err(self.failed(f)),
                Next::Leg(_) => {}
            }
        }
    }

    /// Connected: wait for Drop, a transfer, or the far end's BYE.
    async fn connected(&mut self, leg: &mut Leg) -> End {
        let hung_up = || End::Failed {
            mode: DisconnectMode::Normal,
            cause: "the called party hung up (BYE)".into(),
        };
        loop {
            match leg.next(&mut self.ctl).await {
                Next::Ctl(Some(Ctl::Transfer { id, to })) => match self.transfer(leg, &to).await {
                    Ok(()) => {
                        self.rep.complete(id, Ok(Completion::Done));
                        return End::Idle;
                    }
                    Err(TransferError::Dropped) => {
                        self.rep
                            .complete(id, Err(TransferError::Dropped.to_driver_error()));
                        return End::Idle;
                    }
                    Err(e) => {
                        tracing::info!(call_id = %leg.call_id(), error = %e, "Transfer failed.");
                        self.rep.complete(id, Err(e.to_driver_error()));
                        if leg.remote_gone() {
                            return hung_up();
                        }
                    }
                },
                Next::Ctl(other) => match self.note_stop(other) {
                    Some(Stop::Drop) => return End::Idle,
                    Some(Stop::Shutdown) => return End::Shutdown,
                    None => {}
                },
                Next::Leg(LegEvent::HungUp) => return hung_up(),
                Next::Leg(LegEvent::Stopped) => return End::Shutdown,
                Next::Leg(_) => {}
            }
        }
    }

    /// REFERs the connected target to `to` and follows the NOTIFYs.
    async fn transfer(&mut self, leg: &mut Leg, to: &str) -> Result<(), TransferError> {
        if !leg.refer(to).await {
            return Err(TransferError::Unreachable("cannot send the REFER".into()));
        }
        loop {
            match leg.next(&mut self.ctl).await {
                Next::Leg(LegEvent::ReferDone(Ok(_))) => return Ok(()),
                Next::Leg(LegEvent::ReferDone(Err(f))) => return Err(f.into()),
                // A BYE right after a NOTIFY 200 is how many peers end a good transfer (the
                // outcome came first); before any final sipfrag it is a hang-up.
                Next::Leg(LegEvent::HungUp) => return Err(TransferError::HungUp),
                Next::Leg(LegEvent::Stopped) => return Err(TransferError::Dropped),
                Next::Leg(_) => {}
                Next::Ctl(Some(Ctl::Drop(id))) => {
                    self.drops.push(id);
                    return Err(TransferError::Dropped);
                }
                Next::Ctl(Some(Ctl::Transfer { id, .. })) => {
                    self.rep.complete(
                        id,
                        Err(DriverError::new(
                            ErrorKind::InvalidCallState,
                            "a transfer is already running",
                        )),
                    );
                }
                Next::Ctl(Some(Ctl::Shutdown) | None) => return Err(TransferError::Dropped),
            }
        }
    }
}

/// A destination for a transfer: the agent's extension or queue, as a URI in our domain.
///
/// # Errors
/// [`DriverError`] `InvalidAddress`.
pub fn agent_uri(dest: &str, domain: &str) -> Result<String, DriverError> {
    destination_uri(dest, domain).map_err(|e| DriverError::new(ErrorKind::InvalidAddress, e.0))
}
